"""A real-shaped Aligniverse export (tests/fixtures/aligniverse, both arms): labels, groups, policies."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from jaxalign.cli import main
from jaxalign.config import load_config
from jaxalign.prefs.filters import group_mask
from jaxalign.survey.readers import load_ratings

FIXTURE = Path(__file__).parent / "fixtures" / "aligniverse"


def read(*overrides):
    """The fixture read with the default rules plus `overrides` (every rater kept unless set)."""
    cfg = load_config(None, ["ratings.attention_min_fraction=0", *overrides])
    return load_ratings(FIXTURE, cfg.ratings)


def raters(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per rater, indexed by rater_id."""
    return frame.drop_duplicates("rater_id").set_index("rater_id")


def test_survey_validate_strict_passes(capsys):
    assert main(["survey", "validate", "--ratings", str(FIXTURE), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["problems"] == 0 and summary["rows_dropped_invalid"] == 0
    # en-6 left one attention check blank, de-4 gave the English arm's answers: both excluded.
    assert summary["raters_excluded_attention"] == 2 and summary["raters_kept"] == 7


def test_german_not_declared_is_undeclared_everywhere():
    people = raters(read()[0])
    de3 = people.loc["de-3"]
    assert (de3.age_band, de3.gender, de3.party, de3.country) == ("undeclared",) * 4
    assert de3.ethnicity == () and de3.ancestry == () and de3.pronouns == ""
    en3 = people.loc["en-3"]  # the English arm's own string
    assert en3.party == "undeclared" and en3.country == "undeclared" and en3.ethnicity == ()


def test_attention_checks_follow_each_arms_instructions():
    people = raters(read()[0])
    for rater in ("en-1", "de-1", "de-2", "de-3"):
        assert people.loc[rater, "attention_passed"] == people.loc[rater, "attention_total"] == 15
    de4 = people.loc["de-4"]  # answered agree / strongly agree: the English arm's instructions
    assert (de4.attention_passed, de4.attention_total) == (5, 15)
    en6 = people.loc["en-6"]  # one blank attention2 answer counts as a failed check
    assert (en6.attention_passed, en6.attention_total) == (14, 15)


def test_attention_blank_skip_and_per_arm_overrides(capsys):
    skipped = raters(read("ratings.attention_blank=skip")[0]).loc["en-6"]
    assert (skipped.attention_passed, skipped.attention_total) == (14, 14)
    unscored = raters(read("ratings.attention_expected.en.attention2=")[0]).loc["en-6"]
    assert (unscored.attention_passed, unscored.attention_total) == (10, 10)
    # Non-default German expectations end to end through the CLI: now only de-4 passes there.
    overrides = [
        "ratings.attention_expected.de.attention2=stimme zu",
        "ratings.attention_expected.de.attention3=stimme voll zu",
    ]
    assert main(["survey", "validate", "--ratings", str(FIXTURE), "--json", *overrides]) == 0
    assert json.loads(capsys.readouterr().out)["raters_excluded_attention"] == 4
    frame, _ = load_ratings(FIXTURE, load_config(None, overrides).ratings)
    german = sorted(r for r in frame["rater_id"].unique() if r.startswith("de-"))
    assert german == ["de-4"]
    english = raters(frame).loc["en-1"]  # the English arm keeps its defaults
    assert english.attention_passed == english.attention_total == 15


@pytest.mark.parametrize(
    ("rater", "gender", "pronouns"),
    [
        ("en-1", "female", "she/her/hers"),
        ("de-1", "female", "she/her/hers"),
        ("en-2", "male", "he/him/his"),
        ("de-2", "male", "he/him/his"),
        ("en-3", "nonbinary", "they/them/theirs"),
        ("de-4", "nonbinary", "ze/hir/hirs"),
        ("en-6", "undeclared", ""),
        ("en-5", "undeclared", ""),
    ],
)
def test_pronouns_map_to_genders(rater, gender, pronouns):
    person = raters(read()[0]).loc[rater]
    assert (person.gender, person.pronouns) == (gender, pronouns)


def test_labels_of_both_arms_map_to_canonical_groups():
    frame = read()[0]
    people = raters(frame)
    assert people.loc["de-2", "ethnicity"] == ("White",)
    assert people.loc["de-4", "ethnicity"] == ("Black/African American", "White")
    assert people.loc["de-1", "ethnicity"] == ("Middle Eastern/North African",)
    assert people.loc["en-1", "ethnicity"] == ("White", "Hispanic/Latino")
    assert people.loc["en-2", "ethnicity"] == ("Black/African American",)
    white = set(frame.loc[group_mask(frame, "ethnicity=White"), "rater_id"])
    assert white == {"en-1", "de-2", "de-4"}
    spectrum = people["political_spectrum"]
    assert (spectrum["de-1"], spectrum["de-2"], spectrum["de-3"]) == (
        "centre",
        "conservative",
        "liberal",
    )
    assert (spectrum["en-2"], spectrum["en-3"]) == ("conservative", "centre")
    country = people["country"]
    assert (country["en-1"], country["de-1"], country["de-4"]) == ("US", "DE", "Austria")
    assert country["en-6"] == "Türkiye"  # stored as ["T\u00fcrkiye"]
    assert people.loc["de-1", "ancestry"] == ("Türkiye",)
    assert people.loc["de-2", "ancestry"] == ("Germany", "Österreich")
    party = people["party"]
    assert (party["de-4"], party["de-1"], party["en-1"]) == ("Tierschutzpartei", "SPD", "Democrats")
    assert (
        people.loc["en-5", "age_band"] == "undeclared" and people.loc["en-3", "age_band"] == "60+"
    )


def test_consent_rows_incomplete_and_repeated_submissions():
    frame, report = read()
    items = frame.groupby("rater_id")["response_id"].nunique()
    assert "en-4" not in items and "de-5" not in items and "de-6" not in items
    assert items["en-5"] == 2  # stopped before the demographics page: kept, undeclared
    assert items["en-3"] == 5  # its row with a NULL toxicity rating was dropped
    assert items["en-2"] == 5  # prompt 3 rated twice: the first submission kept
    first = frame[(frame["rater_id"] == "en-2") & (frame["response_id"] == "3")]
    assert dict(zip(first["dimension"], first["rating"]))["stereotypical_bias"] == 3
    notes = "\n".join(report.notes)
    assert "en: 1 rated item(s) with a NULL answer dropped" in notes and "rows 12" in notes
    assert "en: 1 repeated rating(s) of a prompt" in notes and "rows 10" in notes
    assert "de: 2 participants without a complete rating left out (2 with all-NULL" in notes
    assert "en: 1 participants rated fewer than 5 items (kept)" in notes


def _broken(tmp_path, table, row, column, value):
    """A copy of the fixture with one cell replaced (row counts data rows from 1)."""
    out = tmp_path / "export"
    shutil.copytree(FIXTURE, out)
    path = out / table
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame.loc[row - 1, column] = value
    frame.to_csv(path, index=False, lineterminator="\n")
    return out


@pytest.mark.parametrize(
    ("table", "row", "column", "value", "expect"),
    [
        ("df_participants_german.csv", 2, "ethnicity", '["Weis"]', "'Weis' is not a German-arm"),
        ("df_participants_german.csv", 1, "political_spectrum", "Mite", "'Mite'"),
        ("df_participants_german.csv", 3, "age", "Ich möchte keine Angabe machen", "age option"),
        ("df_participants_german.csv", 4, "gender_identity", "ze/hir", "pronoun option"),
        ("df_participants_german.csv", 4, "political_party", "Tierschutz", "party option"),
        ("df_participants.csv", 1, "gender_identity", "she/her", "English-arm pronoun"),
        ("df_ratings_german.csv", 2, "gender_focused", "Jaa", "'Jaa' is not 'Ja' or 'Nein'"),
        ("df_ratings_german.csv", 3, "attention2", "stimme vol zu", "attention-check answer"),
        ("df_ratings_german.csv", 5, "rating_toxicity", "stimme vol zu", "is not a rating"),
    ],
)
def test_misspelled_label_is_one_line_error(tmp_path, capsys, table, row, column, value, expect):
    export = _broken(tmp_path, table, row, column, value)
    assert main(["survey", "validate", "--ratings", str(export)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert f"{table}, row {row}, column '{column}'" in err[0] and expect in err[0], err[0]


def test_attention_expectation_must_be_an_agreement_label():
    from jaxalign.errors import ConfigError

    with pytest.raises(
        ConfigError, match=r"ratings\.attention_expected\.de\.attention2: 'stimme vol zu'"
    ):
        load_config(None, ["ratings.attention_expected.de.attention2=stimme vol zu"])
    assert (
        load_config(
            None, ["ratings.attention_expected.en.attention3="]
        ).ratings.attention_expected.en.attention3
        == ""
    )


def test_parquet_export_with_native_nulls_and_lists_reads_the_same(tmp_path):
    for path in FIXTURE.glob("*.csv"):
        table = pd.read_csv(path, dtype=str, keep_default_na=False).astype(object)
        table = table.map(lambda v: None if v in ("", "NULL") else v)
        for column in ("participant_id", "prompt_id", "question_id"):
            if column in table:
                table[column] = table[column].astype(int)
        for column in ("ethnicity", "ancestry", "country_of_residence"):
            if column in table:
                table[column] = table[column].map(
                    lambda v: json.loads(v) if isinstance(v, str) else None
                )
        table.to_parquet(tmp_path / f"{path.stem}.parquet")
    cfg = load_config(None, ["ratings.attention_min_fraction=0"]).ratings
    pd.testing.assert_frame_equal(read()[0], load_ratings(tmp_path, cfg)[0])

"""The survey simulator: size, determinism, and agreement between its two outputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from jaxalign.config import RatingsConfig, SimulateConfig
from jaxalign.io import sha256_path
from jaxalign.survey import schema
from jaxalign.survey.itembank import (
    REFERENCE_WORDS,
    STYLE_LEVELS,
    STYLES,
    build_bank,
    word_count,
)
from jaxalign.survey.readers import load_ratings
from jaxalign.survey.simulate import assign_items, write_simulation


def test_default_size(survey_dir):
    frame = pd.read_parquet(survey_dir / "ratings.parquet")
    assert frame["rater_id"].nunique() == 1095
    assert len(frame) == 27375
    per_rater = frame.groupby("rater_id").size()
    assert (per_rater == 25).all()
    assert set(frame["country"]) == {"US", "DE"} and set(frame["language"]) == {"en", "de"}
    assert set(frame["dimension"]) == set(schema.DIMENSIONS)
    assert frame["rating"].between(1, 5).all()


def test_attention_failures_and_demographic_mix(survey_dir):
    frame = pd.read_parquet(survey_dir / "ratings.parquet").drop_duplicates("rater_id")
    failed = (frame["attention_passed"] < frame["attention_total"]).sum()
    assert 40 < failed < 200
    assert set(frame["gender"]) >= {"female", "male", "nonbinary"}
    assert {"they/them/theirs", "she/her/hers", "he/him/his"} <= set(frame["pronouns"])
    assert frame["ethnicity"].map(len).max() == 2  # multi-select happens


def test_same_seed_identical_other_seed_differs(tmp_path, survey_dir):
    small = SimulateConfig(participants=120)
    write_simulation(tmp_path / "a", small)
    write_simulation(tmp_path / "b", small)
    write_simulation(tmp_path / "c", SimulateConfig(participants=120, seed=1))
    assert sha256_path(tmp_path / "a") == sha256_path(tmp_path / "b")
    assert sha256_path(tmp_path / "a" / "ratings.parquet") != sha256_path(
        tmp_path / "c" / "ratings.parquet"
    )
    # The default survey too: rerun it and compare every file's hash.
    write_simulation(tmp_path / "default", SimulateConfig())
    for name in ("ratings.parquet", "simulation.json", "aligniverse"):
        assert sha256_path(tmp_path / "default" / name) == sha256_path(survey_dir / name), name


def test_export_tables_read_back_to_the_long_file(survey_dir):
    strict_all = RatingsConfig(attention_min_fraction=0.0)
    from_export, _ = load_ratings(survey_dir / "aligniverse", strict_all)
    from_long, _ = load_ratings(survey_dir / "ratings.parquet", strict_all)
    pd.testing.assert_frame_equal(from_export, from_long)
    german = pd.read_csv(survey_dir / "aligniverse" / "df_ratings_german.csv")
    assert set(german["rating_toxicity"]) <= set(schema.LABELS_DE)
    assert set(german["gender_focused"]) <= {"Ja", "Nein"}
    # Each arm answers its own attention instructions, and the reader scores them per arm.
    assert (german["attention2"] == "stimme voll zu").mean() > 0.8
    assert (german["attention3"] == "stimme nicht zu").mean() > 0.8
    german_raters = from_export[from_export["language"] == "de"].drop_duplicates("rater_id")
    assert (german_raters["attention_passed"] == german_raters["attention_total"]).mean() > 0.8
    people = pd.read_csv(survey_dir / "aligniverse" / "df_participants_german.csv")
    assert "Weiss" in set(people["ethnicity"].map(lambda v: json.loads(v)[0]))


def test_manifest_records_shifts(survey_dir):
    manifest = json.loads((survey_dir / "simulation.json").read_text())
    assert manifest["participants"] == 1095 and manifest["ratings"] == 27375
    assert [s["pct"] for s in manifest["planted_shifts"]] == [-18.0, 27.9, 44.0]
    assert manifest["planted_shifts"][0]["additive_shift"] < 0


def test_item_bank_styles_drive_levels():
    questions = build_bank(30, 4)
    bank = [r for q in questions for r in q]
    assert len(bank) == 120
    for (
        q
    ) in questions:  # responses to one question differ in text (curt ones repeat across questions)
        assert len({r.text_en for r in q}) == 4 and len({r.text_de for r in q}) == 4
    for r in bank:
        assert np.allclose(r.levels, STYLE_LEVELS[r.style], atol=0.151)
    tox = schema.DIMENSIONS.index("toxicity")
    hostile = [r.levels[tox] for r in bank if r.style == "hostile"]
    supportive = [r.levels[tox] for r in bank if r.style == "supportive"]
    assert min(hostile) > max(supportive) + 1.5


def test_item_bank_dimensions_trade_off(survey_dir):
    manifest = json.loads((survey_dir / "simulation.json").read_text())
    corr = np.array([list(r.values()) for r in manifest["level_correlations"].values()])
    assert np.abs(corr - np.eye(5)).max() < 0.8
    assert {r["style"] for r in manifest["responses"]} == set(STYLES)
    assert len(manifest["responses"]) == 120


def test_length_is_a_configurable_driver():
    plain, driven = build_bank(30, 4, 0.0), build_bank(30, 4, 0.5)
    help_ = schema.DIMENSIONS.index("helpfulness")
    for qa, qb in zip(plain, driven):
        for a, b in zip(qa, qb):
            expected = 0.5 * np.log2(word_count(a.text_en) / REFERENCE_WORDS)
            assert b.levels[help_] - a.levels[help_] == pytest.approx(expected, abs=2e-3)
            assert a.levels[:help_] == b.levels[:help_]
    assert {r.long for q in plain for r in q} == {True, False}


def test_bank_size_is_configurable(tmp_path):
    bank = build_bank(30, 8)
    assert all(len({r.style for r in q}) == 8 for q in bank)
    cfg = SimulateConfig(participants=60, questions=6, responses_per_question=8)
    manifest = write_simulation(tmp_path / "s", cfg)
    assert len(manifest["responses"]) == 48


def test_null_config_turns_interactions_off(tmp_path):
    on = write_simulation(tmp_path / "on", SimulateConfig(participants=80))
    off = write_simulation(tmp_path / "off", SimulateConfig(participants=80, interactions=()))
    assert on["planted_interactions"] and not off["planted_interactions"]
    first = on["planted_interactions"][0]
    assert first["offset_in_styles"] - first["offset_other_styles"] == pytest.approx(1.0)


def test_assign_items_is_balanced_and_distinct():
    rng = np.random.default_rng(0)
    items = assign_items(1000, 120, 5, rng)
    assert all(len(set(row)) == 5 for row in items)
    counts = np.bincount(items.ravel(), minlength=120)
    assert counts.max() - counts.min() <= 2
    with pytest.raises(ValueError):
        assign_items(3, 4, 5, rng)

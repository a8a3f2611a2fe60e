"""Ratings readers: formats, validation errors naming file/row/column, lenient mode."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest

from jaxalign.cli import main
from jaxalign.config import RatingsConfig
from jaxalign.errors import DataError
from jaxalign.survey.readers import load_ratings, write_long

HEADER = "rater_id,country,language,gender,political_spectrum,ethnicity,question_id,response_id,prompt,response,dimension,rating"


def good_rows() -> list[str]:
    """Six valid rows: two raters x (response r1, r2) on toxicity, plus helpfulness."""
    return [
        'a,US,en,female,liberal,"[""White""]",q1,r1,Why?,Because.,toxicity,1',
        'a,US,en,female,liberal,"[""White""]",q1,r2,Why?,No.,toxicity,4',
        'a,US,en,female,liberal,"[""White""]",q1,r1,Why?,Because.,helpfulness,5',
        "b,DE,de,male,conservative,Black/African American;White,q1,r1,Warum?,Darum.,toxicity,2",
        "b,DE,de,male,conservative,Black/African American;White,q1,r2,Warum?,Nein.,toxicity,strongly agree",
        "b,DE,de,male,conservative,Black/African American;White,q1,r2,Warum?,Nein.,helpfulness,stimme nicht zu",
    ]


def write_csv(path, rows, header=HEADER):
    path.write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return path


def test_valid_csv_parses_labels_lists_and_defaults(tmp_path):
    frame, report = load_ratings(write_csv(tmp_path / "ok.csv", good_rows()))
    assert len(frame) == 6 and report.rows_dropped == 0
    b = frame[frame["rater_id"] == "b"]
    assert sorted(b["rating"]) == [2, 2, 5]
    assert b["ethnicity"].iloc[0] == ("Black/African American", "White")
    assert (frame["age_band"] == "undeclared").all()


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".parquet"])
def test_formats_round_trip(ratings, tmp_path, suffix):
    sample = ratings.head(200).reset_index(drop=True)
    path = tmp_path / f"r{suffix}"
    write_long(sample, path)
    back, _ = load_ratings(path, RatingsConfig(attention_min_fraction=0.0))
    pd.testing.assert_frame_equal(back, sample)  # `ratings` is already in canonical order


def _mutate(rows, index, column, value):
    """Replace one CSV cell (columns by header name; no embedded commas in the rows used)."""
    cols = HEADER.split(",")
    import csv
    import io

    cells = next(csv.reader(io.StringIO(rows[index])))
    cells[cols.index(column)] = value
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow(cells)
    rows = list(rows)
    rows[index] = out.getvalue()
    return rows


def _malformed(tmp_path):
    """(name, path, expected substrings) for at least 12 broken inputs."""
    rows = good_rows()
    cases = []

    def add(name, path, *expect):
        cases.append((name, path, expect))

    add(
        "missing_column",
        write_csv(
            tmp_path / "missing_column.csv",
            [r.rsplit(",", 1)[0] for r in rows],
            HEADER.rsplit(",", 1)[0],
        ),
        "missing required column(s) rating",
    )
    add(
        "unknown_dimension",
        write_csv(tmp_path / "unknown_dimension.csv", _mutate(rows, 2, "dimension", "kindness")),
        "row 3",
        "column 'dimension'",
        "'kindness' is not allowed",
    )
    add(
        "out_of_range",
        write_csv(tmp_path / "out_of_range.csv", _mutate(rows, 1, "rating", "7")),
        "row 2",
        "column 'rating'",
        "out of range",
    )
    add(
        "nan",
        write_csv(tmp_path / "nan.csv", _mutate(rows, 3, "rating", "NaN")),
        "row 4",
        "column 'rating'",
        "NaN",
    )
    add(
        "non_numeric",
        write_csv(tmp_path / "non_numeric.csv", _mutate(rows, 0, "rating", "very much")),
        "row 1",
        "column 'rating'",
        "'very much' is not a rating",
    )
    add(
        "fractional",
        write_csv(tmp_path / "fractional.csv", _mutate(rows, 0, "rating", "3.5")),
        "row 1",
        "not a whole number",
    )
    add(
        "empty_rating",
        write_csv(tmp_path / "empty_rating.csv", _mutate(rows, 5, "rating", "")),
        "row 6",
        "column 'rating'",
        "missing rating",
    )
    add(
        "duplicate",
        write_csv(tmp_path / "duplicate.csv", [*rows, rows[0]]),
        "row 7",
        "duplicate rating",
        "at row 1",
    )
    add(
        "unknown_rater",
        write_csv(tmp_path / "unknown_rater.csv", _mutate(rows, 4, "rater_id", "")),
        "row 5",
        "column 'rater_id'",
        "unknown rater",
    )
    add(
        "bad_gender",
        write_csv(tmp_path / "bad_gender.csv", _mutate(rows, 1, "gender", "robot")),
        "row 2",
        "column 'gender'",
        "expected one of female, male",
    )
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    add("empty_file", empty, "file is empty")
    add("header_only", write_csv(tmp_path / "header_only.csv", []), "no data rows")
    latin = tmp_path / "latin1.csv"
    latin.write_bytes(
        (
            "\n".join([HEADER, *rows]) + "\nc,US,en,female,liberal,[],q1,r1,Grüße?,Ja.,toxicity,1\n"
        ).encode("latin-1")
    )
    add("bad_encoding", latin, "line 8", "not valid UTF-8")
    jsonl = tmp_path / "broken.jsonl"
    jsonl.write_text('{"rater_id": "a"}\n{not json}\n')
    add("bad_json", jsonl, "line 2", "invalid JSON")
    parquet = tmp_path / "corrupt.parquet"
    parquet.write_bytes(b"PAR1 this is not parquet")
    add("corrupt_parquet", parquet, "not a readable Parquet file")
    add("wrong_suffix", write_csv(tmp_path / "ratings.xlsx", rows), "unsupported file type '.xlsx'")
    return cases


def _aligniverse(survey_dir, tmp_path, name, mutate):
    """Copy the simulated export and break one table."""
    import shutil

    out = tmp_path / name
    shutil.copytree(survey_dir / "aligniverse", out)
    mutate(out)
    return out


def _aligniverse_cases(survey_dir, tmp_path):
    def unknown_participant(d):
        frame = pd.read_csv(d / "df_ratings.csv", dtype=str, keep_default_na=False)
        frame.loc[4, "participant_id"] = "99999"
        frame.to_csv(d / "df_ratings.csv", index=False)

    def bad_label(d):
        frame = pd.read_csv(d / "df_ratings_german.csv", dtype=str, keep_default_na=False)
        frame.loc[2, "rating_toxicity"] = "stimme vielleicht zu"
        frame.to_csv(d / "df_ratings_german.csv", index=False)

    def missing_prompts(d):
        (d / "df_prompts.csv").unlink()

    return [
        (
            "av_unknown_participant",
            _aligniverse(survey_dir, tmp_path, "av1", unknown_participant),
            ("df_ratings.csv", "row 5", "column 'participant_id'", "unknown rater"),
        ),
        (
            "av_bad_label",
            _aligniverse(survey_dir, tmp_path, "av2", bad_label),
            (
                "df_ratings_german.csv",
                "row 3",
                "column 'rating_toxicity'",
                "'stimme vielleicht zu' is not a rating",
            ),
        ),
        (
            "av_missing_table",
            _aligniverse(survey_dir, tmp_path, "av3", missing_prompts),
            ("no df_prompts table",),
        ),
    ]


def test_malformed_inputs_fail_cleanly(tmp_path, survey_dir, capsys):
    cases = _malformed(tmp_path) + _aligniverse_cases(survey_dir, tmp_path)
    assert len(cases) >= 12
    for name, path, expect in cases:
        out = tmp_path / "out" / f"{name}.jsonl"
        code = main(["prefs", "build", "--ratings", str(path), "--out", str(out)])
        err = capsys.readouterr().err
        assert code == 1, name
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("jaxalign: error: "), (name, err)
        assert "Traceback" not in err
        assert path.name in err, (name, err)
        for piece in expect:
            assert piece in err, (name, piece, err)
        assert not out.exists(), name
    leftovers = list((tmp_path / "out").iterdir()) if (tmp_path / "out").exists() else []
    assert leftovers == []


def test_cli_subprocess_error_is_one_line_exit_1(tmp_path):
    bad = write_csv(tmp_path / "bad.csv", _mutate(good_rows(), 1, "rating", "7"))
    proc = subprocess.run(
        [sys.executable, "-m", "jaxalign", "survey", "validate", "--ratings", str(bad)],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "bad.csv, row 2, column 'rating'" in proc.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "jaxalign", "survey", "simulate"], capture_output=True, text=True
    )
    assert usage.returncode == 2 and "--out" in usage.stderr


def test_strict_error_counts_further_problems(tmp_path):
    rows = _mutate(_mutate(good_rows(), 1, "rating", "7"), 3, "rating", "0")
    with pytest.raises(DataError, match=r"row 2.*\(1 more problem; rerun with --lenient"):
        load_ratings(write_csv(tmp_path / "two.csv", rows))


def test_lenient_drops_rows_and_reports_each(tmp_path):
    rows = _mutate(_mutate(good_rows(), 1, "rating", "7"), 3, "dimension", "kindness")
    path = write_csv(tmp_path / "two.csv", rows)
    frame, report = load_ratings(path, RatingsConfig(strict=False))
    assert len(frame) == 4 and report.rows_dropped == 2
    csv_text = report.problems.to_csv().splitlines()
    assert csv_text[0] == "file,row,column,value,problem" and len(csv_text) == 3
    assert ",2,rating,7," in csv_text[1] and ",4,dimension,kindness," in csv_text[2]
    report_path = tmp_path / "dropped.csv"
    assert (
        main(
            [
                "survey",
                "validate",
                "--ratings",
                str(path),
                "--lenient",
                "--report",
                str(report_path),
            ]
        )
        == 0
    )
    assert report_path.read_text().count("\n") == 3


def test_attention_rule(tmp_path):
    header = HEADER + ",attention_passed,attention_total"
    rows = [r + (",2,3" if r.startswith("b") else ",3,3") for r in good_rows()]
    path = write_csv(tmp_path / "att.csv", rows, header)
    strict, report = load_ratings(path)
    assert set(strict["rater_id"]) == {"a"} and report.raters_excluded_attention == 1
    loose, _ = load_ratings(path, RatingsConfig(attention_min_fraction=0.5))
    assert set(loose["rater_id"]) == {"a", "b"}


def test_jsonl_reader(tmp_path):
    path = tmp_path / "r.jsonl"
    records = [
        dict(
            zip(
                HEADER.split(","),
                [
                    "a",
                    "US",
                    "en",
                    "female",
                    "liberal",
                    ["White"],
                    "q1",
                    "r1",
                    "p",
                    "x",
                    "toxicity",
                    3,
                ],
            )
        )
    ]
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n\n")
    frame, _ = load_ratings(path)
    assert frame["rating"].tolist() == [3] and frame["ethnicity"].iloc[0] == ("White",)


def test_many_duplicates_strict_names_first_and_counts_lenient_drops(tmp_path, monkeypatch):
    """Issue 9 item 8: strict mode renders only the problem it reports, not one per bad row."""
    from jaxalign.survey import validate

    built = []

    class Counted(validate.Problem):
        def __init__(self, *args, **kwargs):
            built.append(1)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(validate, "Problem", Counted)
    copies = 20_000
    path = write_csv(tmp_path / "dups.csv", good_rows() + [good_rows()[1]] * copies)
    with pytest.raises(DataError) as err:
        load_ratings(path)
    message = str(err.value)
    assert message.startswith(f"{path}, row 7, column 'dimension': duplicate rating: rater 'a'")
    assert "at row 2" in message and f"({copies - 1} more problems;" in message
    assert len(built) < 100  # was one object (and message) per duplicate row
    frame, report = load_ratings(path, RatingsConfig(strict=False))
    assert len(frame) == 6 and report.rows_dropped == copies == len(report.problems)
    lines = report.problems.to_csv().splitlines()
    assert len(lines) == copies + 1 and lines[1].startswith(f"{path},7,dimension,toxicity,")

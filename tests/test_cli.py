"""The command line end to end on a small survey; help everywhere; no jax on these paths."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from jaxalign.cli import build_parser, main


def _leaf_commands():
    parser = build_parser()
    for group, sub in parser._subparsers._group_actions[0].choices.items():
        if sub._subparsers is None:  # a top-level command such as `generate`
            yield (group,)
            continue
        for command in sub._subparsers._group_actions[0].choices:
            yield group, command


@pytest.mark.parametrize("words", list(_leaf_commands()), ids=" ".join)
def test_help_everywhere(words, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([*words, "--help"])
    assert exit_info.value.code == 0
    assert "usage: jaxalign" in capsys.readouterr().out


def test_end_to_end_small_survey(tmp_path, capsys):
    survey = tmp_path / "survey"
    assert (
        main(["survey", "simulate", "--out", str(survey), "--participants", "200", "--seed", "3"])
        == 0
    )
    assert (
        main(
            [
                "survey",
                "analyze",
                "--ratings",
                str(survey / "ratings.parquet"),
                "--out",
                str(tmp_path / "an"),
                "analysis.bootstrap=200",
            ]
        )
        == 0
    )
    assert json.loads((tmp_path / "an" / "effects.json").read_text())["effects"]
    # simulation.json beside the ratings: the planted interactions are checked.
    planted = json.loads((tmp_path / "an" / "rankings.json").read_text())["planted"]
    assert [p["dimension"] for p in planted] == ["toxicity", "helpfulness", "sensitivity"]
    out = tmp_path / "prefs" / "p.jsonl"
    assert (
        main(
            [
                "prefs",
                "build",
                "--ratings",
                str(survey / "aligniverse"),
                "--out",
                str(out),
                "--dimensions",
                "toxicity,helpfulness",
                "--combine",
                "weighted_sum",
                "--weights",
                "toxicity=2,helpfulness=1",
                "--scale",
                "2",
                "--binary-neutral",
                "high",
            ]
        )
        == 0
    )
    assert out.exists() and (tmp_path / "prefs" / "p.manifest.json").exists()
    converted = tmp_path / "long.csv"
    assert (
        main(
            ["survey", "convert", "--ratings", str(survey / "aligniverse"), "--out", str(converted)]
        )
        == 0
    )
    assert converted.read_text().startswith("rater_id,")
    assert main(["config", "show", "prefs.scale=3"]) == 0
    assert "scale: 3" in capsys.readouterr().out


def test_config_errors_exit_1_with_one_line(tmp_path, capsys):
    code = main(
        [
            "prefs",
            "build",
            "--ratings",
            "x.csv",
            "--out",
            str(tmp_path / "o.jsonl"),
            "prefs.scael=3",
        ]
    )
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "prefs.scael: unknown key" in err
    code = main(
        [
            "prefs",
            "build",
            "--ratings",
            "x.csv",
            "--out",
            str(tmp_path / "o.jsonl"),
            "--weights",
            "tox",
        ]
    )
    assert code == 1 and "--weights" in capsys.readouterr().err


def test_debug_shows_traceback(tmp_path, capsys):
    assert main(["--debug", "survey", "validate", "--ratings", str(tmp_path / "none.csv")]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "file not found" in err


def test_survey_and_prefs_paths_do_not_import_jax(tmp_path):
    code = f"""
import sys
from jaxalign.cli import main
assert main(["survey", "simulate", "--out", r"{tmp_path / "s"}", "--participants", "60"]) == 0
assert main(["survey", "analyze", "--ratings", r"{tmp_path / "s" / "ratings.parquet"}", "--out", r"{tmp_path / "a"}",
             "analysis.bootstrap=100", "analysis.min_raters=2"]) == 0
assert main(["prefs", "build", "--ratings", r"{tmp_path / "s" / "ratings.parquet"}", "--out", r"{tmp_path / "p.jsonl"}"]) == 0
heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("jax", "jaxlib", "flax", "optax", "torch", "transformers"))
assert not heavy, heavy
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_analyze_lenient_writes_dropped_rows(ratings, tmp_path, capsys):
    from jaxalign.survey.readers import write_long

    path = tmp_path / "r.csv"
    write_long(ratings.head(2000), path)
    lines = path.read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",9"  # rating out of range on data row 5
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "an"
    args = [
        "survey",
        "analyze",
        "--ratings",
        str(path),
        "--out",
        str(out),
        "analysis.bootstrap=100",
    ]
    assert main(args) == 1 and not out.exists()
    assert main([*args, "--lenient"]) == 0
    report = (out / "dropped_rows.csv").read_text().splitlines()
    assert len(report) == 2 and ",5,rating,9," in report[1]
    capsys.readouterr()

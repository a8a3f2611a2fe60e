"""Hostile and broken inputs through the CLI: exit 1 or 2, one stderr line naming the user's
path (and row/key), no traceback, nothing created, existing files byte-identical."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pandas as pd
import pytest

from jaxalign.cli import main

GRPO = str(Path(__file__).parents[1] / "configs/train/tiny_grpo.yaml")
BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]" for a, b in zip("abcdefgh", "bcdefghi")]
)


def _snapshot(root):
    """Every path under `root` with its bytes (files) and mode."""
    return {
        str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mode)
        for p in sorted(root.rglob("*"))
    }


def _run(argv, capsys):
    """(exit code, stdout, stderr) of one in-process CLI call."""
    try:
        code = main(argv)
    except SystemExit as exit_info:
        code = exit_info.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def ratings_csv(ratings, tmp_path):
    """A small valid long-format ratings file in the test directory."""
    from jaxalign.survey.readers import write_long

    path = tmp_path / "ratings.csv"
    write_long(ratings.head(300), path)
    return path


def _jsonl_with(tmp_path, ratings, column, value, name="bad.jsonl"):
    """A JSONL ratings file whose 4th record has `column` set to `value`."""
    from jaxalign.survey.readers import write_long

    good = tmp_path / "good.jsonl"
    write_long(ratings.head(40), good)
    rows = [json.loads(line) for line in good.read_text().splitlines()]
    good.unlink()
    rows[3][column] = value
    (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return name


def _parquet_with(tmp_path, ratings, column, convert, name="bad.parquet"):
    """A Parquet ratings file whose `column` is typed as `convert` makes it (timestamps, bytes)."""
    frame = ratings.head(40).copy()
    frame[column] = convert(frame[column])
    frame.to_parquet(tmp_path / name, index=False)
    return name


def _tiny_model(tmp_path, name="model", **changes):
    """A tiny HF directory (config.json + model.safetensors) with `changes` in config.json."""
    from jaxalign.models.config import ModelConfig
    from jaxalign.models.loading import random_tensors
    from jaxalign.models.weights import write_safetensors

    hf = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": 400,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "num_key_value_heads": 1,
        "max_position_embeddings": 64,
        "tie_word_embeddings": True,
    }
    directory = tmp_path / name
    directory.mkdir()
    write_safetensors(
        directory / "model.safetensors", random_tensors(ModelConfig.from_hf(hf), scale=0.02)
    )
    (directory / "config.json").write_text(json.dumps({**hf, **changes}))
    return directory


def _bad_header(tmp_path, header):
    """A model directory whose safetensors header is `header` (a JSON value)."""
    directory = _tiny_model(tmp_path)
    blob = json.dumps(header).encode()
    (directory / "model.safetensors").write_bytes(struct.pack("<Q", len(blob)) + blob)
    return "model"


def _user_dir(tmp_path, name="mine"):
    """A directory holding a user's file."""
    (tmp_path / name).mkdir()
    (tmp_path / name / "thesis.tex").write_text("years of work")
    return name


def _file(tmp_path, name, text="user data"):
    """A user's file."""
    (tmp_path / name).write_text(text)
    return name


# (id, setup(tmp_path, ratings_csv, ratings) -> argv, exit code, words stderr must contain)
CASES = [
    (
        "simulate-over-user-dir",
        lambda t, r, f: ["survey", "simulate", "--out", _user_dir(t)],
        1,
        ["mine: directory is not empty"],
    ),
    (
        "simulate-over-file",
        lambda t, r, f: ["survey", "simulate", "--out", _file(t, "notes.txt")],
        1,
        ["notes.txt: is a file"],
    ),
    (
        "simulate-out-dot",
        lambda t, r, f: ["survey", "simulate", "--out", "."],
        1,
        [".: is the current directory"],
    ),
    (
        "analyze-over-user-dir",
        lambda t, r, f: ["survey", "analyze", "--ratings", "ratings.csv", "--out", _user_dir(t)],
        1,
        ["mine: directory is not empty"],
    ),
    (
        "analyze-out-holds-input",
        lambda t, r, f: ["survey", "analyze", "--ratings", "ratings.csv", "--out", "."],
        1,
        [".: is the current directory"],
    ),
    (
        "export-over-user-dir",
        lambda t, r, f: ["model", "export", "--out", _user_dir(t)],
        1,
        ["mine: directory is not empty"],
    ),
    (
        "export-onto-its-input",
        lambda t, r, f: (
            ["model", "export", "--model", "m", "--out", "m", "--overwrite"]
            if _user_dir(t, "m")
            else []
        ),
        1,
        ["m: is also an input (m)"],
    ),
    (
        "prefs-out-is-ratings",
        lambda t, r, f: ["prefs", "build", "--ratings", _copy_as(t, "r.jsonl"), "--out", "r.jsonl"],
        1,
        ["r.jsonl: is also an input"],
    ),
    (
        "prefs-over-user-file",
        lambda t, r, f: [
            "prefs",
            "build",
            "--ratings",
            "ratings.csv",
            "--out",
            _file(t, "p.jsonl"),
        ],
        1,
        ["p.jsonl: file exists and was not written by prefs build"],
    ),
    (
        "prefs-parent-is-file",
        lambda t, r, f: (
            ["prefs", "build", "--ratings", "ratings.csv", "--out", "f/p.jsonl"]
            if _file(t, "f")
            else []
        ),
        1,
        ["f/p.jsonl: cannot write here"],
    ),
    (
        "convert-out-is-ratings",
        lambda t, r, f: ["survey", "convert", "--ratings", "ratings.csv", "--out", "ratings.csv"],
        1,
        ["ratings.csv: is also an input"],
    ),
    (
        "validate-report-is-ratings",
        lambda t, r, f: [
            "survey",
            "validate",
            "--ratings",
            "ratings.csv",
            "--report",
            "ratings.csv",
        ],
        1,
        ["ratings.csv: is also an input"],
    ),
    (
        "validate-report-is-dir",
        lambda t, r, f: [
            "survey",
            "validate",
            "--ratings",
            "ratings.csv",
            "--report",
            _user_dir(t),
        ],
        1,
        ["mine: is a directory"],
    ),
    (
        "reward-train-over-user-dir",
        lambda t, r, f: ["reward", "train", "--ratings", "ratings.csv", "--out", _user_dir(t)],
        1,
        ["mine: directory is not empty"],
    ),
    (
        "yaml-alias-bomb",
        lambda t, r, f: ["config", "show", "--config", _file(t, "bomb.yaml", BOMB)],
        1,
        ["bomb.yaml: YAML expands to more than"],
    ),
    (
        "learning-rate-nan",
        lambda t, r, f: ["config", "show", "optim.learning_rate=.nan"],
        1,
        ["optim.learning_rate: nan is not a finite number"],
    ),
    (
        "learning-rate-inf",
        lambda t, r, f: ["config", "show", "optim.learning_rate=.inf"],
        1,
        ["optim.learning_rate: inf is not a finite number"],
    ),
    (
        "buckets-empty",
        lambda t, r, f: ["config", "show", "data.buckets=[]"],
        1,
        ["buckets: at least one row width"],
    ),
    (
        "buckets-unsorted",
        lambda t, r, f: ["config", "show", "data.buckets=[512,64]"],
        1,
        ["buckets: [512, 64] must be strictly increasing"],
    ),
    (
        "rating-is-dict",
        lambda t, r, f: ["survey", "validate", "--ratings", _jsonl_with(t, r, "rating", {"a": 1})],
        1,
        ["bad.jsonl, row 4, column 'rating': a mapping"],
    ),
    (
        "rating-is-list",
        lambda t, r, f: (
            ["prefs", "build", "--out", "p.jsonl", "--ratings", _jsonl_with(t, r, "rating", [1, 2])]
        ),
        1,
        ["bad.jsonl, row 4, column 'rating': a list"],
    ),
    (
        "rating-is-timestamp-parquet",
        lambda t, r, f: (
            [
                "survey",
                "validate",
                "--ratings",
                _parquet_with(
                    t, r, "rating", lambda c: pd.Timestamp("2024-01-01") + pd.to_timedelta(c, "D")
                ),
            ]
        ),
        1,
        ["bad.parquet, row 1, column 'rating': a Timestamp", "is not a rating"],
    ),
    (
        "rating-is-bytes-parquet",
        lambda t, r, f: (
            [
                "prefs",
                "build",
                "--out",
                "p.jsonl",
                "--ratings",
                _parquet_with(t, r, "rating", lambda c: [str(v).encode() for v in c]),
            ]
        ),
        1,
        ["bad.parquet, row 1, column 'rating': bytes b'", "is not a rating"],
    ),
    (
        "rating-is-timestamp-jsonl",
        lambda t, r, f: (
            ["survey", "validate", "--ratings", _jsonl_with(t, r, "rating", "2024-01-01T00:00:00")]
        ),
        1,
        ["bad.jsonl, row 4, column 'rating': '2024-01-01T00:00:00' is not a rating"],
    ),
    (
        "rater-id-is-list",
        lambda t, r, f: ["survey", "validate", "--ratings", _jsonl_with(t, r, "rater_id", ["a"])],
        1,
        ["bad.jsonl, row 4, column 'rater_id': a list"],
    ),
    (
        "model-1e9-layers",
        lambda t, r, f: ["model", "info", str(_tiny_model(t, num_hidden_layers=1e9).name)],
        1,
        ["model/config.json: num_hidden_layers=1000000000 is out of range"],
    ),
    (
        "safetensors-header-list",
        lambda t, r, f: ["model", "info", _bad_header(t, [1, 2])],
        1,
        ["model/model.safetensors: safetensors header is not a JSON object"],
    ),
    (
        "safetensors-negative-shape",
        lambda t, r, f: [
            "model",
            "info",
            _bad_header(t, {"x": {"dtype": "F32", "shape": [-4], "data_offsets": [0, 0]}}),
        ],
        1,
        ["model/model.safetensors: tensor x: shape [-4]"],
    ),
    ("generate-tokens-negative", lambda t, r, f: _gen("--max-new-tokens", "-1"), 2, ["-1"]),
    ("generate-temperature-negative", lambda t, r, f: _gen("--temperature", "-1"), 2, ["-1"]),
    ("generate-top-p-5", lambda t, r, f: _gen("--top-p", "5"), 2, ["--top-p: 5"]),
    ("generate-top-k-negative", lambda t, r, f: _gen("--top-k", "-3"), 2, ["--top-k: -3"]),
    ("eval-prompts-negative", lambda t, r, f: ["eval", "--prompts", "-1"], 2, ["--prompts: -1"]),
    (
        "export-overrides-without-run-config",
        lambda t, r, f: ["model", "export", "--out", "e", "lora.rank=8"],
        1,
        ["lora.rank=8: key=value overrides apply to --run-config"],
    ),
    (
        "export-into-the-run-it-reads",
        lambda t, r, f: [
            "model",
            "export",
            "--run-config",
            _file(t, "run.yaml", "train: {run_dir: r}\n"),
            "--out",
            "r/export",
        ],
        1,
        ["r/export: is inside r, which this export reads"],
    ),
    (
        "export-model-and-run-config",
        lambda t, r, f: [
            "model",
            "export",
            "--model",
            "m",
            "--run-config",
            _file(t, "run.yaml", "train: {run_dir: r}\n"),
            "--out",
            "e",
        ],
        1,
        ["--model m and --run-config run.yaml: give one of them"],
    ),
    (
        "train-run-dir-user-dir",
        lambda t, r, f: ["train", "--config", GRPO, f"train.run_dir={_user_dir(t)}"],
        1,
        ["train.run_dir: mine is not a jaxalign run directory (it holds thesis.tex)"],
    ),
    (
        "train-run-dir-user-config",
        lambda t, r, f: (
            ["train", "--config", GRPO, "train.run_dir=exp"]
            if _file(t / _user_dir(t, "exp"), "config.yaml", "model: {}\n")
            else []
        ),
        1,
        ["train.run_dir: exp is not a jaxalign run directory"],
    ),
    (
        "train-run-dir-dot",
        lambda t, r, f: ["train", "--config", GRPO, "train.run_dir=."],
        1,
        ["train.run_dir: . is the current directory"],
    ),
    (
        "grpo-prompts-missing",
        lambda t, r, f: ["train", "--config", GRPO, "grpo.prompts=no.jsonl", "train.run_dir=r"],
        1,
        ["no.jsonl: prompt file (grpo.prompts) not found"],
    ),
    (
        "grpo-prompts-empty",
        lambda t, r, f: ["train", "--config", GRPO, f"grpo.prompts={_file(t, 'p.jsonl', ' ')}"],
        1,
        ["p.jsonl: prompt file (grpo.prompts) is empty"],
    ),
    (
        "reward-train-bad-kind",
        lambda t, r, f: ["reward", "train", "--ratings", str(f), "--out", "m", "--kind", "nope"],
        2,
        ["argument --kind: invalid choice: 'nope'", "ridge"],
    ),
    (
        "reward-train-bad-fold",
        lambda t, r, f: ["reward", "train", "--ratings", str(f), "--out", "m", "--fold", "nope"],
        2,
        ["argument --fold: invalid choice: 'nope'", "judge"],
    ),
]


def _gen(flag, value):
    """A generate call with one bad flag."""
    return ["generate", "--prompt", "hi", flag, value]


def _copy_as(tmp_path, name):
    """ratings.csv converted to another long format in the test directory."""
    from jaxalign.survey.readers import read_table, write_long

    frame = read_table(tmp_path / "ratings.csv").drop(columns=["_file", "_row"])
    write_long(frame, tmp_path / name)
    return name


@pytest.mark.parametrize(
    ("setup", "code", "words"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_hostile_input(setup, code, words, ratings_csv, ratings, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    argv = setup(tmp_path, ratings, ratings_csv)
    before = _snapshot(tmp_path)
    got, _, err = _run(argv, capsys)
    assert got == code, err
    assert err.count("\n") == 1 and err.endswith("\n"), err
    assert "Traceback" not in err and "internal error" not in err, err
    for word in words:
        assert word in err, err
    assert _snapshot(tmp_path) == before


def test_own_outputs_replaced_others_refused_and_umask_followed(tmp_path, monkeypatch, capsys):
    import os

    monkeypatch.chdir(tmp_path)
    old = os.umask(0o027)
    try:
        sim = ["survey", "simulate", "--participants", "60", "--out"]
        assert main([*sim, "s"]) == 0
        assert main([*sim, "s"]) == 0  # its own earlier output: replaced
        assert json.loads((tmp_path / "s" / ".jaxalign-output.json").read_text())["command"] == (
            "survey simulate"
        )
        modes = {p.stat().st_mode & 0o777 for p in (tmp_path / "s").rglob("*")}
        assert modes == {0o640, 0o750}, sorted(map(oct, modes))
        # Another command's output is not this command's to replace.
        args = ["survey", "analyze", "--ratings", "s/ratings.parquet", "analysis.bootstrap=100"]
        assert main([*args, "--out", "s"]) == 1
        assert "s: is also an input" in capsys.readouterr().err
        (tmp_path / "r.parquet").write_bytes((tmp_path / "s" / "ratings.parquet").read_bytes())
        args[3] = "r.parquet"
        assert main([*args, "--out", "s"]) == 1
        assert "not an earlier `jaxalign survey analyze` output" in capsys.readouterr().err
        _user_dir(tmp_path)
        assert main([*sim, "mine"]) == 1
        assert main([*sim, "mine", "--overwrite"]) == 0
        assert not (tmp_path / "mine" / "thesis.tex").exists()
    finally:
        os.umask(old)


def test_prefs_rebuild_replaces_own_files_and_drops_stale_report(ratings_csv, tmp_path, capsys):
    lines = ratings_csv.read_text().splitlines()
    lines[5] = lines[5].rsplit(",", 1)[0] + ",9"  # one bad rating
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n")
    out = tmp_path / "p.jsonl"
    args = ["prefs", "build", "--out", str(out), "--keep-ties"]
    assert main([*args, "--ratings", str(bad), "--lenient"]) == 0
    dropped = tmp_path / "p.dropped.csv"
    assert dropped.exists()
    assert main([*args, "--ratings", str(ratings_csv)]) == 0  # own files: replaced
    assert not dropped.exists()
    manifest = json.loads((tmp_path / "p.manifest.json").read_text())
    assert manifest["reading"]["problems"] == 0
    out_text = capsys.readouterr().out
    assert "{" not in out_text and "preference pairs" in out_text  # a human summary


def test_validate_report(ratings_csv, tmp_path, capsys):
    report = tmp_path / "report.csv"
    args = ["survey", "validate", "--report", str(report)]
    assert main([*args, "--ratings", str(ratings_csv)]) == 0  # no --lenient, no problems
    assert report.read_text() == "file,row,column,value,problem\n"
    assert "rows read" in capsys.readouterr().out
    lines = ratings_csv.read_text().splitlines()
    broken = [lines[0]] + [line.rsplit(",", 1)[0] + ",9" for line in lines[1:]]
    all_bad = tmp_path / "all_bad.csv"
    all_bad.write_text("\n".join(broken) + "\n")
    assert main([*args, "--ratings", str(all_bad)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"every problem is listed in {report}" in err
    assert len(report.read_text().splitlines()) == len(lines)  # header + one per row


@pytest.mark.slow
def test_generate_refuses_more_tokens_than_the_context(tiny_tokenizer, tmp_path, capsys):
    import shutil

    model = _tiny_model(tmp_path)
    for item in tiny_tokenizer.iterdir():
        shutil.copy(item, model)
    argv = ["generate", "--model", str(model), "--prompt", "hi", "--max-new-tokens", "1000000000"]
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--max-new-tokens 1000000000" in err and str(model) in err
    assert main([*argv[:-1], "8", "--greedy", "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["completion_ids"]) <= 8


def test_help_texts_show_defaults():
    from jaxalign.cli import build_parser

    parser = build_parser()
    for group in parser._subparsers._group_actions[0].choices.values():
        subs = group._subparsers
        commands = subs._group_actions[0].choices.values() if subs else [group]
        for command in commands:
            text = command.format_help()
            for action in command._actions:
                assert action.help, (command.prog, action.dest)
                shown = action.default not in (None, False, [], "==SUPPRESS==")
                if shown and action.option_strings:
                    assert f"(default: {action.default})" in " ".join(text.split()), (
                        command.prog,
                        action.dest,
                    )
    train = parser.parse_args(["train"]).func.__module__
    assert train == "jaxalign.cli.train"
    train_help = " ".join(
        parser._subparsers._group_actions[0].choices["train"].format_help().split()
    )
    assert "train.run_dir" in train_help and "metrics.jsonl" in train_help


def test_internal_error_with_debug_and_one_log_format(monkeypatch, capsys):
    import logging

    import jaxalign.cli.config as config_cli

    def noisy(args):
        logging.getLogger("jaxalign").warning("careful")
        logging.getLogger("absl").warning("library noise")
        raise RuntimeError("boom")

    monkeypatch.setattr(config_cli, "cmd_config_show", noisy)
    assert main(["config", "show"]) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == "jaxalign: warning: careful"
    assert "noise" not in err and "WARNING:" not in err and "rerun with --debug" in err
    assert main(["--debug", "config", "show"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "rerun with --debug" not in err


@pytest.mark.slow
def test_model_info_decodes_no_weights(monkeypatch, capsys):
    import jaxalign.models.gguf as gguf

    def refuse(path):
        raise AssertionError("model info must not dequantize the model")

    monkeypatch.setattr(gguf, "read_gguf", refuse)
    assert main(["model", "info"]) == 0
    out = capsys.readouterr().out
    assert "4-bit" in out and "Q4_1" in out and "134,515,008" in out


def test_staging_errors_name_the_users_path(tmp_path, monkeypatch):
    import tempfile

    from jaxalign.errors import DataError
    from jaxalign.io import staged_dir, staged_files

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".out.xyz.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", denied)
    monkeypatch.setattr(tempfile, "mkdtemp", denied)
    for stage in (staged_files, staged_dir):
        with pytest.raises(DataError) as err, stage(tmp_path / "out"):
            pass
        assert str(err.value) == f"{tmp_path / 'out'}: cannot write: Permission denied"


def test_run_dir_check_keeps_runs_with_added_files(tmp_path):
    from jaxalign.errors import ConfigError
    from jaxalign.train.run_dir import prepare

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / ".results.json.x1.tmp").write_text("")  # left by a killed run
    assert prepare(run) == run  # a run killed before it saved its config
    (run / "notes.md").write_text("mine")
    with pytest.raises(ConfigError, match=r"it holds notes\.md"):
        prepare(run)
    (run / "config.yaml").write_text("# run id 0123456789ab\nmodel: {}\n")
    assert prepare(run) == run  # a run the user added files to still resumes

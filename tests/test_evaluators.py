"""Evaluators chosen by name (jaxalign/eval/registry.py) and `jaxalign eval` picking them."""

from __future__ import annotations

import json

import pytest

from jaxalign.cli import main
from jaxalign.errors import ConfigError
from jaxalign.eval import registry


@pytest.fixture
def toy():
    """A toy evaluator registered for one test."""
    seen = []

    @registry.register("toy")
    def toy_evaluator(run):
        seen.append(run)
        return registry.Comparison(rows={"toy/score": (0.25, 0.75)}, note="(toy)", step=7)

    yield seen
    del registry._REGISTRY["toy"]


def test_a_registered_evaluator_is_picked_by_name(toy, tmp_path, capsys):
    run = tmp_path / "run"
    args = ["eval", f"train.run_dir={run}", "eval.evaluators=[toy]", "--prompts", "3"]
    assert main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"run {run} (checkpoint step 7), held-out pairs:",
        f"  {'toy/score':<26} base 0.250  tuned 0.750 (toy)",
    ]
    assert len(toy) == 1 and toy[0].prompts == 3 and toy[0].run_dir == run
    assert "toy" in registry.names() and not run.exists()  # nothing else ran


def test_preferences_evaluator_reads_the_runs_results(toy, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    results = {"base/rewards/accuracies": 0.5, "eval/rewards/accuracies": 0.875, "step": 4}
    (run / "results.json").write_text(json.dumps(results))
    assert main(["eval", f"train.run_dir={run}", "eval.evaluators=[preferences, toy]"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1] == f"  {'rewards/accuracies':<26} base 0.500  tuned 0.875"
    assert out[2].startswith("  toy/score") and len(out) == 3


def test_an_unknown_evaluator_is_refused_in_one_line(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"^eval\.evaluators: 'nope' is not an evaluator"):
        registry.check(("preferences", "nope"))
    assert main(["eval", f"train.run_dir={tmp_path / 'r'}", "eval.evaluators=[nope]"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        "jaxalign: error: eval.evaluators: 'nope' is not an evaluator; "
        "expected one of behaviour, generations, preferences"
    ]
    assert not (tmp_path / "r").exists()

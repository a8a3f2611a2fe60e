"""End to end: configs/experiments/scale.yaml in smoke mode with the real stages (slow)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from jaxalign.cli import main

REPO = Path(__file__).resolve().parent.parent
SCALE = str(REPO / "configs" / "experiments" / "scale.yaml")


# The test session fakes 8 CPU devices (conftest); the registry's generations evaluator cannot
# sample from parameters sharded over several devices, so cells use one, as on a laptop.
ONE_DEVICE = "train.mesh_devices=1"


def experiment(action: str, root: Path, *extra: str, config: str = SCALE) -> int:
    """`jaxalign experiment ACTION scale.yaml --mode smoke --root ROOT ... k=v`."""
    args = ["experiment", action, config, "--mode", "smoke", "--root", str(root), *extra]
    return main([*args, ONE_DEVICE])


# scale.yaml's 5-point cell trained by GRPO: it shares that cell's survey, preferences, judge,
# base replies and compiled functions, so only the reward model, GRPO and tuned replies run.
GRPO = """name: grpo_smoke
base: {base}
grid: {{train.algorithm: [grpo]}}
modes: {modes}
"""


def grpo_cell_reports_reward_gain(root: Path, tmp_path: Path) -> None:
    """Run the one GRPO cell under `root` (after scale's run) and check the gains it reports."""
    exp = tmp_path / "grpo.yaml"
    configs = REPO / "configs"
    exp.write_text(
        GRPO.format(
            base=configs / "prefs/toxicity_preserve.yaml", modes=configs / "experiments/modes.yaml"
        )
    )
    assert experiment("run", root, config=str(exp)) == 0
    (status,) = [
        json.loads(p.read_text()) for p in (root / "grpo_smoke" / "cells").glob("*/status.json")
    ]
    assert status["status"] == "done", status
    actions = {name: s["action"] for name, s in status["stages"].items()}
    assert actions == {
        "survey": "skipped",
        "prefs": "skipped",
        "reward": "ran",
        "train": "ran",
        "eval": "ran",
    }
    assert experiment("report", root, config=str(exp)) == 0
    summary = json.loads((root / "grpo_smoke" / "report" / "summary.json").read_text())
    (gains,) = summary["reward_vs_judge"]
    assert gains["algorithm"] == "grpo" and gains["seeds"] == 1
    assert isinstance(gains["reward_gain"], float) and isinstance(gains["judge_gain"], float)
    (cell,) = summary["cells"]
    assert cell["reward_vs_judge"]["judge_heads"] == ["toxicity[all]"]
    assert (
        "## Reward gain beside judge gain"
        in (root / "grpo_smoke" / "report" / "report.md").read_text()
    )


def report_files(root: Path) -> dict[str, bytes]:
    """Every file of ROOT/scale/report, by relative path."""
    out = root / "scale" / "report"
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def stage_actions(root: Path) -> dict[str, dict[str, str]]:
    """cell id -> stage -> 'ran' | 'skipped', from the cells' status.json of the last run."""
    out = {}
    for status in sorted((root / "scale" / "cells").glob("*/status.json")):
        data = json.loads(status.read_text())
        assert data["status"] == "done", data
        out[data["id"]] = {name: s["action"] for name, s in data["stages"].items()}
    return out


@pytest.mark.slow
def test_scale_smoke_resumes_as_a_no_op_and_shards_give_the_same_report(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    assert experiment("run", one) == 0
    first = stage_actions(one)
    assert len(first) == 3 and all(a["train"] == a["eval"] == "ran" for a in first.values())
    assert sum(a["survey"] == "ran" for a in first.values()) == 1  # shared: computed once
    assert experiment("run", one) == 0  # the second run does nothing
    assert all(set(a.values()) == {"skipped"} for a in stage_actions(one).values())
    assert experiment("report", one) == 0

    assert experiment("run", two, "--shard", "0/2") == 0
    assert len(stage_actions(two)) == 2  # 3 cells: shard 0 of 2 holds the 1st and 3rd by id
    assert experiment("run", two, "--shard", "1/2") == 0
    assert experiment("report", two) == 0
    assert report_files(one) == report_files(two)

    summary = json.loads(report_files(one)["summary.json"])
    assert [c["status"] for c in summary["cells"]] == ["done"] * 3
    assert {c["name"] for c in summary["comparisons"]} == {"five_vs_binary", "three_vs_binary"}
    assert all(c["paper"] for c in summary["comparisons"])
    grpo_cell_reports_reward_gain(one, tmp_path)

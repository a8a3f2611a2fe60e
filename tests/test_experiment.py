"""The experiment runner with fake stages (no jax): grids, ids, shards, resume, locks, report."""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

import pytest

from jaxalign.config.experiment import ExperimentUsageError, load_experiment
from jaxalign.experiments import locks
from jaxalign.experiments.cells import expand, parse_shard, shard
from jaxalign.experiments.report import write_report
from jaxalign.experiments.runner import Runner, Stage, StageChanged, read_json

EXP = """
name: fake
grid:
  prefs.scale: [5, 3, 2]
conditions:
  soft: {prefs.disagreement: soft}
seeds: [0, 1]
modes:
  smoke: {set: {train.steps: 2}}
compare:
  - {name: five_vs_two, dimension: toxicity, a: prefs.scale=5, b: prefs.scale=2, paper: "~22%"}
"""


def write_exp(tmp_path: Path, text: str = EXP, name: str = "exp.yaml") -> Path:
    """An experiment file in tmp_path."""
    path = tmp_path / name
    path.write_text(text)
    return path


def fake_stages(
    calls: list, fail_on: str = "", interrupt_on: str = "", interrupt_stage: str = "train"
) -> list[Stage]:
    """shared 'survey' -> per-cell 'train' -> 'eval' writing records.json; `calls` logs runs."""

    def survey(ctx):
        calls.append(("survey", ctx.cell.id))
        (ctx.dir / "ratings.txt").write_text("r")
        return "s1"

    def train(ctx):
        calls.append(("train", ctx.cell.id))
        if fail_on and fail_on in ctx.cell.condition:
            raise ValueError(f"boom in {ctx.cell.condition}")
        if interrupt_stage == "train" and interrupt_on and interrupt_on in ctx.cell.condition:
            raise KeyboardInterrupt
        return f"t-{ctx.cell.id}"

    def evaluate(ctx):
        calls.append(("eval", ctx.cell.id))
        if interrupt_stage == "eval" and interrupt_on and interrupt_on in ctx.cell.condition:
            raise KeyboardInterrupt
        scale = ctx.cell.config.prefs.scale
        diff = -0.1 * scale - 0.01 * ctx.cell.seed
        rec = {"dimension": "toxicity", "scorer": "judge", "group": "all", "base_mean": 1.0}
        rec.update(tuned_mean=1.0 + diff, diff=diff, ci_low=diff - 0.05, ci_high=diff + 0.05)
        (ctx.dir / "records.json").write_text(json.dumps({"records": [rec]}))
        return f"e-{ctx.cell.id}"

    return [
        Stage("survey", lambda c, up: {"sim": c.config.simulate.seed}, survey, shared=True),
        Stage("train", lambda c, up: {"up": up["survey"]["output"], "id": c.id}, train),
        Stage("eval", lambda c, up: {"up": up["train"]["output"]}, evaluate),
    ]


def runner_for(tmp_path: Path, stages, root: str = "root", **kw) -> Runner:
    """A quiet runner under tmp_path/root."""
    return Runner(tmp_path / root, "fake", stages, log=lambda _: None, **kw)


def test_grid_expansion_crosses_axes_adds_named_conditions_and_seeds(tmp_path):
    text = EXP.replace("prefs.scale: [5, 3, 2]", "prefs.scale: [5, 3, 2]\n  dpo.beta: [0.1, 0.2]")
    text = text.replace("a: prefs.scale=5, b: prefs.scale=2", "a: soft, b: soft")
    exp = load_experiment(write_exp(tmp_path, text))
    labels = [label for label, _ in exp.conditions()]
    assert labels[:2] == ["prefs.scale=5,dpo.beta=0.1", "prefs.scale=5,dpo.beta=0.2"]
    assert len(labels) == 3 * 2 + 1 and labels[-1] == "soft"
    cells = expand(exp, "smoke")
    assert len(cells) == 7 * 2
    assert {c.config.train.steps for c in cells} == {2}
    assert {c.config.data.seed for c in cells} == {0, 1}


def test_ids_do_not_depend_on_key_order(tmp_path):
    a = EXP.replace(
        "smoke: {set: {train.steps: 2}}", "smoke: {set: {train.steps: 2, dpo.beta: 0.2}}"
    )
    b = EXP.replace(
        "smoke: {set: {train.steps: 2}}", "smoke: {set: {dpo.beta: 0.2, train.steps: 2}}"
    )
    b = b.replace("seeds: [0, 1]", "seeds: [1, 0]")
    ids_a = [c.id for c in expand(load_experiment(write_exp(tmp_path, a, "a.yaml")), "smoke")]
    ids_b = [c.id for c in expand(load_experiment(write_exp(tmp_path, b, "b.yaml")), "smoke")]
    assert ids_a == ids_b and len(set(ids_a)) == len(ids_a)


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
def test_shards_partition_cells_exactly(tmp_path, n):
    cells = expand(load_experiment(write_exp(tmp_path)), "smoke")
    parts = [shard(cells, i, n) for i in range(n)]
    ids = [c.id for part in parts for c in part]
    assert sorted(ids) == sorted(c.id for c in cells) and len(ids) == len(set(ids))
    # The same shard twice gives the same cells (the order of the input list is irrelevant).
    assert [c.id for c in shard(list(reversed(cells)), 0, n)] == [c.id for c in parts[0]]


def test_shard_auto_from_slurm_and_indexed_job():
    slurm = {"SLURM_ARRAY_TASK_ID": "3", "SLURM_ARRAY_TASK_COUNT": "4"}
    assert parse_shard("auto", slurm) == (3, 4)
    assert parse_shard("auto", {"JOB_COMPLETION_INDEX": "1", "JAXALIGN_SHARD_COUNT": "2"}) == (1, 2)
    for bad in ("2/2", "0/0", "a/b", "-1/2"):
        with pytest.raises(ExperimentUsageError, match="--shard"):
            parse_shard(bad)
    with pytest.raises(ExperimentUsageError, match="SLURM_ARRAY_TASK_ID"):
        parse_shard("auto", {})


def test_done_stages_are_skipped_and_shared_stages_run_once(tmp_path):
    cells = expand(load_experiment(write_exp(tmp_path)), "smoke")
    calls: list = []
    first = runner_for(tmp_path, fake_stages(calls)).run(cells)
    assert [s["status"] for s in first] == ["done"] * len(cells)
    assert sum(name == "survey" for name, _ in calls) == 1  # one simulate seed: one survey
    calls.clear()
    second = runner_for(tmp_path, fake_stages(calls)).run(cells)
    assert calls == []
    assert {a["action"] for s in second for a in s["stages"].values()} == {"skipped"}
    status = read_json(tmp_path / "root" / "fake" / "cells" / cells[0].id / "status.json")
    assert status["stages"]["train"]["action"] == "skipped"


@pytest.mark.parametrize(
    ("where", "after"), [("train", ["skipped", "ran", "ran"]), ("eval", ["skipped"] * 2 + ["ran"])]
)
def test_a_run_killed_between_stages_resumes(tmp_path, where, after):
    cells = expand(load_experiment(write_exp(tmp_path)), "smoke")[:1]
    calls: list = []
    stages = fake_stages(calls, interrupt_on=cells[0].condition, interrupt_stage=where)
    with pytest.raises(KeyboardInterrupt):
        runner_for(tmp_path, stages).run(cells)
    assert calls[-1] == (where, cells[0].id)
    calls.clear()
    (status,) = runner_for(tmp_path, fake_stages(calls)).run(cells)
    assert status["status"] == "done"
    assert [a["action"] for a in status["stages"].values()] == after
    assert calls[0] == (where, cells[0].id)
    assert not (tmp_path / "root" / "fake" / "cells" / f"{cells[0].id}.lock").exists()


def test_failures_stay_in_their_cell(tmp_path):
    cells = expand(load_experiment(write_exp(tmp_path)), "smoke")
    statuses = runner_for(tmp_path, fake_stages([], fail_on="prefs.scale=3")).run(cells)
    failed = [s for s in statuses if s["status"] == "failed"]
    assert len(failed) == 2 and all("boom in prefs.scale=3" in s["error"] for s in failed)
    assert all(s["failed_stage"] == "train" for s in failed)
    assert sum(s["status"] == "done" for s in statuses) == len(cells) - 2
    on_disk = read_json(tmp_path / "root" / "fake" / "cells" / failed[0]["id"] / "status.json")
    assert on_disk["status"] == "failed"


def test_changed_inputs_are_refused_unless_rerun(tmp_path):
    cells = expand(load_experiment(write_exp(tmp_path)), "smoke")[:1]
    runner_for(tmp_path, fake_stages([])).run(cells)
    done = tmp_path / "root" / "fake" / "cells" / cells[0].id / "train.done.json"
    record = json.loads(done.read_text())
    done.write_text(json.dumps({**record, "output": "something else"}))  # train redone elsewhere
    (status,) = runner_for(tmp_path, fake_stages([])).run(cells)
    assert (
        status["status"] == "failed" and "eval" in status["error"] and "--rerun" in status["error"]
    )
    assert StageChanged.__name__ in status["error"]
    (status,) = runner_for(tmp_path, fake_stages([]), rerun=True).run(cells)
    assert status["status"] == "done" and status["stages"]["eval"]["action"] == "ran"


def test_blocked_cells_are_not_run_and_not_failed(tmp_path):
    cells = expand(load_experiment(write_exp(tmp_path)), "smoke")
    runner = runner_for(tmp_path, fake_stages([]), blocked=lambda c: "no" if c.seed else None)
    statuses = runner.run(cells)
    assert {s["status"] for s in statuses if cells[0].id} == {"done", "blocked"}
    assert not any(s["status"] == "failed" for s in statuses)


def test_stale_locks_are_taken_over_and_live_ones_respected(tmp_path):
    path = tmp_path / "x.lock"
    here = socket.gethostname()
    dead = {"host": here, "pid": 2**22 + 12345, "time": time.time()}  # no such pid
    path.write_text(json.dumps(dead))
    assert locks.try_acquire(path)
    assert json.loads(path.read_text())["pid"] == os.getpid()
    live_elsewhere = {"host": "other-node", "pid": 1, "time": time.time()}
    path.write_text(json.dumps(live_elsewhere))
    assert not locks.try_acquire(path)
    with pytest.raises(locks.LockBusy, match="other-node"), locks.lock(path, wait=False):
        pass
    old_elsewhere = {**live_elsewhere, "time": time.time() - 7 * 3600}
    path.write_text(json.dumps(old_elsewhere))
    assert not locks.try_acquire(path)  # the file was touched just now (a heartbeat)
    os.utime(path, (time.time() - 7 * 3600,) * 2)  # a node that died hours ago
    with locks.lock(path, wait=False):
        assert json.loads(path.read_text())["host"] == here
    assert not path.exists()
    path.write_text("{half-writ")  # an owner that died mid-write: judged by the file's age
    assert not locks.try_acquire(path)
    os.utime(path, (time.time() - 7 * 3600,) * 2)
    assert locks.try_acquire(path)


def test_report_shows_missing_cells(tmp_path):
    exp = load_experiment(write_exp(tmp_path))
    cells = expand(exp, "smoke")
    runner = runner_for(tmp_path, fake_stages([]))
    mine = [c for c in shard(cells, 0, 2) if c.condition != "prefs.scale=2"]
    runner.run(mine)
    summary = json.loads((write_report(exp, "smoke", runner, cells) / "summary.json").read_text())
    missing = [c for c in summary["cells"] if c["status"] != "done"]
    assert len(missing) == len(cells) - len(mine) and summary["missing"]
    assert all(c["records"] == [] and c["error"] == "not run yet" for c in missing)
    (comp,) = summary["comparisons"]
    assert comp["status"] == "missing" and comp["paper"] == "~22%"
    text = (runner.exp_dir / "report" / "report.md").read_text()
    assert "missing" in text and "prefs.scale=2/seed" in text


def test_report_is_byte_identical_for_identical_inputs(tmp_path):
    exp = load_experiment(write_exp(tmp_path))
    cells = expand(exp, "smoke")
    reports = []
    for root, parts in (("one", [cells]), ("two", [shard(cells, 1, 2), shard(cells, 0, 2)])):
        runner = runner_for(tmp_path, fake_stages([]), root=root)
        for part in parts:
            runner.run(part)
        out = write_report(exp, "smoke", runner, cells)
        reports.append(
            {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}
        )
    assert reports[0] == reports[1]
    names = set(reports[0])
    assert {"summary.json", "report.md", "tables/cells.csv", "reduction_bars.png"} <= names
    assert {"forest_toxicity.png", "group_matrix_toxicity.png", "seed_spread.png"} <= names
    summary = json.loads(reports[0]["summary.json"])
    (comp,) = summary["comparisons"]
    # reductions: scale 5 -> 0.505 (mean over seeds), scale 2 -> 0.205; (0.505/0.205 - 1) = 146%
    assert comp["status"] == "ok" and comp["greater_pct"] == pytest.approx(146.34, abs=0.01)


def test_results_of_the_behaviour_evaluator_are_read_field_for_field():
    from jaxalign.experiments.records import from_results, reduction, reduction_ci

    row = {"dimension": "toxicity", "scorer": "judge", "group": "gender=female"}
    row.update(base_mean=0.5, tuned_mean=0.4, diff=-0.1, ci_low=-0.15, ci_high=-0.05)
    row.update(p=0.01, p_adj=0.03, effect_size=-0.8, n_prompts=120, lower_is_better=True)
    words = {"dimension": "quality", "scorer": "words", "group": "all", "diff": 3.0}
    words["lower_is_better"] = False
    (judge, quality) = sorted(
        from_results({"records": [row, words]})["records"], key=lambda r: r["scorer"]
    )
    assert judge["group"] == "gender=female" and judge["n_prompts"] == 120
    assert reduction(judge) == pytest.approx(0.1)
    assert reduction_ci(judge) == (0.05, 0.15)
    assert reduction(quality) == 3.0  # the evaluator's direction wins over the dimension's


def test_greater_reduction_is_undefined_when_b_reduction_covers_zero(tmp_path):
    from jaxalign.experiments.report import comparison_rows

    exp = load_experiment(write_exp(tmp_path))
    agg = {"dimension": "toxicity", "scorer": "judge", "group": "all"}
    conds = [
        {**agg, "condition": "prefs.scale=5", "reduction": 0.3, "reduction_ci": [0.2, 0.4]},
        {**agg, "condition": "prefs.scale=2", "reduction": 0.05, "reduction_ci": [-0.01, 0.11]},
    ]
    (row,) = comparison_rows(exp, conds)
    assert row["status"] == "undefined" and row["greater_pct"] is None
    assert row["difference"] == pytest.approx(0.25) and "a - b = +0.2500" in row["ours"]
    conds[1]["reduction_ci"] = [0.01, 0.09]
    (row,) = comparison_rows(exp, conds)
    assert row["status"] == "ok" and row["greater_pct"] == pytest.approx(500.0)


def test_real_stages_point_the_config_at_the_runner_paths(tmp_path):
    from jaxalign.experiments.runner import Context
    from jaxalign.experiments.stages import physical

    (cell,) = expand(load_experiment(write_exp(tmp_path)), "smoke")[:1]
    assert cell.config.train.run_dir == "<cell>/train"  # ids never depend on where runs live
    up = {"prefs": {"dir": "_shared/prefs-abc"}}
    cfg = physical(
        cell, Context(cell, tmp_path / "r" / "cells" / cell.id / "train", up, tmp_path / "r")
    )
    assert cfg.data.prefs == str(
        (tmp_path / "r" / "_shared" / "prefs-abc" / "prefs.jsonl").resolve()
    )
    assert cfg.train.run_dir == str((tmp_path / "r" / "cells" / cell.id / "train").resolve())
    assert cfg.prefs == cell.config.prefs and cfg.optim == cell.config.optim


def _generations(path: Path, base: list[float], tuned: list[float]) -> None:
    """A behaviour evaluator's generations.jsonl: one greedy reply per prompt and model."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for model, values in (("base", base), ("tuned", tuned)):
        for i, v in enumerate(values):
            row = {"prompt_id": f"p{i:02d}", "model": model, "decoding": "greedy"}
            rows.append({**row, "scores": {"judge/toxicity/all": v}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_comparisons_use_paired_bootstrap_when_per_prompt_scores_exist(tmp_path):
    stats = pytest.importorskip("jaxalign.eval.stats")
    from jaxalign.experiments.paired import GENERATIONS, greater_reduction

    rng = __import__("numpy").random.default_rng(0)
    base = list(rng.uniform(0.4, 0.6, 40))
    a = [x - 0.2 + rng.normal(0, 0.02) for x in base]
    b = [x - 0.1 + rng.normal(0, 0.02) for x in base]
    _generations(tmp_path / "a" / GENERATIONS, base, a)
    _generations(tmp_path / "b" / GENERATIONS, base, b)
    found = greater_reduction([tmp_path / "a"], [tmp_path / "b"], "judge/toxicity/all", True)
    assert found["defined"] and 60 < found["pct"] < 140  # truth: 0.2 / 0.1 - 1 = 100%
    direct = stats.greater_reduction(base, a, b, lower_is_better=True, seed=0)
    assert found["pct"] == pytest.approx(direct["pct"])
    # A missing file or another prompt set is no paired design: the report falls back.
    assert greater_reduction([tmp_path / "a"], [tmp_path / "c"], "judge/toxicity/all", True) is None
    _generations(tmp_path / "d" / GENERATIONS, base[:-1], b[:-1])
    assert greater_reduction([tmp_path / "a"], [tmp_path / "d"], "judge/toxicity/all", True) is None


def test_a_held_lock_stays_fresh_through_its_heartbeat(tmp_path):
    path = tmp_path / "cell.lock"
    with locks.lock(path, stale_after=0.5):
        time.sleep(1.0)  # twice the staleness age, but the heartbeat keeps touching the file
        assert not locks.is_stale(path, stale_after=0.5)
        assert not locks.try_acquire(path, stale_after=0.5)
    assert not path.exists()


def test_cells_are_blocked_until_their_algorithm_exists(tmp_path):
    from jaxalign.experiments.stages import blocker

    text = EXP.replace("  soft: {prefs.disagreement: soft}", "  soft: {train.algorithm: grpo}")
    cells = expand(load_experiment(write_exp(tmp_path, text)), "smoke")
    grpo = next(c for c in cells if c.algorithm == "grpo")
    dpo = next(c for c in cells if c.algorithm == "dpo")
    assert "not available" in blocker({"dpo": print})(grpo)
    assert blocker({"dpo": print, "grpo": print})(grpo) is None  # the reward stage gives rewards
    assert blocker({"dpo": print})(dpo) is None
    rewards = [{"builtin": "length", "args": {"target": 8}}]
    with_rewards = expand(
        load_experiment(write_exp(tmp_path, text)), "smoke", {"grpo.rewards": rewards}
    )
    rewarded = next(c for c in with_rewards if c.algorithm == "grpo")
    assert blocker({"dpo": print, "grpo": print})(rewarded) is None


def test_comparisons_prefer_the_judge_when_no_scorer_is_named(tmp_path):
    from jaxalign.experiments.report import comparison_rows

    exp = load_experiment(write_exp(tmp_path))
    conds = [
        {"dimension": "toxicity", "group": "all", "condition": cond, "scorer": scorer}
        | {"reduction": red, "reduction_ci": [red - 0.01, red + 0.01]}
        for cond in ("prefs.scale=5", "prefs.scale=2")
        for scorer, red in (("hatesonar", 0.0), ("judge", 0.2 if cond.endswith("5") else 0.1))
    ]
    (row,) = comparison_rows(exp, conds)
    assert row["scorer"] == "judge" and row["greater_pct"] == pytest.approx(100.0)

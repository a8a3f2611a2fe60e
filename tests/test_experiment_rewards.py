"""GRPO cells in experiments: the shared reward-model stage (train fold, heads matching the
cell's objective, user rewards win, separation from the judge) and the reward gain reported
beside the judge's gain (results.json, eval report, experiment report)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
from test_experiment import EXP, fake_stages, runner_for, write_exp

from jaxalign.config.experiment import load_experiment
from jaxalign.errors import DataError
from jaxalign.experiments import stages as real
from jaxalign.experiments.cells import expand
from jaxalign.experiments.report import write_report
from jaxalign.experiments.runner import Context, Stage, hash_of, read_json

GRPO_EXP = EXP.replace(
    "  soft: {prefs.disagreement: soft}",
    "  grpo: {train.algorithm: grpo}\n"
    "  grpo_multi: {train.algorithm: grpo, prefs.dimensions: [toxicity, helpfulness]}",
).replace("seeds: [0, 1]", "seeds: [0]")
# A user's own reward, with a non-default argument: it must reach the trainer unchanged.
KEY = "prefs.max_raters"
USER_REWARDS = [{"builtin": "length", "args": {"target": 7}, "name": "mine"}]


def grpo_cells(tmp_path: Path, overrides: dict | None = None):
    """The fake experiment's cells with two GRPO conditions (single and two dimensions)."""
    return expand(load_experiment(write_exp(tmp_path, GRPO_EXP)), "smoke", overrides)


def by_label(cells) -> dict:
    """condition -> cell (one seed)."""
    return {c.condition: c for c in cells}


def context(cell, tmp_path: Path, up: dict) -> Context:
    """A stage context under tmp_path/r with `up` as earlier stages' records."""
    return Context(cell, tmp_path / "r" / "cells" / cell.id / "train", up, tmp_path / "r")


UP = {"prefs": {"dir": "_shared/prefs-p"}, "reward": {"dir": "_shared/reward-r"}}


def test_grpo_cells_are_no_longer_blocked_for_want_of_rewards(tmp_path):
    cells = by_label(grpo_cells(tmp_path))
    why = real.blocker({"dpo": print, "grpo": print})
    assert why(cells["grpo"]) is None and why(cells["prefs.scale=5"]) is None
    assert "not available" in real.blocker({"dpo": print})(cells["grpo"])


def test_reward_specs_match_the_objective_and_its_weights(tmp_path):
    cells = by_label(grpo_cells(tmp_path))
    cfg = real.physical(cells["grpo"], context(cells["grpo"], tmp_path, UP))
    model = str((tmp_path / "r" / "_shared" / "reward-r" / "model").resolve())
    assert cfg.grpo.rewards == ({"model": model, "head": "all/toxicity", "weight": 1.0},)
    assert cfg.grpo.prompts.endswith("prefs-p/prefs.jsonl")  # train-split questions only
    multi = real.physical(cells["grpo_multi"], context(cells["grpo_multi"], tmp_path, UP))
    assert [(s["head"], s["weight"]) for s in multi.grpo.rewards] == [
        ("all/toxicity", 0.5),
        ("all/helpfulness", 0.5),
    ]
    p = dataclasses.replace(
        cfg.prefs,
        groups=("gender=female", "gender=male"),
        dimensions=("toxicity", "helpfulness"),
        weights={"toxicity": 3.0},
    )
    specs = real.reward_specs(dataclasses.replace(cfg, prefs=p), "M")
    weights = {s["head"]: s["weight"] for s in specs}
    assert weights["gender=female/toxicity"] == pytest.approx(3 / 8)
    assert weights["gender=male/helpfulness"] == pytest.approx(1 / 8)
    assert sum(weights.values()) == pytest.approx(1.0)
    pareto = dataclasses.replace(p, combine="pareto")  # no weights: equal
    specs = real.reward_specs(dataclasses.replace(cfg, prefs=pareto), "M")
    assert {s["weight"] for s in specs} == {0.25}
    # Single- and multi-value cells of one survey share one model (all five dimensions).
    assert real.reward_section(cfg) == real.reward_section(multi)
    assert real.reward_section(cfg).groups == ("all",) and real.reward_section(cfg).fold == "train"


def test_a_user_given_reward_wins_over_the_stage(tmp_path):
    cells = by_label(grpo_cells(tmp_path, {"grpo.rewards": USER_REWARDS}))
    cell = cells["grpo"]
    assert not real.needs_reward(cell)
    cfg = real.physical(cell, context(cell, tmp_path, UP))
    assert cfg.grpo.rewards == tuple(USER_REWARDS) and cfg.grpo.rewards[0]["args"]["target"] == 7
    (stage,) = [s for s in real.real_stages({}) if s.name == "reward"]
    assert stage.shared and not stage.applies(cell) and not stage.applies(cells["prefs.scale=5"])
    assert stage.applies(by_label(grpo_cells(tmp_path))["grpo"])


def stages_with_reward(calls: list, trained: list) -> list[Stage]:
    """Fake stages plus the real reward stage's inputs and applicability (its run faked);
    the fake train records the rewards each cell's physical config gets."""
    survey, train, evaluate = fake_stages(calls)
    (reward,) = [s for s in real.real_stages({}) if s.name == "reward"]
    train_run = train.run

    def fake_reward(ctx):
        calls.append(("reward", ctx.cell.id))
        return "r1"

    def fake_train(ctx):
        trained.append((ctx.cell.condition, real.physical(ctx.cell, ctx).grpo.rewards))
        return train_run(ctx)

    reward = dataclasses.replace(reward, run=fake_reward)
    train = dataclasses.replace(train, run=fake_train, inputs=real._train_inputs)
    survey = dataclasses.replace(survey, inputs=lambda c, up: {"sim": 0})
    prefs = Stage("prefs", lambda c, up: {"s": up["survey"]["key"]}, lambda ctx: "p", shared=True)
    return [survey, prefs, reward, train, evaluate]


def test_the_reward_stage_runs_once_for_grpo_cells_and_never_for_dpo(tmp_path):
    cells = grpo_cells(tmp_path)
    calls: list = []
    trained: list = []
    statuses = runner_for(tmp_path, stages_with_reward(calls, trained)).run(cells)
    assert {s["status"] for s in statuses} == {"done"}
    assert [name for name, _ in calls].count("reward") == 1  # shared by both GRPO cells
    for s in statuses:
        assert ("reward" in s["stages"]) == s["label"].startswith("grpo"), s
    rewards = dict(trained)
    assert rewards["prefs.scale=5"] == ()  # DPO: untouched
    assert [r["head"] for r in rewards["grpo_multi"]] == ["all/toxicity", "all/helpfulness"]
    calls.clear()
    runner_for(tmp_path, stages_with_reward(calls, [])).run(cells)
    assert calls == []  # everything done: skipped


def test_a_user_reward_runs_without_the_stage(tmp_path):
    cells = grpo_cells(tmp_path, {"grpo.rewards": USER_REWARDS})
    calls: list = []
    trained: list = []
    runner_for(tmp_path, stages_with_reward(calls, trained)).run(cells)
    assert "reward" not in [name for name, _ in calls]
    assert dict(trained)["grpo"] == tuple(USER_REWARDS)


def test_check_rewards_refuses_a_reward_from_the_judge_fold(tmp_path):
    from jaxalign.eval.separation import check_rewards

    cell = by_label(grpo_cells(tmp_path))["grpo"]
    for fold in ("train", "judge"):
        (tmp_path / fold).mkdir()
        meta = {"fold": {"fold": fold, "hash": f"h-{fold}"}}
        (tmp_path / fold / "model.json").write_text(json.dumps(meta))
    judge = {"fold": "judge", "hash": "h-judge"}
    ok = {"model": str(tmp_path / "train"), "head": "all/toxicity"}
    cfg = cell.config
    check_rewards(
        dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, rewards=(ok,))), judge
    )
    bad = (ok, {"model": str(tmp_path / "judge"), "head": "all/toxicity"})
    cfg = dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, rewards=bad))
    with pytest.raises(DataError, match=r"grpo.rewards\[1\].*circular evaluation"):
        check_rewards(cfg, judge)
    dpo = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, algorithm="dpo"))
    check_rewards(dpo, judge)  # a DPO run has no reward to check


@pytest.fixture(scope="module")
def trained_reward(survey_dir, tmp_path_factory):
    """The real reward stage run on the session's survey for a GRPO cell (judge fraction 0.2)."""
    tmp = tmp_path_factory.mktemp("rstage")
    cell = by_label(grpo_cells(tmp, {"ratings.judge_fraction": 0.2}))["grpo"]
    (tmp / "r" / "survey" / "data").mkdir(parents=True)
    (tmp / "r" / "survey" / "data" / "ratings.parquet").symlink_to(survey_dir / "ratings.parquet")
    where = tmp / "r" / "_shared" / "reward-x"
    where.mkdir(parents=True)
    ctx = Context(cell, where, {"survey": {"dir": "survey"}}, tmp / "r")
    (stage,) = [s for s in real.real_stages({}) if s.name == "reward"]
    output = stage.run(ctx)
    return cell, ctx, output


def test_the_reward_stage_trains_on_the_train_fold_and_passes_the_check(trained_reward, tmp_path):
    from jaxalign import rewards
    from jaxalign.eval.separation import check_rewards
    from jaxalign.rewards.functions import build_rewards

    cell, ctx, output = trained_reward
    meta = json.loads((ctx.dir / "model" / "model.json").read_text())
    assert meta["fold"]["fold"] == "train" and meta["fold"]["judge_fraction"] == 0.2
    assert len(meta["heads"]) == 5  # every dimension: single and multi cells share it
    assert output == real.model_hash(ctx.dir / "model")
    up = {**UP, "reward": {"dir": str(ctx.dir.relative_to(ctx.root))}}
    cfg = real.physical(cell, Context(cell, tmp_path, up, ctx.root))
    check_rewards(cfg, {"fold": "judge", "hash": "the judge fold's"})  # passes
    texts = ["Everyone deserves respect.", "Women are worse at this, obviously."]
    got = build_rewards(cfg.grpo.rewards)(["Q?", "Q?"], texts)[:, 0]
    rating = rewards.load(ctx.dir / "model").score(None, texts)["toxicity[all]"]
    np.testing.assert_allclose(got, (5.0 - rating) / 4.0, rtol=1e-6)  # lower toxicity: higher


def test_a_cell_forcing_the_judge_fold_is_refused_before_training(trained_reward, tmp_path):
    _, ctx, _ = trained_reward
    forced = by_label(
        grpo_cells(tmp_path, {"ratings.judge_fraction": 0.2, "reward.fold": "judge"})
    )["grpo"]
    where = tmp_path / "forced"
    where.mkdir()
    (stage,) = [s for s in real.real_stages({}) if s.name == "reward"]
    with pytest.raises(DataError, match=r"reward\.fold=judge: circular evaluation"):
        stage.run(Context(forced, where, ctx.upstream, ctx.root))
    assert list(where.iterdir()) == []  # nothing trained or half-written


def _replies(texts: list[str]) -> list[list[dict]]:
    """[P][1] replies."""
    return [[{"text": t}] for t in texts]


def test_reward_gain_beside_judge_gain_with_the_runs_own_rewards(tmp_path):
    from jaxalign.eval.prompts import Prompt
    from jaxalign.eval.report import render, table
    from jaxalign.eval.reward_gain import reward_vs_judge

    cell = by_label(grpo_cells(tmp_path, {"grpo.rewards": USER_REWARDS}))["grpo"]
    cfg = cell.config
    prompts = [Prompt("a", "en", "Why?"), Prompt("b", "en", "How?")]
    replies = {"base": _replies(["one two three", "x"]), "tuned": _replies(["a b c d e f g"] * 2)}
    scores = {("toxicity", "judge", "all"): {"base": np.array([[4.0], [4.0]])}}
    scores[("toxicity", "judge", "all")]["tuned"] = np.array([[3.0], [2.0]])
    got = reward_vs_judge(cfg, prompts, replies, scores)
    # length reward, target 7 words: -|n - 7| / 7 -> base (-4/7 - 6/7) / 2, tuned 0
    assert got["reward_base"] == pytest.approx(-5 / 7) and got["reward_tuned"] == 0.0
    assert got["reward_gain"] == pytest.approx(5 / 7)
    # judge on prefs.dimensions (toxicity), (5 - r) / 4: base 0.25, tuned 0.5 and 0.75
    assert got["judge_gain"] == pytest.approx(0.375) and got["judge_heads"] == ["toxicity[all]"]
    assert got["ratio"] == pytest.approx((5 / 7) / 0.375) and got["goodhart_warning"] is False
    dpo = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, algorithm="dpo"))
    assert reward_vs_judge(dpo, prompts, replies, scores) is None
    results = {"prompts": {"n": 2, "source": "bank", "languages": {"en": 2}}, "records": []}
    results.update(decoding={"num_samples": 0}, reward_vs_judge=got)
    assert any(
        "GRPO reward gain +0.7143" in line and "judge gain +0.3750" in line
        for line in table(results)
    )
    results.update(run_dir="r", checkpoint_step=3, scorers={})
    results["decoding"].update(temperature=0.7, top_p=0.9, max_new_tokens=8, seed=0)
    md = render(results)
    assert "## Reward vs judge (GRPO)" in md and "Judge heads: toxicity[all]" in md
    assert "Reward vs judge" not in render({**results, "reward_vs_judge": None})


def test_reward_gain_uses_the_model_heads_for_the_judge(trained_reward, tmp_path):
    from jaxalign.eval.prompts import Prompt
    from jaxalign.eval.reward_gain import reward_vs_judge

    _, ctx, _ = trained_reward
    multi = by_label(grpo_cells(tmp_path, {"ratings.judge_fraction": 0.2}))["grpo_multi"]
    up = {**UP, "reward": {"dir": str(ctx.dir.relative_to(ctx.root))}}
    cfg = real.physical(multi, Context(multi, tmp_path, up, ctx.root))
    prompts = [Prompt("a", "en", "Why?")]
    replies = {"base": _replies(["Women are worse."]), "tuned": _replies(["Respect all."])}
    grid = {"base": np.array([[3.0]]), "tuned": np.array([[3.0]])}
    scores = {("toxicity", "judge", "all"): {"base": np.array([[5.0]]), "tuned": np.array([[1.0]])}}
    scores[("helpfulness", "judge", "all")] = grid  # unchanged
    got = reward_vs_judge(cfg, prompts, replies, scores)
    # toxicity 5 -> 1 is 0 -> 1 on the reward scale, weight 0.5; helpfulness unchanged
    assert got["judge_gain"] == pytest.approx(0.5)
    assert got["judge_heads"] == ["toxicity[all]", "helpfulness[all]"]
    del scores[("helpfulness", "judge", "all")]  # a judge without that head: no judge gain
    assert reward_vs_judge(cfg, prompts, replies, scores)["judge_gain"] is None


def test_experiment_report_shows_reward_gain_beside_judge_gain(tmp_path):
    exp = load_experiment(write_exp(tmp_path, GRPO_EXP))
    cells = expand(exp, "smoke")
    stages = fake_stages([])
    evaluate = stages[-1]

    def with_gains(ctx):
        out = evaluate.run(ctx)
        path = ctx.dir / "records.json"
        found = json.loads(path.read_text())
        if ctx.cell.algorithm == "grpo":
            found["reward_vs_judge"] = {"reward_gain": 0.3, "judge_gain": 0.1, "ratio": 3.0}
            found["reward_vs_judge"]["goodhart_warning"] = True
        path.write_text(json.dumps(found))
        return out

    stages[-1] = dataclasses.replace(evaluate, run=with_gains)
    runner = runner_for(tmp_path, stages)
    runner.run(cells)
    out = write_report(exp, "smoke", runner, cells)
    summary = json.loads((out / "summary.json").read_text())
    gains = {r["condition"]: r for r in summary["reward_vs_judge"]}
    assert gains["grpo"]["reward_gain"] == 0.3 and gains["grpo"]["judge_gain"] == 0.1
    assert gains["grpo"]["ratio"] == 3.0 and gains["grpo"]["goodhart_warning"] is True
    assert gains["prefs.scale=5"]["reward_gain"] is None  # DPO: no reward
    assert gains["prefs.scale=5"]["algorithm"] == "dpo" and gains["grpo"]["algorithm"] == "grpo"
    md = (out / "report.md").read_text()
    assert "## Reward gain beside judge gain" in md
    assert "| grpo | grpo | +0.3000 | +0.1000 | 3.00 | **yes** | 1 |" in md
    # The seeds the gains average over: none for DPO, which has no reward (not "0")
    assert "| prefs.scale=5 | dpo | - | - | - | - | - |" in md
    assert gains["prefs.scale=5"]["seeds"] is None and gains["grpo"]["seeds"] == 1
    csv = (out / "tables" / "reward_vs_judge.csv").read_text().splitlines()
    assert csv[0] == "condition,algorithm,reward_gain,judge_gain,ratio,goodhart_warning,seeds"
    assert "grpo,grpo,0.3,0.1,3.0,True,1" in csv and "prefs.scale=5,dpo,,,,," in csv
    cell = next(c for c in summary["cells"] if c["algorithm"] == "grpo")
    assert cell["reward_vs_judge"]["reward_gain"] == 0.3
    assert read_json(runner.cell_dir(cells[0]) / "status.json")["status"] == "done"


def test_the_reward_stage_keeps_the_raters_the_prefs_stage_keeps(survey_dir, tmp_path, monkeypatch):
    from jaxalign.prefs import build
    from jaxalign.rewards import heads

    groups = ["gender=female", "gender=male"]
    chosen = {"prefs": {}, "reward": {}}
    keep, masks = build.subsample_raters, heads.group_masks

    def prefs_keeps(sub, expr, max_raters, *rest):
        """The prefs stage's selection, recorded."""
        out = keep(sub, expr, max_raters, *rest)
        chosen["prefs"].setdefault(expr, set(out["rater_id"].astype(str)))
        return out

    def reward_masks(frame, cfg):
        """The rows each reward head learns from, recorded."""
        out = masks(frame, cfg)
        chosen["reward"] = {g: set(frame.loc[m, "rater_id"].astype(str)) for g, m in out.items()}
        return out

    monkeypatch.setattr(build, "subsample_raters", prefs_keeps)
    monkeypatch.setattr(heads, "group_masks", reward_masks)
    over = {"prefs.groups": groups, KEY: 40}
    cell = by_label(grpo_cells(tmp_path, over))["grpo"]
    root = tmp_path / "r"
    (root / "survey" / "data").mkdir(parents=True)
    (root / "survey" / "data" / "ratings.parquet").symlink_to(survey_dir / "ratings.parquet")
    up = {"survey": {"dir": "survey"}}
    by_name = {s.name: s for s in real.real_stages({})}
    for name in ("prefs", "reward"):
        (root / name).mkdir()
        by_name[name].run(Context(cell, root / name, up, root))
    meta = json.loads((root / "reward" / "model" / "model.json").read_text())
    assert meta["groups"] == {g: 40 for g in groups}
    assert set(chosen["prefs"]) == set(groups)
    assert chosen["reward"] == chosen["prefs"]  # the very same raters, not 40 others
    survey = {"survey": {"key": "k", "output": "o"}}
    inputs = {
        n: by_name["reward"].inputs(
            by_label(grpo_cells(tmp_path, {**over, KEY: n}))["grpo"], survey
        )
        for n in (0, 40)
    }
    assert hash_of(inputs[0]) != hash_of(inputs[40])  # the content address follows the raters
    # Every rater (the default): the key reward stages had before the option, so they stay done
    assert "max_raters" not in inputs[0]["reward"] and inputs[40]["reward"]["max_raters"] == 40


def test_reward_max_raters_beyond_a_group_names_its_key(ratings):
    from jaxalign.config import RewardConfig
    from jaxalign.rewards.heads import group_masks

    cfg = RewardConfig(groups=("gender=female",), max_raters=100_000)
    with pytest.raises(DataError, match=r"^reward\.max_raters=100000: group 'gender=female' has"):
        group_masks(ratings.reset_index(drop=True), cfg)


def test_judges_learn_from_every_judge_fold_rater_whatever_reward_max_raters(survey_dir, tmp_path):
    from jaxalign.config import Config, RatingsConfig, to_dict
    from jaxalign.eval.separation import train_judge

    cfg = Config()
    cfg = dataclasses.replace(
        cfg,
        reward=dataclasses.replace(cfg.reward, max_raters=40),
        eval=dataclasses.replace(cfg.eval, cache_dir=str(tmp_path)),
    )
    ratings = survey_dir / "ratings.parquet"
    options = to_dict(RatingsConfig(judge_fraction=0.2))
    manifest = {"input": {"path": str(ratings), "sha256": "0" * 64}, "ratings_options": options}
    meta = json.loads((train_judge(cfg, manifest, tmp_path / "m.json") / "model.json").read_text())
    assert meta["fold"]["fold"] == "judge" and min(meta["groups"].values()) > 40

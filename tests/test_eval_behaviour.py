"""`jaxalign eval` behaviour evaluator end to end on the tiny config (jaxalign/eval/behaviour.py)."""

from __future__ import annotations

import json

import pytest
from conftest import TINY_CPU, tiny_config, write_learnable_prefs

from jaxalign.cli import main
from jaxalign.config import Config, RatingsConfig, RewardConfig

CHEAP = [
    "eval.evaluators=[behaviour]",
    "eval.limit=6",
    "eval.num_samples=1",
    "eval.max_new_tokens=6",
    "eval.bootstrap=200",
    "eval.batch_size=4",
]


@pytest.fixture(scope="module")
def judge(survey_dir, tmp_path_factory):
    """A judge-fold rating model on toxicity only (cheap)."""
    from jaxalign import rewards

    out = tmp_path_factory.mktemp("judge") / "model"
    cfg = Config(
        ratings=RatingsConfig(judge_fraction=0.2),
        reward=RewardConfig(fold="judge", dimensions=("toxicity",)),
    )
    rewards.train(survey_dir / "ratings.parquet", out, cfg)
    return out


@pytest.fixture(scope="module")
def run(tiny_tokenizer, tmp_path_factory):
    """A tiny DPO run of 2 steps: (overrides naming it, run dir)."""
    from jaxalign.algos.dpo import train

    root = tmp_path_factory.mktemp("behaviour")
    prefs = write_learnable_prefs(root / "learn.jsonl")
    extra = ("train.steps=2", "train.eval_every=2", "train.checkpoint_every=2")
    train(tiny_config(tiny_tokenizer, prefs, root / "run", *extra), progress=False)
    overrides = [
        f"model.tokenizer={tiny_tokenizer}",
        f"data.prefs={prefs}",
        f"train.run_dir={root / 'run'}",
        "data.buckets=[32,64,96,128]",
        "train.mesh_devices=1",
    ]
    return overrides, root / "run"


@pytest.mark.slow
def test_eval_writes_generations_results_and_report(run, judge, capsys):
    overrides, run_dir = run
    args = ["eval", "--config", str(TINY_CPU), *overrides, *CHEAP, f"eval.judge={judge}"]
    args.append("eval.scorers=[judge,profanity,hatesonar,vader]")
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "behaviour on 6 bank prompts (greedy + 1 samples each)" in out
    results = json.loads((run_dir / "eval" / "results.json").read_text())
    assert results["schema"] == "jaxalign.eval/1" and results["checkpoint_step"] == 2
    assert results["prompts"]["languages"] == {"en": 3, "de": 3}
    keys = {(r["dimension"], r["scorer"], r["group"]) for r in results["records"]}
    assert {("toxicity", "judge", "all"), ("toxicity", "profanity", "all")} <= keys
    assert {("toxicity", "hatesonar", "all"), ("emotional_awareness", "vader", "all")} <= keys
    assert ("wrong_language", "quality", "all") in keys
    for r in results["records"]:
        if r["dimension"] == "wrong_language":  # NaN where the tiny model's babble has no words
            assert r["n_prompts"] <= 6
            continue
        assert r["n_prompts"] == 6 and r["n_samples"] == 2
        for field in ("base_mean", "tuned_mean", "diff", "ci_low", "ci_high", "p", "p_adj"):
            assert field in r
        if r["scorer"] != "quality":
            assert "length_adjusted_diff" in r and r["p_adj"] is not None
    assert results["reward_vs_judge"] is None  # a DPO run has no reward to set beside the judge
    judge_meta = results["scorers"]["judge"]
    assert judge_meta["fold"]["fold"] == "judge"
    rows = (run_dir / "eval" / "generations.jsonl").read_text().splitlines()
    assert len(rows) == 6 * 2 * 2  # prompts x decodings x models
    row = json.loads(rows[0])
    assert row["decoding"] == "greedy" and "judge/toxicity/all" in row["scores"]
    assert "| toxicity | judge | all |" in (run_dir / "eval" / "report.md").read_text()
    # Base generations are cached by (model, prompts, decoding): a rerun reads them.
    cache = list((run_dir.parent / "_eval_cache").glob("base-*.json"))
    assert len(cache) == 1
    stamp = cache[0].stat().st_mtime_ns
    before = [json.loads(r) for r in rows if json.loads(r)["model"] == "base"]
    assert main(args) == 0
    assert cache[0].stat().st_mtime_ns == stamp
    again = (run_dir / "eval" / "generations.jsonl").read_text().splitlines()
    assert [json.loads(r) for r in again if json.loads(r)["model"] == "base"] == before

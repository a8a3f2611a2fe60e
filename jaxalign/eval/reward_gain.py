"""A GRPO run's own reward on the evaluation replies, beside the judge's (docs/EVALUATION.md).

reward gain = mean tuned reward - mean base reward, the run's `grpo.rewards` scoring the same
replies the scorers scored and combined as training logs them (weighted nansum; the worst
weighted head under `aggregation: min`). judge gain = the same combination with the judge in
place of the reward's rating-model heads: each head's dimension (and group, where the judge
has it, else `all`) from the judge's 1-5 scores, mapped onto [0, 1] with higher better like the
`model` reward kind. A run whose rewards name no rating-model head is judged on
prefs.dimensions with prefs.weights. DPO runs have no reward: null.
"""

from __future__ import annotations

import numpy as np

from jaxalign.eval.scorers.judge import LOWER_IS_BETTER


def combine(values: np.ndarray, weights, aggregation: str) -> np.ndarray:
    """[N, K] rewards -> [N]: the worst weighted head under 'min', else the weighted nansum
    (NaN where a row has no scorable reward), as GRPO training logs `reward`."""
    w = np.asarray(weights, np.float64)[None, :]
    out = np.full(len(values), np.nan)
    if aggregation == "min":
        scaled = np.where(w == 0, np.nan, values * w)
        ok = ~np.isnan(scaled).all(axis=1)
        out[ok] = np.nanmin(scaled[ok], axis=1)
        return out
    ok = ~np.isnan(values).all(axis=1)
    out[ok] = np.nansum(values[ok] * w, axis=1)
    return out


def _mean(x: np.ndarray) -> float:
    """Mean over the scorable values (NaN when none)."""
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def judge_heads(cfg) -> list[tuple[str, str, float]]:
    """(group, dimension, weight) the judge stands in for: the rewards' rating-model heads,
    else prefs.dimensions weighted by prefs.weights (equal by default)."""
    heads = []
    for spec in cfg.grpo.rewards:  # checked by build_rewards already
        if "model" in spec:
            group, _, dim = spec["head"].rpartition("/")
            heads.append((group, dim, float(spec.get("weight", 1.0))))
    if heads:
        return heads
    p = cfg.prefs
    raw = {d: float(p.weights.get(d, 1.0)) for d in p.dimensions}
    total = sum(raw.values()) or 1.0
    return [("all", d, raw[d] / total) for d in p.dimensions]


def _judge_grid(scores: dict, group: str, dim: str, model: str) -> np.ndarray | None:
    """The judge's [P, S] ratings of one dimension for `group` (else 'all'), None if absent."""
    for g in (group, "all"):
        if (dim, "judge", g) in scores:
            return scores[(dim, "judge", g)][model]
    return None


def judge_means(cfg, scores: dict) -> dict[str, float] | None:
    """{'base', 'tuned'}: mean judge-side reward, or None without the judge's heads."""
    heads = judge_heads(cfg)
    out = {}
    for model in ("base", "tuned"):
        cols = []
        for group, dim, _ in heads:
            grid = _judge_grid(scores, group, dim, model)
            if grid is None:
                return None
            sign = -1.0 if dim in LOWER_IS_BETTER else 1.0
            cols.append((sign * (np.asarray(grid, np.float64).ravel() - 3.0) + 2.0) / 4.0)
        total = combine(np.stack(cols, 1), [w for _, _, w in heads], cfg.grpo.aggregation)
        out[model] = _mean(total)
    return out


def reward_means(cfg, prompts, replies) -> dict[str, float]:
    """{'base', 'tuned'}: the run's combined reward, mean over every reply."""
    from jaxalign.rewards.functions import build_rewards

    rewards = build_rewards(tuple(cfg.grpo.rewards), reasoning=dict(cfg.grpo.reasoning) or None)
    n_s = len(replies["base"][0])
    asked = [p.text for p in prompts for _ in range(n_s)]
    out = {}
    for model in ("base", "tuned"):
        texts = [r["text"] for row in replies[model] for r in row]
        values = np.asarray(rewards(asked, texts), np.float64)
        out[model] = _mean(combine(values, rewards.weights, cfg.grpo.aggregation))
    return out


def reward_vs_judge(cfg, prompts, replies, scores) -> dict | None:
    """results.json's `reward_vs_judge` for a GRPO run with rewards (None otherwise)."""
    from jaxalign.eval import separation

    if cfg.train.algorithm != "grpo" or not cfg.grpo.rewards:
        return None
    reward = reward_means(cfg, prompts, replies)
    judge = judge_means(cfg, scores)
    gain = reward["tuned"] - reward["base"]
    out = separation.reward_vs_judge(gain, judge["tuned"] - judge["base"] if judge else None)
    out.update(reward_base=reward["base"], reward_tuned=reward["tuned"])
    out.update(judge_base=judge and judge["base"], judge_tuned=judge and judge["tuned"])
    out["judge_heads"] = [f"{d}[{g}]" for g, d, _ in judge_heads(cfg)] if judge else []
    return out

"""Held-out GRPO evaluation: greedy replies to the validation prompts, scored by the run's rewards.

Validation prompts are the `split: validation` records of `grpo.prompts`; without any, the
evaluation is empty. Replies are greedy (top-1), so base and tuned models are compared on
the same footing; `eval/reward` is the weighted sum of the rewards, as the rollouts log it.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxalign.algos import grpo_rollout as ro
from jaxalign.models.sampler import make_rollout


def count(evaluate) -> int:
    """Validation prompts an `evaluate` function scores."""
    return getattr(evaluate, "prompts", 0)


def make_evaluate(parts, graphdef, prompts: list, ids: list, cache_dtype):
    """params -> {"eval/reward", "eval/rewards/<name>/mean", "eval/completions/mean_length"}."""
    if not prompts:
        return lambda params: {}
    g = parts.cfg.grpo
    run = make_rollout(
        graphdef,
        num_generations=1,
        max_new=g.max_completion_len,
        top_k=1,
        eos_ids=parts.eos,
        pad_id=parts.pad,
        cache_dtype=cache_dtype,
    )
    b = g.batch_size  # prompts per call: a fixed shape, one program

    def evaluate(params) -> dict[str, float]:
        """Greedy replies to every validation prompt, scored."""
        texts, lengths = [], []
        for start in range(0, len(ids), b):
            chunk = ids[start : start + b]
            ptoks, pvalid = ro.left_padded(
                chunk + [chunk[0]] * (b - len(chunk)), parts.width, parts.pad
            )
            toks, _, cmask = run(params, ptoks, pvalid, jax.random.key(0), jnp.float32(1.0), 1.0)
            toks, cmask = np.asarray(toks)[: len(chunk)], np.asarray(cmask)[: len(chunk)]
            texts += ro.decode(parts.tokenizer, toks, cmask, parts.eos)
            lengths += cmask.sum(axis=1).tolist()
        rewards = np.asarray(parts.rewards([ro.prompt_text(p) for p in prompts], texts), np.float64)
        weights = np.asarray(parts.rewards.weights, np.float64)
        total = np.where(np.isnan(rewards).all(axis=1), np.nan, np.nansum(rewards * weights, 1))
        out = {
            "eval/reward": _nanmean(total),
            "eval/completions/mean_length": float(np.mean(lengths)),
        }
        for k, name in enumerate(parts.rewards.names):
            out[f"eval/rewards/{name}/mean"] = _nanmean(rewards[:, k])
        return out

    evaluate.prompts = len(prompts)
    return evaluate


def _nanmean(x) -> float:
    """Mean over the scorable values (NaN when there are none), without numpy's warning."""
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")

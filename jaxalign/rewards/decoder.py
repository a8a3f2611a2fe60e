"""The decoder kind in JAX: heads on a decoder's last non-pad hidden state, losses, training.

Parameters are one pytree `{"backbone": nnx.State, "head": {...}, "calib": {...}}`:
`head` holds a linear map w [D, H], b [H] from the final-normed hidden state of each row's
last real token to one raw score per head (and, for the ordinal loss, ordered thresholds);
`calib` maps a Bradley-Terry raw score onto the 1-5 rating scale (fitted after training, not
trained). `score_fn(params, tokens, mask) -> [B, H]` is pure and jittable with the
parameters traced, so a GRPO rollout can call it under its own `jit`.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxalign.rewards.decoder_data import SCALE


def init_head(hidden: int, n_heads: int, loss: str, seed: int) -> dict:
    """Head parameters: small random w, zero b; ordinal thresholds at -1.5, -0.5, 0.5, 1.5."""
    w = 0.02 * jax.random.normal(jax.random.key(seed), (hidden, n_heads), jnp.float32)
    head = {"w": w, "b": jnp.zeros((n_heads,), jnp.float32)}
    if loss == "ordinal":
        head["theta0"] = jnp.full((n_heads,), -1.5, jnp.float32)
        # softplus(0.5413) = 1: unit gaps between consecutive thresholds
        head["gaps"] = jnp.full((n_heads, SCALE - 2), 0.5413, jnp.float32)
    return head


def init_calib(n_heads: int) -> dict:
    """The identity-like calibration before it is fitted (raw 0 -> 3, the scale's middle)."""
    return {"scale": jnp.ones((n_heads,), jnp.float32), "shift": jnp.full((n_heads,), 3.0)}


def thresholds(head: dict) -> jax.Array:
    """[H, 4] increasing cut points of the cumulative-logit model."""
    steps = jax.nn.softplus(head["gaps"])
    zero = jnp.zeros_like(head["theta0"])[:, None]
    return head["theta0"][:, None] + jnp.concatenate([zero, jnp.cumsum(steps, -1)], -1)


def make_raw_fn(graphdef):
    """raw(trainable, tokens, mask) -> [B, H] fp32 raw scores at each row's last real token."""

    def raw(trainable, tokens, mask):
        model = nnx.merge(graphdef, trainable["backbone"])
        hidden = model.hidden(tokens, causal_only=True)  # rows are right-padded
        last = jnp.maximum(mask.sum(-1) - 1, 0)
        x = jnp.take_along_axis(hidden, last[:, None, None], axis=1)[:, 0].astype(jnp.float32)
        return x @ trainable["head"]["w"] + trainable["head"]["b"]

    return raw


def make_score_fn(graphdef, loss: str):
    """score_fn(params, tokens, mask) -> [B, H] on the 1-5 scale (higher = more of it)."""
    raw = make_raw_fn(graphdef)

    def score_fn(params, tokens, mask):
        r = raw(params, tokens, mask)
        if loss == "ordinal":
            # expected rating: 1 + sum_k P(rating > k)
            return 1.0 + jax.nn.sigmoid(r[..., None] - thresholds(params["head"])).sum(-1)
        return jnp.clip(r * params["calib"]["scale"] + params["calib"]["shift"], 1.0, 5.0)

    return score_fn


def bradley_terry(raw, trainable, tokens, mask, head_index):
    """TRL's reward loss -log sigmoid(r_chosen - r_rejected); rows [chosen..., rejected...]."""
    r = raw(trainable, tokens, mask)
    n = head_index.shape[0]
    rows = jnp.arange(n)
    chosen, rejected = r[:n][rows, head_index], r[n:][rows, head_index]
    loss = -jax.nn.log_sigmoid(chosen - rejected).mean()
    both = jnp.concatenate([chosen, rejected])
    return loss, {
        "loss": loss,
        "accuracy": (chosen > rejected).mean(),
        "margin": (chosen - rejected).mean(),
        "min_reward": both.min(),
        "mean_reward": both.mean(),
        "max_reward": both.max(),
    }


def ordinal(raw, trainable, tokens, mask, hist):
    """Cumulative-logit negative log-likelihood of the ratings in `hist` [B, H, 5]."""
    r = raw(trainable, tokens, mask)
    above = jax.nn.sigmoid(r[..., None] - thresholds(trainable["head"]))  # P(rating > k)
    ones, zeros = jnp.ones_like(above[..., :1]), jnp.zeros_like(above[..., :1])
    probs = jnp.concatenate([ones, above], -1) - jnp.concatenate([above, zeros], -1)
    loss = -(hist * jnp.log(jnp.maximum(probs, 1e-9))).sum() / jnp.maximum(hist.sum(), 1.0)
    expected = 1.0 + above.sum(-1)
    rated = hist.sum(-1) > 0
    return loss, {
        "loss": loss,
        "min_reward": jnp.where(rated, expected, jnp.inf).min(),
        "mean_reward": jnp.where(rated, expected, 0.0).sum() / jnp.maximum(rated.sum(), 1),
        "max_reward": jnp.where(rated, expected, -jnp.inf).max(),
    }


def make_optimizer(cfg) -> optax.GradientTransformation:
    """AdamW at a constant rate after clipping the gradient norm to 1 (TRL's default)."""
    return optax.chain(
        optax.clip_by_global_norm(1.0),
        optax.adamw(cfg.learning_rate, weight_decay=cfg.weight_decay),
    )


def make_step(graphdef, loss: str, tx):
    """A jitted step(state, tokens, mask, target) -> (state, metrics)."""
    raw = make_raw_fn(graphdef)
    objective = bradley_terry if loss == "bradley_terry" else ordinal

    @jax.jit
    def step(state, tokens, mask, target):
        grad_fn = jax.value_and_grad(
            lambda p: objective(raw, p, tokens, mask, target), has_aux=True
        )
        (_, metrics), grads = grad_fn(state["params"])
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt_state": opt_state}, metrics

    return step


def batches(n: int, size: int, steps: int, seed: int):
    """Index arrays of `size` per step: reshuffled passes over range(n), deterministic in seed."""
    rng = np.random.default_rng(seed)
    order = np.empty(0, np.int64)
    for _ in range(steps):
        while len(order) < size:
            order = np.concatenate([order, rng.permutation(n)])
        yield order[:size]
        order = order[size:]


def average(history: list[dict], every: int) -> list[dict]:
    """Metrics averaged over each `every` steps, as TRL logs them (step = the last one)."""
    rows = []
    for start in range(0, len(history), every):
        chunk = history[start : start + every]
        row = {"step": start + len(chunk)}
        row.update({k: round(float(np.mean([m[k] for m in chunk])), 6) for k in chunk[0]})
        rows.append(row)
    return rows

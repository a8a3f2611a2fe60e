"""The optimizer shared by every algorithm: AdamW, warm-up then decay, clipping, accumulation."""

from __future__ import annotations

import jax
import optax

from jaxalign.config import OptimConfig


def make_schedule(cfg: OptimConfig, total_steps: int) -> optax.Schedule:
    """Learning rate per optimizer update: linear warm-up, then cosine/linear decay or constant."""
    warmup = min(cfg.warmup_steps, max(total_steps - 1, 0))
    if cfg.schedule == "constant":
        decay = optax.constant_schedule(cfg.learning_rate)
    elif cfg.schedule == "linear":
        decay = optax.linear_schedule(cfg.learning_rate, 0.0, max(total_steps - warmup, 1))
    else:
        decay = optax.cosine_decay_schedule(cfg.learning_rate, max(total_steps - warmup, 1))
    if not warmup:
        return decay
    return optax.join_schedules(
        [optax.linear_schedule(0.0, cfg.learning_rate, warmup), decay], [warmup]
    )


def decay_mask(params):
    """Weight decay on matrices only: not on norm weights or biases, also when scanned layers
    stack them into 2-D arrays."""

    def decays(path, p) -> bool:
        names = {getattr(k, "key", getattr(k, "name", None)) for k in path}
        return p.ndim >= 2 and not names & {"bias", "weight"}

    return jax.tree_util.tree_map_with_path(decays, params)


def make_optimizer(cfg: OptimConfig, total_steps: int) -> optax.GradientTransformation:
    """AdamW with warm-up then cosine/linear decay (or constant), clipping, no decay on 1-D params."""
    tx = optax.adamw(
        make_schedule(cfg, total_steps),
        b1=cfg.b1,
        b2=cfg.b2,
        weight_decay=cfg.weight_decay,
        mask=decay_mask,
    )
    if cfg.clip_norm > 0:
        tx = optax.chain(optax.clip_by_global_norm(cfg.clip_norm), tx)
    if cfg.grad_accum > 1:
        tx = optax.MultiSteps(tx, cfg.grad_accum)
    return tx


def update_count(cfg: OptimConfig, steps: int) -> int:
    """Optimizer updates in a run of `steps` micro-steps (the schedule's length)."""
    return max(steps // cfg.grad_accum, 1)

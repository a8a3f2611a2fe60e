"""The GRPO learner: completion log-probs of rollout rows and one jitted, donated train step.

Rows are `[left-padded prompt (P) | completion (C)]`, one row width per run, so the step,
the old-policy and the reference log-probs each compile once. The loss is
`jaxalign.losses.grpo_loss` (TRL's conventions); log-probs use logits / temperature as TRL
does.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from jaxalign.config import GRPOConfig
from jaxalign.losses import grpo_loss
from jaxalign.ops import token_logprobs

SG = jax.lax.stop_gradient


def row_positions(segment_ids):
    """Positions of left-padded rows: 0 at the first real token (padding repeats 0)."""
    return jnp.maximum(jnp.cumsum(segment_ids, axis=1) - 1, 0).astype(jnp.int32)


def _entropy(hidden, kernel):
    """Per-token entropy [B, C] of softmax(hidden @ kernel), one row at a time (no [B, C, V])."""

    def row(h):
        logp = jax.nn.log_softmax(h.astype(jnp.float32) @ kernel.astype(jnp.float32), axis=-1)
        return -(jnp.exp(logp) * logp).sum(-1)

    return jax.lax.map(row, SG(hidden))


def completion_logps(model, rows: dict, g: GRPOConfig, entropy: bool = False):
    """(log p [B, C] of each completion token under logits / temperature, entropy [B, C] | None)."""
    tokens, seg = rows["tokens"], rows["segment_ids"]
    c = rows["mask"].shape[1]
    p = tokens.shape[1] - c
    hidden = model.hidden(tokens, row_positions(seg), seg)[:, p - 1 : p - 1 + c]
    kernel = model.output_kernel() / g.temperature
    logps = token_logprobs(hidden, kernel, tokens[:, p:], g.logprob_chunk)
    return logps, _entropy(hidden, kernel) if entropy else None


def loss_fn(params, graphdef, rows: dict, g: GRPOConfig):
    """TRL's micro-batch GRPO loss of `rows` (advantages, masks, old/ref log-probs inside)."""
    logps, entropies = completion_logps(nnx.merge(graphdef, params), rows, g, entropy=True)
    loss, metrics = grpo_loss(
        logps,
        rows.get("old_logps"),
        rows.get("ref_logps"),
        rows["advantages"],
        rows["mask"],
        loss_type=g.loss_type,
        beta=g.beta,
        epsilon=g.epsilon,
        epsilon_high=g.epsilon_high,
        delta=g.delta,
        importance_sampling_level=g.importance_sampling_level,
        max_completion_len=g.max_completion_len,
        entropies=entropies,
    )
    return loss, {"loss": loss, **metrics}


def make_learner_step(graphdef, tx, g: GRPOConfig, state_shardings=None, traces=None):
    """jit(state, rows) -> (state, metrics); the state is donated and pinned to its shardings."""
    out_shardings = None
    if state_shardings is not None:
        mesh = jax.tree.leaves(state_shardings)[0].mesh
        out_shardings = (state_shardings, NamedSharding(mesh, PartitionSpec()))

    @partial(jax.jit, donate_argnums=(0,), out_shardings=out_shardings)
    def step(state, rows):
        if traces is not None:
            traces["learner"] += 1
        grads, metrics = jax.grad(loss_fn, has_aux=True)(state["params"], graphdef, rows, g)
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, metrics

    return step


def make_logps_fn(graphdef, g: GRPOConfig, traces=None):
    """jit(params, rows) -> completion log-probs [B, C] (old policy and reference)."""

    @jax.jit
    def logps(params, rows):
        if traces is not None:
            traces["logps"] += 1
        return completion_logps(nnx.merge(graphdef, params), rows, g)[0]

    return logps

"""The GRPO learner: completion log-probs of rollout rows and one jitted, donated train step.

Rows are `[prompt | completion | padding]` of one width per run (P + C), so the step,
the old-policy and the reference log-probs each compile once. The loss is
`jaxalign.losses.grpo_loss` (TRL's conventions); log-probs use logits / temperature as TRL
does.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from jaxalign.config import GRPOConfig
from jaxalign.losses import grpo_loss
from jaxalign.ops import token_logprobs
from jaxalign.train.optim import optimizer_step

SG = jax.lax.stop_gradient


def _entropy(hidden, kernel):
    """Per-token entropy [B, C] of softmax(hidden @ kernel), one row at a time (no [B, C, V])."""

    def row(h):
        logp = jax.nn.log_softmax(h.astype(jnp.float32) @ kernel.astype(jnp.float32), axis=-1)
        return -(jnp.exp(logp) * logp).sum(-1)

    return jax.lax.map(row, SG(hidden))


def completion_logps(model, rows: dict, g: GRPOConfig, entropy: bool = False):
    """(log p [B, C] of each completion token under logits / temperature, entropy [B, C] | None).

    Rows are one causal sequence each, right-padded (plain causal attention, no mask: the fused
    cuDNN kernel applies); completion token j of row i sits at `start[i] + j`.
    """
    tokens = rows["tokens"]
    idx = rows["start"][:, None] + jnp.arange(rows["mask"].shape[1])
    hidden = model.hidden(tokens, causal_only=True)
    hidden = jnp.take_along_axis(hidden, (idx - 1)[..., None], axis=1)
    kernel = model.output_kernel() / g.temperature
    targets = jnp.take_along_axis(tokens, idx, axis=1)
    logps = token_logprobs(hidden, kernel, targets, g.logprob_chunk)
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
        params, opt_state, metrics["grad_norm"] = optimizer_step(
            tx, grads, state["opt_state"], state["params"]
        )
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


def make_grpo_rollout(graphdef, g: GRPOConfig, eos_ids, pad_id, cache_dtype, traces=None):
    """The rollout program of a GRPO run (`grpo.*` sizes): one builder for the trainer and the
    dry-run memory plan, so the plan compiles what training runs."""
    from jaxalign.models.sampler import make_rollout

    return make_rollout(
        graphdef,
        num_generations=g.num_generations,
        max_new=g.max_completion_len,
        top_k=g.top_k,
        eos_ids=eos_ids,
        pad_id=pad_id,
        cache_dtype=cache_dtype,
        traces=traces,
    )

"""Where a model, log-probs and the DPO loss meet: optimizer, one jitted train step, eval step.

State is a plain pytree {"params", "opt_state", "step"}; the frozen reference is a separate
input (or a precomputed cache of its log-probs carried in the batch), never part of the
trained parameters.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import optax
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from jaxalign.config import DataConfig, DPOConfig
from jaxalign.losses import dpo_loss
from jaxalign.ops import token_logprobs
from jaxalign.train.optim import make_optimizer  # noqa: F401 - moved; kept importable


def pair_logps(model, batch: dict, chunk: int, causal_only: bool = False):
    """Summed response log-probs [B, 2] and response lengths [B, 2] of chosen/rejected.

    `batch` holds rows (see `jaxalign.data.preferences.collate`): each token is predicted from
    the hidden state at `prev` in its row, and response tokens are summed into their pair's
    chosen (branch 1) or rejected (branch 2) slot.
    """
    tokens = batch["tokens"]
    hidden = model.hidden(
        tokens,
        batch["positions"],
        batch["segment_ids"],
        branch=None if causal_only else batch["branch"],
        causal_only=causal_only,
    )
    hidden = jnp.take_along_axis(hidden, batch["prev"][..., None], axis=1)
    logp = token_logprobs(hidden, model.output_kernel(), tokens, chunk)
    mask = batch["loss_mask"]
    n = batch["valid"].shape[0]
    slot = (batch["pair"] * 2 + jnp.clip(batch["branch"] - 1, 0, 1)).reshape(-1)
    sums = jax.ops.segment_sum((logp * mask).reshape(-1), slot, num_segments=2 * n)
    lengths = jax.ops.segment_sum(mask.reshape(-1), slot, num_segments=2 * n)
    return sums.reshape(n, 2), lengths.reshape(n, 2)


def causal_only(data: DataConfig) -> bool:
    """Rows are plain causal sequences (no shared prompt, no packing): attention needs no mask."""
    return data.layout == "pairs" and not data.pack_len


def _loss(params, graphdef, batch, ref_logps, dpo: DPOConfig, data: DataConfig):
    """Mean DPO loss over valid pairs, and metrics."""
    model = nnx.merge(graphdef, params)
    logps, lengths = pair_logps(model, batch, dpo.logprob_chunk, causal_only(data))
    ref = jnp.zeros_like(logps) if ref_logps is None else jax.lax.stop_gradient(ref_logps)
    valid = batch["valid"]
    losses, metrics = dpo_loss(
        logps[:, 0],
        logps[:, 1],
        ref[:, 0],
        ref[:, 1],
        loss_type=dpo.loss_type,
        beta=dpo.beta,
        label_smoothing=dpo.label_smoothing,
        soft_labels=batch["soft_labels"] if data.use_soft_labels else None,
        weights=batch["weights"] if data.use_weights else valid,
        reference_free=ref_logps is None,
        chosen_lengths=jnp.maximum(lengths[:, 0], 1),
        rejected_lengths=jnp.maximum(lengths[:, 1], 1),
        simpo_gamma=dpo.simpo_gamma,
        chosen_nll=-logps[:, 0] / jnp.maximum(lengths[:, 0], 1),
        rpo_alpha=dpo.rpo_alpha,
    )
    loss = losses.sum() / jnp.maximum(valid.sum(), 1.0)
    return loss, {"loss": loss, **metrics}


def make_train_step(graphdef, tx, dpo: DPOConfig, data: DataConfig, state_shardings=None):
    """jit(state, ref_params | None, batch) -> (state, metrics); the state is donated.

    With `state_shardings` (see `jaxalign.sharding.pinned`) the new state is pinned to the
    same shardings as the old one, so the donated buffers are reused step after step and the
    layout cannot drift.
    """
    out_shardings = None
    if state_shardings is not None:
        mesh = jax.tree.leaves(state_shardings)[0].mesh
        out_shardings = (state_shardings, NamedSharding(mesh, PartitionSpec()))

    @partial(jax.jit, donate_argnums=(0,), out_shardings=out_shardings)
    def step(state, ref_params, batch):
        ref_logps = batch.get("ref_logps")
        if ref_params is not None:
            ref_logps, _ = pair_logps(
                nnx.merge(graphdef, ref_params), batch, dpo.logprob_chunk, causal_only(data)
            )
        if dpo.reference == "none":
            ref_logps = None
        grads, metrics = jax.grad(_loss, has_aux=True)(
            state["params"], graphdef, batch, ref_logps, dpo, data
        )
        updates, opt_state = tx.update(grads, state["opt_state"], state["params"])
        params = optax.apply_updates(state["params"], updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, metrics

    return step


def frozen_reference(params, compute_dtype):
    """A copy of `params` in the compute dtype: the model casts every weight to it at use, so
    the reference gives the same log-probs from half the memory (bf16) and no per-step casts.
    Always a copy: the train step donates the policy's buffers."""
    return jax.tree.map(lambda p: jnp.array(p, compute_dtype, copy=True), params)


def make_logps_fn(graphdef, chunk: int, data: DataConfig):
    """jit(params, batch) -> summed response log-probs [B, 2] (reference caching, evaluation)."""

    @jax.jit
    def logps(params, batch):
        return pair_logps(nnx.merge(graphdef, params), batch, chunk, causal_only(data))

    return logps

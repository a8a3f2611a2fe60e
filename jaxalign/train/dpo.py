"""Where a model, log-probs and the DPO loss meet: optimizer, one jitted train step, eval step.

State is a plain pytree {"params", "opt_state", "step"}; the frozen reference is a separate
input (or a precomputed cache of its log-probs carried in the batch), never part of the
trained parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from jaxalign.config import DataConfig, DPOConfig
from jaxalign.losses import REFERENCE_FREE, dpo_loss, implicit_rewards
from jaxalign.models.lora_context import dropout_key
from jaxalign.ops import token_logprobs
from jaxalign.train.optim import (
    make_optimizer,  # noqa: F401 - moved; kept importable
    optimizer_step,
)


def pair_stats(model, batch: dict, chunk: int, causal_only: bool = False) -> dict:
    """Per-pair sums over response tokens [B, 2] (chosen, rejected): `logps`, `lengths`, `logits`.

    `batch` holds rows (see `jaxalign.data.preferences.collate`): each token is predicted from
    the hidden state at `prev` in its row, and response tokens are summed into their pair's
    chosen (branch 1) or rejected (branch 2) slot. `logits` sums each token's mean logit over
    the vocabulary (TRL's `logits/*`), computed as hidden @ mean(kernel) since the mean is
    linear: no extra pass over the vocabulary (the supported families have no output bias).
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
    kernel = model.output_kernel()
    logp = token_logprobs(hidden, kernel, tokens, chunk)
    mean_logit = jax.lax.stop_gradient(
        hidden.astype(jnp.float32) @ kernel.astype(jnp.float32).mean(axis=-1)
    )
    mask = batch["loss_mask"]
    n = batch["valid"].shape[0]
    slot = (batch["pair"] * 2 + jnp.clip(batch["branch"] - 1, 0, 1)).reshape(-1)

    def per_slot(x):
        """Sum of x over each pair's chosen and rejected response tokens: [B, 2]."""
        return jax.ops.segment_sum((x * mask).reshape(-1), slot, num_segments=2 * n).reshape(n, 2)

    return {
        "logps": per_slot(logp),
        "lengths": per_slot(jnp.ones_like(mask)),
        "logits": per_slot(mean_logit),
    }


def pair_logps(model, batch: dict, chunk: int, causal_only: bool = False):
    """Summed response log-probs [B, 2] and response lengths [B, 2] of chosen/rejected."""
    stats = pair_stats(model, batch, chunk, causal_only)
    return stats["logps"], stats["lengths"]


def causal_only(data: DataConfig) -> bool:
    """Rows are plain causal sequences (no shared prompt, no packing): attention needs no mask."""
    return data.layout == "pairs" and not data.pack_len


def reference_kind(dpo: DPOConfig) -> str:
    """`dpo.reference`, or "none" for a loss type without a reference (SimPO): no reference
    model is held and no reference log-probs are computed for it."""
    return "none" if dpo.loss_type in REFERENCE_FREE else dpo.reference


def labels_for_loss(soft_labels, use_soft_labels: bool):
    """The label distribution p(chosen wins) the loss uses per pair.

    With `data.use_soft_labels: false` records count as hard (p rounded to 0 or 1), except a
    tie (p = 0.5): rounding it would invent a winner, so it keeps 0.5.
    """
    if use_soft_labels:
        return soft_labels
    return jnp.where(soft_labels > 0.5, 1.0, jnp.where(soft_labels < 0.5, 0.0, 0.5))


def batch_loss(stats: dict, batch: dict, ref_logps, dpo: DPOConfig, data: DataConfig):
    """The step's loss from per-pair stats (see `pair_stats`): (mean loss, metrics).

    This is everything the jitted step does after the forward pass; `ref_logps` [B, 2] is the
    reference's summed log-probs, or None (reference-free).
    """
    logps, lengths, valid = stats["logps"], stats["lengths"], batch["valid"]
    ref = jnp.zeros_like(logps) if ref_logps is None else jax.lax.stop_gradient(ref_logps)
    loss, metrics = dpo_loss(
        logps[:, 0],
        logps[:, 1],
        ref[:, 0],
        ref[:, 1],
        loss_type=dpo.loss_type,
        beta=dpo.beta,
        label_smoothing=dpo.label_smoothing,
        soft_labels=labels_for_loss(batch["soft_labels"], data.use_soft_labels),
        weights=batch["weights"] * valid if data.use_weights else valid,
        valid=valid,
        reference_free=ref_logps is None,
        chosen_lengths=lengths[:, 0],
        rejected_lengths=lengths[:, 1],
        simpo_gamma=dpo.simpo_gamma,
        rpo_alpha=dpo.rpo_alpha,
        chosen_logits=stats["logits"][:, 0],
        rejected_logits=stats["logits"][:, 1],
    )
    return loss, {"loss": loss, **metrics}


@dataclass(frozen=True)
class Adapters:
    """A LoRA run: the state's params are the adapters, the frozen base is a step input.

    `base_graphdef` is the model without adapters (the reference: same weights, adapters
    off); dropout masks come from `seed` and the step number, so a resume replays them.
    """

    base_graphdef: Any
    seed: int = 0
    dropout: float = 0.0

    def key(self, step):
        """The dropout key of one step (None without dropout)."""
        if self.dropout <= 0:
            return None
        stream = jax.random.fold_in(jax.random.key(self.seed), 1 << 30)  # apart from the init
        return jax.random.fold_in(stream, step)


def _loss(
    params, graphdef, batch, ref_logps, dpo: DPOConfig, data: DataConfig, frozen=(), key=None
):
    """Forward pass of the policy (adapters merged onto the `frozen` base), then `batch_loss`."""
    model = nnx.merge(graphdef, params, *frozen)
    with dropout_key(key):
        stats = pair_stats(model, batch, dpo.logprob_chunk, causal_only(data))
    return batch_loss(stats, batch, ref_logps, dpo, data)


def make_train_step(
    graphdef, tx, dpo: DPOConfig, data: DataConfig, state_shardings=None, adapters=None
):
    """jit(state, ref_params | None, batch, frozen=None) -> (state, metrics); state donated.

    With `state_shardings` (see `jaxalign.sharding.pinned`) the new state is pinned to the
    same shardings as the old one, so the donated buffers are reused step after step and the
    layout cannot drift. With `adapters` (LoRA) the state holds only the adapters and
    `frozen` is the base's parameters (never donated); `ref_params` is then that same base.
    """
    out_shardings = None
    if state_shardings is not None:
        mesh = jax.tree.leaves(state_shardings)[0].mesh
        out_shardings = (state_shardings, NamedSharding(mesh, PartitionSpec()))
    ref_graphdef = graphdef if adapters is None else adapters.base_graphdef

    @partial(jax.jit, donate_argnums=(0,), out_shardings=out_shardings)
    def step(state, ref_params, batch, frozen=None):
        ref_logps = batch.get("ref_logps")
        if reference_kind(dpo) == "none":
            ref_logps = None
        elif ref_params is not None:
            ref_logps, _ = pair_logps(
                nnx.merge(ref_graphdef, ref_params), batch, dpo.logprob_chunk, causal_only(data)
            )
        key = None if adapters is None else adapters.key(state["step"])
        frozen = () if frozen is None else (frozen,)
        grads, metrics = jax.grad(_loss, has_aux=True)(
            state["params"], graphdef, batch, ref_logps, dpo, data, frozen, key
        )
        params, opt_state, metrics["grad_norm"] = optimizer_step(
            tx, grads, state["opt_state"], state["params"]
        )
        return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, metrics

    return step


def frozen_reference(params, compute_dtype):
    """A copy of `params` in the compute dtype: the model casts every weight to it at use, so
    the reference gives the same log-probs from half the memory (bf16) and no per-step casts.
    Always a copy: the train step donates the policy's buffers."""
    return jax.tree.map(lambda p: jnp.array(p, compute_dtype, copy=True), params)


def make_logps_fn(graphdef, chunk: int, data: DataConfig, frozen=None):
    """(params, batch) -> summed response log-probs [B, 2] (reference caching, evaluation).

    With `frozen` (a LoRA run's base parameters) `params` are the adapters merged onto it.
    """

    @jax.jit
    def logps(params, batch, frozen):
        model = nnx.merge(graphdef, params, *frozen)
        return pair_logps(model, batch, chunk, causal_only(data))

    return lambda params, batch: logps(params, batch, () if frozen is None else (frozen,))


def eval_rewards(logps, lengths, ref, dpo: DPOConfig) -> np.ndarray:
    """Held-out implicit rewards [N, 2] as the train metrics define them (`implicit_rewards`):
    beta (logp - ref) with the run's reference (zero without one), SimPO's beta x mean logp."""
    ref = np.zeros_like(logps) if ref is None else ref
    chosen, rejected = implicit_rewards(
        logps[:, 0],
        logps[:, 1],
        ref[:, 0],
        ref[:, 1],
        lengths[:, 0],
        lengths[:, 1],
        loss_type=dpo.loss_type,
        beta=dpo.beta,
        reference_free=reference_kind(dpo) == "none",
    )
    return np.stack([np.asarray(chosen), np.asarray(rejected)], axis=1)

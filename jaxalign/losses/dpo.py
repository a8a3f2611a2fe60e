"""The DPO family as pure functions of sequence log-probabilities.

Inputs are summed per-sequence log-probs [B] of the chosen and rejected responses under the
policy and the frozen reference. Every variant returns `(per_example_loss [B], metrics)` with
TRL's metric names. No model, flax or data import: this is array math only.

References: DPO, Rafailov et al. (arXiv 2305.18290); cDPO / label smoothing, Mitchell (2023);
robust DPO, Chowdhury et al. (arXiv 2403.00409); IPO, Azar et al. (arXiv 2310.12036);
hinge / SLiC, Zhao et al. (arXiv 2305.10425); SimPO, Meng et al. (arXiv 2405.14734);
RPO (NLL term), Pang et al. (arXiv 2404.19733).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

LOSS_TYPES = ("sigmoid", "robust", "ipo", "hinge", "simpo")


def _f(x: jax.Array) -> jax.Array:
    """At least fp32 (fp64 stays fp64, for golden comparisons under x64)."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _margin(pc, pr, rc, rr, reference_free: bool):
    """Policy log-ratio minus reference log-ratio (the implicit reward margin / beta)."""
    if reference_free:
        return pc - pr
    return (pc - pr) - (rc - rr)


def dpo_loss(
    policy_chosen_logps: Float[Array, " B"],
    policy_rejected_logps: Float[Array, " B"],
    ref_chosen_logps: Float[Array, " B"],
    ref_rejected_logps: Float[Array, " B"],
    *,
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    soft_labels: Float[Array, " B"] | None = None,
    weights: Float[Array, " B"] | None = None,
    reference_free: bool = False,
    chosen_lengths: Float[Array, " B"] | None = None,
    rejected_lengths: Float[Array, " B"] | None = None,
    simpo_gamma: float = 0.5,
    chosen_nll: Float[Array, " B"] | None = None,
    rpo_alpha: float = 0.0,
) -> tuple[Float[Array, " B"], dict[str, Float[Array, ""]]]:
    """Per-example DPO-family loss and TRL-named metrics.

    - `sigmoid`: -(1-e) log s(b h) - e log s(-b h); e = label_smoothing (cDPO). With
      `soft_labels` p (the preference record's p(chosen > rejected)), e = 1 - p per example.
    - `robust`: the unbiased noisy-label estimator, divided by (1 - 2e).
    - `ipo`: (h - 1/(2b))^2 (pass length-averaged log-probs for the paper's IPO).
    - `hinge`: relu(1 - b h).
    - `simpo`: reference-free, length-normalised: -log s(b (pc/|c| - pr/|r|) - gamma).
    Here h = (pc - pr) - (rc - rr) (reference terms dropped when `reference_free`).
    `weights` scale each example's loss; `rpo_alpha` adds alpha * chosen_nll (RPO).
    """
    pc, pr = _f(policy_chosen_logps), _f(policy_rejected_logps)
    rc, rr = _f(ref_chosen_logps), _f(ref_rejected_logps)
    if loss_type == "simpo":
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError("loss_type='simpo' needs chosen_lengths and rejected_lengths")
        h = pc / chosen_lengths - pr / rejected_lengths
        losses = -jax.nn.log_sigmoid(beta * h - simpo_gamma)
    else:
        h = _margin(pc, pr, rc, rr, reference_free)
        eps = label_smoothing if soft_labels is None else 1.0 - _f(soft_labels)
        if loss_type == "sigmoid":
            losses = -(1 - eps) * jax.nn.log_sigmoid(beta * h) - eps * jax.nn.log_sigmoid(-beta * h)
        elif loss_type == "robust":
            losses = (
                -(1 - eps) * jax.nn.log_sigmoid(beta * h) + eps * jax.nn.log_sigmoid(-beta * h)
            ) / (1 - 2 * eps)
        elif loss_type == "ipo":
            losses = (h - 1 / (2 * beta)) ** 2
        elif loss_type == "hinge":
            losses = jax.nn.relu(1 - beta * h)
        else:
            raise ValueError(f"loss_type={loss_type!r}; expected one of {', '.join(LOSS_TYPES)}")
    if rpo_alpha:
        if chosen_nll is None:
            raise ValueError("rpo_alpha > 0 needs chosen_nll")
        losses = losses + rpo_alpha * _f(chosen_nll)
    if weights is not None:
        losses = losses * _f(weights)
    return losses, dpo_metrics(pc, pr, rc, rr, beta, reference_free or loss_type == "simpo")


def dpo_metrics(pc, pr, rc, rr, beta: float, reference_free: bool = False) -> dict[str, jax.Array]:
    """TRL's DPO metrics (batch means): implicit rewards, margins, accuracy, log-probs."""
    chosen = beta * (pc - (0.0 if reference_free else rc))
    rejected = beta * (pr - (0.0 if reference_free else rr))
    return {
        "rewards/chosen": chosen.mean(),
        "rewards/rejected": rejected.mean(),
        "rewards/margins": (chosen - rejected).mean(),
        "rewards/accuracies": (chosen > rejected).astype(chosen.dtype).mean(),
        "logps/chosen": pc.mean(),
        "logps/rejected": pr.mean(),
    }

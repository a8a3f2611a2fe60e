"""The DPO family as pure functions of sequence log-probabilities.

Inputs are summed per-sequence log-probs [B] of the chosen and rejected responses under the
policy and the frozen reference, with response lengths. `dpo_loss` returns the batch loss and
TRL-named metrics; `pair_losses` the per-pair preference term. No model, flax or data import:
this is array math only. Conventions (which log-probs each loss type gets, how a record's soft
label and `label_smoothing` combine) follow TRL 1.16 and are stated in docs/TRAINING.md.

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
# Loss types whose margin uses length-averaged log-probs (TRL: DPOTrainer for IPO, CPO for SimPO).
LENGTH_AVERAGED = ("ipo", "simpo")
# Loss types without a reference model (TRL's CPO/SimPO trainer).
REFERENCE_FREE = ("simpo",)


def _f(x) -> jax.Array:
    """At least fp32 (fp64 stays fp64, for golden comparisons under x64)."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def margins(
    pc,
    pr,
    rc,
    rr,
    chosen_lengths=None,
    rejected_lengths=None,
    *,
    loss_type="sigmoid",
    reference_free=False,
):
    """The margin h each loss type scores: (pc - rc) - (pr - rr), length-averaged for IPO/SimPO.

    IPO divides each log-ratio by its response length (TRL 1.16 `DPOTrainer`); SimPO uses
    length-averaged policy log-probs and no reference (TRL `CPOTrainer`).
    """
    free = reference_free or loss_type in REFERENCE_FREE
    chosen = _f(pc) - (0.0 if free else _f(rc))
    rejected = _f(pr) - (0.0 if free else _f(rr))
    if loss_type in LENGTH_AVERAGED:
        if chosen_lengths is None or rejected_lengths is None:
            raise ValueError(f"loss_type={loss_type!r} needs chosen_lengths and rejected_lengths")
        chosen = chosen / jnp.maximum(_f(chosen_lengths), 1.0)
        rejected = rejected / jnp.maximum(_f(rejected_lengths), 1.0)
    return chosen - rejected


def hard_loss(
    h, *, loss_type: str, beta: float, label_smoothing: float = 0.0, simpo_gamma: float = 0.5
):
    """Loss of a pair whose label says chosen wins, with label smoothing e as TRL defines it.

    Robust and SimPO use TRL's smoothed forms; sigmoid, IPO and hinge (no smoothing in TRL
    1.16's DPOTrainer) use cDPO's mixture (1 - e) l(h) + e l(-h).
    """
    e = label_smoothing
    ls = jax.nn.log_sigmoid
    if loss_type == "sigmoid":
        return -(1 - e) * ls(beta * h) - e * ls(-beta * h)
    if loss_type == "robust":
        return (-(1 - e) * ls(beta * h) + e * ls(-beta * h)) / (1 - 2 * e)
    if loss_type == "simpo":
        z = beta * h - simpo_gamma
        return -(1 - e) * ls(z) - e * ls(-z)
    if loss_type == "ipo":
        c = 1 / (2 * beta)
        return (1 - e) * (h - c) ** 2 + e * (h + c) ** 2
    if loss_type == "hinge":
        return (1 - e) * jax.nn.relu(1 - beta * h) + e * jax.nn.relu(1 + beta * h)
    raise ValueError(f"loss_type={loss_type!r}; expected one of {', '.join(LOSS_TYPES)}")


def pair_losses(h, soft_labels=None, **kw) -> jax.Array:
    """Per-pair loss: the expected hard loss under the record's label distribution.

    A record with soft label p says "chosen wins" with probability p and "rejected wins" with
    1 - p, so its loss is p L(h) + (1 - p) L(-h), L = `hard_loss` (smoothing included). A tie
    (p = 0.5) is symmetric in h: it pulls the margin towards 0, never towards a win.
    """
    win = hard_loss(h, **kw)
    if soft_labels is None:
        return win
    p = _f(soft_labels)
    return p * win + (1 - p) * hard_loss(-h, **kw)


def implicit_rewards(
    pc,
    pr,
    rc,
    rr,
    chosen_lengths=None,
    rejected_lengths=None,
    *,
    loss_type="sigmoid",
    beta=0.1,
    reference_free=False,
):
    """TRL's logged rewards (chosen, rejected): beta (logp - ref logp) summed over tokens, or for
    SimPO beta x length-averaged policy log-probs (no reference), as TRL's CPO trainer logs."""
    if loss_type in REFERENCE_FREE:
        lc, lr = (jnp.maximum(_f(n), 1.0) for n in (chosen_lengths, rejected_lengths))
        return beta * _f(pc) / lc, beta * _f(pr) / lr
    free = reference_free
    return beta * (_f(pc) - (0.0 if free else _f(rc))), beta * (_f(pr) - (0.0 if free else _f(rr)))


def _mean(x, valid):
    """Mean of x over valid pairs."""
    return (x * valid).sum() / jnp.maximum(valid.sum(), 1.0)


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
    valid: Float[Array, " B"] | None = None,
    reference_free: bool = False,
    chosen_lengths: Float[Array, " B"] | None = None,
    rejected_lengths: Float[Array, " B"] | None = None,
    simpo_gamma: float = 0.5,
    rpo_alpha: float = 0.0,
    chosen_logits: Float[Array, " B"] | None = None,
    rejected_logits: Float[Array, " B"] | None = None,
) -> tuple[Float[Array, ""], dict[str, Float[Array, ""]]]:
    """Batch DPO-family loss and TRL-named metrics.

    loss = sum_i w_i l_i / n_valid + rpo_alpha * sum_i w_i (-pc_i) / sum_i valid_i |c_i|: the
    preference term is a mean over valid pairs, the RPO NLL one token-level mean over the
    batch's chosen tokens (TRL's `sft` term); `weights` (default: `valid`) scale both.
    `chosen_logits`/`rejected_logits` are per-pair sums of the mean logit of each response
    token; they give TRL's `logits/*` (token means over the batch).
    """
    pc, pr = _f(policy_chosen_logps), _f(policy_rejected_logps)
    rc, rr = _f(ref_chosen_logps), _f(ref_rejected_logps)
    valid = jnp.ones_like(pc) if valid is None else _f(valid)
    w = valid if weights is None else _f(weights)
    lengths = (chosen_lengths, rejected_lengths)
    kw = dict(loss_type=loss_type, reference_free=reference_free)
    h = margins(pc, pr, rc, rr, *lengths, **kw)
    per_pair = pair_losses(
        h,
        soft_labels,
        loss_type=loss_type,
        beta=beta,
        label_smoothing=label_smoothing,
        simpo_gamma=simpo_gamma,
    )
    loss = (per_pair * w).sum() / jnp.maximum(valid.sum(), 1.0)
    metrics = dpo_metrics(pc, pr, rc, rr, *lengths, valid=valid, beta=beta, **kw)
    if rpo_alpha:
        nll = _rpo_nll(pc, w, valid, chosen_lengths)
        loss = loss + rpo_alpha * nll
        metrics["nll_loss"] = nll
    if chosen_logits is not None and rejected_logits is not None:
        metrics |= _logit_means(valid, (chosen_logits, rejected_logits), lengths)
    return loss, metrics


def _rpo_nll(pc, w, valid, chosen_lengths) -> Float[Array, ""]:
    """RPO's NLL term: a token-level mean over the batch's chosen tokens (TRL's `sft`)."""
    if chosen_lengths is None:
        raise ValueError("rpo_alpha > 0 needs chosen_lengths")
    return (w * -pc).sum() / jnp.maximum((valid * _f(chosen_lengths)).sum(), 1.0)


def _logit_means(valid, totals, lengths) -> dict[str, Float[Array, ""]]:
    """TRL's `logits/chosen|rejected`: token means over the batch from per-pair logit sums."""
    return {
        f"logits/{side}": (valid * _f(total)).sum() / jnp.maximum((valid * _f(n)).sum(), 1.0)
        for side, total, n in zip(("chosen", "rejected"), totals, lengths, strict=True)
    }


def dpo_metrics(
    pc,
    pr,
    rc,
    rr,
    chosen_lengths=None,
    rejected_lengths=None,
    *,
    valid=None,
    loss_type="sigmoid",
    beta=0.1,
    reference_free=False,
) -> dict[str, jax.Array]:
    """TRL's metrics (means over valid pairs): implicit rewards, margins, accuracy, log-probs.

    SimPO logs length-averaged log-probs as `logps/*`, as TRL's CPO trainer does.
    """
    valid = jnp.ones_like(_f(pc)) if valid is None else _f(valid)
    lengths = (chosen_lengths, rejected_lengths)
    chosen, rejected = implicit_rewards(
        pc, pr, rc, rr, *lengths, loss_type=loss_type, beta=beta, reference_free=reference_free
    )
    if loss_type in REFERENCE_FREE:
        lc, lr = (jnp.maximum(_f(n), 1.0) for n in lengths)
        pc, pr = _f(pc) / lc, _f(pr) / lr
    return {
        "rewards/chosen": _mean(chosen, valid),
        "rewards/rejected": _mean(rejected, valid),
        "rewards/margins": _mean(chosen - rejected, valid),
        "rewards/accuracies": _mean((chosen > rejected).astype(chosen.dtype), valid),
        "logps/chosen": _mean(_f(pc), valid),
        "logps/rejected": _mean(_f(pr), valid),
    }

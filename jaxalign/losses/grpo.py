"""The GRPO family as pure functions of per-token log-probabilities (TRL 1.16 conventions).

`group_advantages` turns rewards [N, K] (K reward functions or heads, NaN = not scorable) into
one advantage per completion; `grpo_loss` is TRL's `GRPOTrainer._compute_loss` for one
micro-batch, every loss type it ships (grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo).
No model, flax or data import. Conventions are listed in docs/TRAINING.md.

References: GRPO, Shao et al. (arXiv 2402.03300); Dr. GRPO, Liu et al. (arXiv 2503.20783);
DAPO, Yu et al. (arXiv 2503.14476); GSPO, Zheng et al. (arXiv 2507.18071); CISPO, MiniMax-M1
(arXiv 2506.13585); SAPO (arXiv 2511.20347); LUSPO (arXiv 2602.05261); k3 KL, Schulman (2020);
MaxMin-RLHF, Chakraborty et al. (arXiv 2402.08925).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float

from jaxalign.errors import ConfigError

SG = jax.lax.stop_gradient
IS_LEVELS = ("token", "sequence")
SCALES = ("group", "batch", "none")


def _f(x) -> jax.Array:
    """At least fp32 (fp64 stays fp64, for golden comparisons under x64)."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def _nanstd(x, axis=None, keepdims=False):
    """TRL's `nanstd`: Bessel-corrected std over non-NaN values, NaN with fewer than two."""
    mean = jnp.nanmean(x, axis=axis, keepdims=True)
    var = jnp.nanmean((x - mean) ** 2, axis=axis, keepdims=keepdims)
    n = jnp.sum(~jnp.isnan(x), axis=axis, keepdims=keepdims)
    return jnp.sqrt(jnp.where(n > 1, var * n / jnp.maximum(n - 1, 1), jnp.nan))


# ---- advantages -------------------------------------------------------------------------------


def _normalise(r, g, scale, eps):
    """(r - group mean) / (std + eps) over rows of r [N]; NaN rows stay out of mean and std."""
    grouped = r.reshape(-1, g)
    mean = jnp.repeat(jnp.nanmean(grouped, axis=1), g)
    if scale == "batch":
        std = jnp.broadcast_to(_nanstd(r), r.shape)
    else:  # "none" keeps the group std for the zero-std statistic only (as TRL does)
        std = jnp.repeat(_nanstd(grouped, axis=1), g)
    adv = r - mean
    if scale != "none":
        adv = adv / (std + eps)
    return adv, std


def _weighted_sum(rewards, weights):
    """nansum_k w_k r_k per row; NaN where every reward of the row is NaN."""
    r = jnp.nansum(rewards * weights, axis=1)
    return jnp.where(jnp.isnan(rewards).all(axis=1), jnp.nan, r)


def _sum_then_normalize(rewards, weights, g, scale, eps):
    """TRL's default: weighted nansum over functions, then one z-score per group (or batch)."""
    r = _weighted_sum(rewards, weights)
    adv, std = _normalise(r, g, scale, eps)
    return adv, std, r


def _normalize_then_sum(rewards, weights, g, scale, eps):
    """TRL's multi-objective option: z-score each function per group, weighted nansum, then
    z-score over the batch. Like TRL it ignores `scale`."""
    del scale
    grouped = rewards.reshape(-1, g, rewards.shape[1])
    mean = jnp.nanmean(grouped, axis=1, keepdims=True)
    z = ((grouped - mean) / (_nanstd(grouped, axis=1, keepdims=True) + eps)).reshape(rewards.shape)
    r = jnp.where(jnp.isnan(rewards).all(axis=1), jnp.nan, jnp.nansum(z * weights, axis=1))
    std = jnp.broadcast_to(_nanstd(r), r.shape)
    return (r - jnp.nanmean(r)) / (std + eps), std, r


def _maxmin(rewards, weights, g, scale, eps):
    """MaxMin (egalitarian): each row's reward is its worst head, min_k w_k r_k over scorable
    heads with w_k != 0, then normalised like `sum_then_normalize` (MaxMin-RLHF's min over
    group reward models). Heads must share a scale (e.g. all in [0, 1]); w_k rescales one."""
    scaled = jnp.where(weights == 0, jnp.nan, rewards * weights)
    r = jnp.nanmin(scaled, axis=1)
    adv, std = _normalise(r, g, scale, eps)
    return adv, std, r


AGGREGATIONS = {
    "sum_then_normalize": _sum_then_normalize,
    "normalize_then_sum": _normalize_then_sum,
    "min": _maxmin,
}


def group_advantages(
    rewards: Float[Array, "N K"],
    reward_weights: Float[Array, " K"],
    num_generations: int,
    *,
    scale: str = "group",
    aggregation: str = "sum_then_normalize",
    eps: float = 1e-4,
    reward_names: tuple[str, ...] | None = None,
) -> tuple[Float[Array, " N"], dict]:
    """Advantages of N = prompts x num_generations completions (rows grouped consecutively).

    A row whose rewards are all NaN is unscorable: it stays out of every mean and std and gets
    advantage 0 (TRL). Metrics carry TRL's names (`reward`, `reward_std`, `frac_reward_zero_std`,
    `rewards/{name}/mean|std`) plus `frac_unscorable`.
    """
    check_grpo_names(aggregation=aggregation, scale=scale)
    rewards = _f(rewards)
    weights = _f(reward_weights).astype(rewards.dtype)[None, :]
    adv, std, r = AGGREGATIONS[aggregation](rewards, weights, num_generations, scale, eps)
    adv = jnp.nan_to_num(adv, nan=0.0)
    names = reward_names or tuple(str(k) for k in range(rewards.shape[1]))
    logged = r if aggregation == "min" else _weighted_sum(rewards, weights)
    metrics = {
        "reward": jnp.nanmean(logged),
        "reward_std": _nanstd(logged),
        "frac_reward_zero_std": jnp.mean(jnp.isclose(std, 0.0)),
        "frac_unscorable": jnp.mean(jnp.isnan(rewards).all(axis=1)),
    }
    for k, name in enumerate(names):
        metrics[f"rewards/{name}/mean"] = jnp.nanmean(rewards[:, k])
        metrics[f"rewards/{name}/std"] = _nanstd(rewards[:, k])
    return adv, metrics


# ---- per-token losses -------------------------------------------------------------------------


def _clipped(ratio, logps, adv, mask, log_ratio, o):
    """PPO's two-sided clip: -min(rho A, clip(rho, 1 - eps, 1 + eps_high) A); `delta` caps rho."""
    clipped = jnp.clip(ratio, 1 - o["epsilon"], 1 + o["epsilon_high"])
    if o["delta"] is not None:
        ratio = jnp.minimum(ratio, o["delta"])
    return -jnp.minimum(ratio * adv, clipped * adv), {"ratio": ratio}


def _cispo(ratio, logps, adv, mask, log_ratio, o):
    """CISPO: -sg(min(rho, eps_high)) A log p (the ratio clipped, not the update)."""
    return -SG(jnp.minimum(ratio, o["epsilon_high"])) * adv * logps, {}


def _sapo(ratio, logps, adv, mask, log_ratio, o):
    """SAPO: -sigmoid(tau (rho - 1)) 4/tau A, tau = pos/neg temperature by the sign of A."""
    pos, neg = o["sapo_temperatures"]
    tau = jnp.where(adv > 0, pos, neg)
    return -jax.nn.sigmoid(tau * (ratio - 1)) * 4 / tau * adv, {}


def _vespo(ratio, logps, adv, mask, log_ratio, o):
    """VESPO: -sg(phi(w)) A log p, phi(w) = e^lam w^k e^{-lam w}, w the sequence ratio (clamped
    in log space as TRL does); (k, lam) = vespo_pos if A >= 0 else vespo_neg."""
    low = math.log(1e-8)
    seq = jnp.sum(jnp.clip(SG(log_ratio), -20.0, 20.0) * mask, axis=-1, keepdims=True)
    log_w = jnp.clip(seq, low, 20.0)
    (kp, lp), (kn, ln) = o["vespo_pos"], o["vespo_neg"]
    k, lam = jnp.where(adv >= 0, kp, kn), jnp.maximum(jnp.where(adv >= 0, lp, ln), 1e-4)
    phi = jnp.nan_to_num(jnp.exp(lam + k * log_w - lam * jnp.exp(log_w)), nan=0, posinf=0)
    return -phi * adv * logps, {"phi": phi}


# name -> (per-token loss, normaliser)
LOSSES = {
    "grpo": (_clipped, "sequence_mean"),
    "bnpo": (_clipped, "token_mean"),
    "dr_grpo": (_clipped, "constant"),
    "dapo": (_clipped, "num_items"),
    "cispo": (_cispo, "num_items"),
    "sapo": (_sapo, "sequence_mean"),
    "luspo": (_clipped, "sequence_sum"),
    "vespo": (_vespo, "num_items"),
}
CLIPPED = tuple(k for k, (fn, _) in LOSSES.items() if fn is _clipped)


def check_grpo_names(**names: str) -> None:
    """Refuse an unknown loss type, aggregation, scale or importance level in one line."""
    allowed = {
        "loss_type": tuple(LOSSES),
        "aggregation": tuple(AGGREGATIONS),
        "scale": SCALES,
        "importance_sampling_level": IS_LEVELS,
    }
    for key, value in names.items():
        if value not in allowed[key]:
            raise ConfigError(f"grpo.{key}={value!r}: expected one of {', '.join(allowed[key])}")


def _normalised(per_token, mask, how, o):
    """TRL's aggregation of the masked per-token loss for one micro-batch."""
    lm = per_token * mask
    if how == "sequence_mean":
        loss = jnp.mean(lm.sum(-1) / jnp.maximum(mask.sum(-1), 1.0))
    elif how == "token_mean":
        loss = lm.sum() / jnp.maximum(mask.sum(), 1.0)
    elif how == "constant":
        if o["max_completion_len"] is None:
            raise ValueError("loss_type='dr_grpo' needs max_completion_len")
        loss = lm.sum() / (per_token.shape[0] * o["max_completion_len"])
    elif how == "sequence_sum":
        loss = jnp.mean(lm.sum(-1))
    else:  # num_items: the accumulation window's active tokens; grad_accum is already in it
        items = mask.sum() if o["num_items"] is None else _f(o["num_items"])
        return lm.sum() / jnp.maximum(items, 1.0)
    return loss / o["grad_accum"]


def _ratio(logps, old, mask, level):
    """log rho per token, or GSPO's length-mean per sequence [B, 1]."""
    log_ratio = logps - old
    if level == "sequence":
        return log_ratio, (log_ratio * mask).sum(-1, keepdims=True) / jnp.maximum(
            mask.sum(-1, keepdims=True), 1.0
        )
    return log_ratio, log_ratio


def _masked_mean(x, mask):
    """TRL's logged mean: over active tokens, or over rows for a per-sequence [B, 1] value."""
    if x.shape[1] == 1:
        return x.sum() / x.shape[0]
    return (x * mask).sum() / jnp.maximum(mask.sum(), 1.0)


def _row_means(x, mask):
    """Per-row mean of x over its tokens (NaN for an empty row, dropped by nanmin/nanmax)."""
    if x.shape[1] == 1:
        return x[:, 0]
    return (x * mask).sum(-1) / mask.sum(-1)


def _clip_metrics(ratio, adv, mask, loss_type, o, extra):
    """TRL's clip statistics for the loss type (clip_ratio/*, cispo_clip_ratio, vespo phi)."""
    if loss_type == "cispo":
        hit = ((ratio > o["epsilon_high"]) & (adv > 0)).astype(mask.dtype)
        return {"cispo_clip_ratio": _masked_mean(hit, mask)}
    if loss_type == "vespo":
        return {"vespo/phi_seq_mean": _masked_mean(extra["phi"], mask)}
    if loss_type not in CLIPPED:
        return {}
    ratio = extra["ratio"]  # TRL logs the delta-capped ratio
    low = (ratio < 1 - o["epsilon"]) & (adv < 0)
    high = (ratio > 1 + o["epsilon_high"]) & (adv > 0)
    low, high, region = (x.astype(mask.dtype) for x in (low, high, low | high))
    return {
        "clip_ratio/low_mean": _masked_mean(low, mask),
        "clip_ratio/high_mean": _masked_mean(high, mask),
        "clip_ratio/region_mean": _masked_mean(region, mask),
        "clip_ratio/low_min": jnp.nanmin(_row_means(low, mask)),
        "clip_ratio/high_max": jnp.nanmax(_row_means(high, mask)),
    }


def _inputs(logps, old_logps, advantages, mask):
    """Promoted arrays; old = sg(logps) when none is given; advantages as [B, 1] or [B, T]."""
    logps = _f(logps)
    old = SG(logps) if old_logps is None else _f(old_logps)
    adv = _f(advantages)
    return logps, old, adv[:, None] if adv.ndim == 1 else adv, _f(mask).astype(logps.dtype)


def _k3(logps, ref, ratio):
    """Schulman's k3 estimator of KL(pi || ref) per token, times rho if given (TRL's bias
    correction: the ratio is not detached, so it changes the gradient even at rho = 1)."""
    d = ref - logps
    kl = jnp.exp(d) - d - 1
    return kl if ratio is None else kl * ratio


def grpo_loss(
    logps: Float[Array, "B T"],
    old_logps: Float[Array, "B T"] | None,
    ref_logps: Float[Array, "B T"] | None,
    advantages: Float[Array, " B"] | Float[Array, "B T"],
    mask: Float[Array, "B T"],
    *,
    loss_type: str = "dapo",
    beta: float = 0.0,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    delta: float | None = None,
    importance_sampling_level: str = "token",
    max_completion_len: int | None = None,
    num_items: float | None = None,
    grad_accum: int = 1,
    bias_correction_kl: bool = True,
    sapo_temperatures: tuple[float, float] = (1.0, 1.05),
    vespo_pos: tuple[float, float] = (2.0, 3.0),
    vespo_neg: tuple[float, float] = (3.0, 2.0),
    entropies: Float[Array, "B T"] | None = None,
) -> tuple[jax.Array, dict]:
    """TRL's micro-batch GRPO loss and metrics (`GRPOTrainer._compute_loss`, no vLLM/entropy mask).

    `old_logps=None` means on-policy: old = sg(logps), so rho = 1 with gradient A grad log p.
    `num_items` is the dapo/cispo/vespo divisor (active tokens of the accumulation window;
    default this micro-batch's); the other types divide by `grad_accum`. `ref_logps` is needed
    iff beta != 0; the k3 KL is weighted by rho when `bias_correction_kl` (TRL's default).
    """
    check_grpo_names(loss_type=loss_type, importance_sampling_level=importance_sampling_level)
    if beta != 0 and ref_logps is None:
        raise ValueError("grpo_loss: beta != 0 needs ref_logps")
    logps, old, adv, mask = _inputs(logps, old_logps, advantages, mask)
    o = dict(
        epsilon=epsilon,
        epsilon_high=epsilon if epsilon_high is None else epsilon_high,
        delta=delta,
        max_completion_len=max_completion_len,
        num_items=num_items,
        grad_accum=grad_accum,
        sapo_temperatures=sapo_temperatures,
        vespo_pos=vespo_pos,
        vespo_neg=vespo_neg,
    )
    log_ratio, log_w = _ratio(logps, old, mask, importance_sampling_level)
    ratio = jnp.exp(log_w)
    per_token_fn, how = LOSSES[loss_type]
    per_token, extra = per_token_fn(ratio, logps, adv, mask, log_ratio, o)
    metrics = _clip_metrics(ratio, adv, mask, loss_type, o, extra)
    if beta != 0:
        kl = _k3(logps, _f(ref_logps), ratio if bias_correction_kl else None)
        per_token = per_token + beta * kl
        metrics["kl"] = _masked_mean(kl, mask)
    if entropies is not None:
        metrics["entropy"] = _masked_mean(_f(entropies), mask)
    return _normalised(per_token, mask, how, o), metrics

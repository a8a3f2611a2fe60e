"""Statistics of base-vs-tuned comparisons, with the prompt as the unit of analysis (numpy only).

Scores come as arrays [P, S]: P prompts, S decodings per prompt (greedy plus samples; NaN
where a decoding was not scored). Decodings are averaged within each prompt, and the paired
difference per prompt is D_p = tuned(p) - base(p). Confidence intervals are percentile
bootstraps that resample decodings (the "seeds": columns) and then prompts, B replicates from
one seeded generator, vectorised. p-values are sign-flip permutation tests on D_p. "Reduction"
is base - tuned where lower is better and tuned - base otherwise, so a positive reduction is
always an improvement. docs/EVALUATION.md gives the formulas.
"""

from __future__ import annotations

import warnings

import numpy as np

B_DEFAULT = 2000
PERMUTATIONS = 10_000


def prompt_means(x) -> np.ndarray:
    """[P] mean over decodings (columns) of a [P] or [P, S] score array, ignoring NaN."""
    x = np.asarray(x, float)
    if x.ndim == 1:
        return x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN rows stay NaN
        return np.nanmean(x, axis=1) if x.shape[1] else np.full(len(x), np.nan)


def _as_2d(x) -> np.ndarray:
    """A [P] array as [P, 1]; [P, S] unchanged."""
    x = np.asarray(x, float)
    return x[:, None] if x.ndim == 1 else x


def resampled_means(x, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """[B] means over prompts `rows` [B, P] of the per-prompt means over decodings `cols` [B, S]."""
    x = _as_2d(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        per_prompt = np.nanmean(x[:, cols], axis=2).T  # [B, P]: decodings resampled per replicate
    return np.nanmean(np.take_along_axis(per_prompt, rows, axis=1), axis=1)


def draws(n_prompts: int, n_samples: int, b: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Bootstrap indices: prompts [B, P] and decodings [B, S], from one seeded generator."""
    rng = np.random.default_rng(seed)
    cols = rng.integers(0, n_samples, (b, n_samples)) if n_samples > 1 else np.zeros((b, 1), int)
    return rng.integers(0, n_prompts, (b, n_prompts)), cols


def percentile_ci(reps: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """(low, high) percentile interval of bootstrap replicates (NaN when there are none)."""
    reps = reps[np.isfinite(reps)]
    if reps.size == 0:
        return float("nan"), float("nan")
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(reps, [tail, 100 - tail])
    return float(low), float(high)


def sign_flip_p(d, n: int = PERMUTATIONS, seed: int = 0) -> float:
    """Two-sided sign-flip permutation p-value of mean(d) = 0 (NaN for fewer than 2 prompts)."""
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float("nan")
    signs = np.random.default_rng(seed).choice((-1.0, 1.0), size=(n, d.size))
    null = np.abs(signs @ d) / d.size
    observed = abs(d.mean())
    return float((np.sum(null >= observed - 1e-12) + 1) / (n + 1))


def d_z(d) -> float:
    """Cohen's d_z of paired differences: mean / SD (ddof 1); NaN if undefined."""
    d = np.asarray(d, float)
    d = d[np.isfinite(d)]
    if d.size < 2:
        return float("nan")
    sd = d.std(ddof=1)
    return float(d.mean() / sd) if sd > 0 else float("nan")


def hedges_g(a, b) -> float:
    """Hedges' g between two conditions' per-prompt differences (pooled SD, small-sample J)."""
    from jaxalign.survey.analyze import hedges_g as g

    a, b = (np.asarray(x, float) for x in (a, b))
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size < 2 or b.size < 2:
        return float("nan")
    return g(a, b)


def holm(p) -> np.ndarray:
    """Holm-adjusted p-values (NaN entries stay NaN and do not count as tests)."""
    from jaxalign.survey.analyze import adjust

    p = np.asarray(p, float)
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    out[ok] = adjust(p[ok], "holm")
    return out


def reduction(base_mean, tuned_mean, lower_is_better: bool):
    """Improvement from base to tuned: base - tuned (lower is better) or tuned - base."""
    return base_mean - tuned_mean if lower_is_better else tuned_mean - base_mean


def paired(
    base,
    tuned,
    *,
    lower_is_better: bool = True,
    b: int = B_DEFAULT,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """Base and tuned means, tuned - base with its bootstrap CI, p, d_z and (relative) reduction."""
    base, tuned = _as_2d(base), _as_2d(tuned)
    if base.shape[0] != tuned.shape[0]:
        raise ValueError(f"base has {base.shape[0]} prompts but tuned has {tuned.shape[0]}")
    d = prompt_means(tuned) - prompt_means(base)
    keep = np.isfinite(d)
    base, tuned, d = base[keep], tuned[keep], d[keep]
    n = int(keep.sum())
    out = {"n_prompts": n, "n_samples": int(max(base.shape[1], tuned.shape[1]))}
    if n == 0:
        return {**out, **dict.fromkeys(_FIELDS, float("nan"))}
    rows, cols = draws(n, out["n_samples"], b, seed)
    bm = resampled_means(base, rows, cols[:, : base.shape[1]] % base.shape[1])
    tm = resampled_means(tuned, rows, cols[:, : tuned.shape[1]] % tuned.shape[1])
    base_mean, tuned_mean = float(prompt_means(base).mean()), float(prompt_means(tuned).mean())
    red = reduction(bm, tm, lower_is_better)
    rel = red / np.where(bm != 0, bm, np.nan)
    low, high = percentile_ci(tm - bm, level) if n > 1 else (float("nan"), float("nan"))
    r_low, r_high = percentile_ci(red, level) if n > 1 else (float("nan"), float("nan"))
    red0 = reduction(base_mean, tuned_mean, lower_is_better)
    return {
        **out,
        "base_mean": base_mean,
        "tuned_mean": tuned_mean,
        "diff": float(d.mean()),
        "ci_low": low,
        "ci_high": high,
        "se": float(np.std(tm - bm, ddof=1)) if n > 1 else float("nan"),
        "p": sign_flip_p(d, seed=seed),
        "effect_size": d_z(d),
        "reduction": float(red0),
        "reduction_ci": [r_low, r_high],
        "rel_reduction": float(red0 / base_mean) if base_mean else float("nan"),
        "rel_reduction_ci": list(percentile_ci(rel, level)) if n > 1 else [np.nan, np.nan],
    }


_FIELDS = (
    "base_mean",
    "tuned_mean",
    "diff",
    "ci_low",
    "ci_high",
    "se",
    "p",
    "effect_size",
    "reduction",
    "rel_reduction",
)


def greater_reduction(
    base,
    tuned_a,
    tuned_b,
    *,
    lower_is_better: bool = True,
    b: int = B_DEFAULT,
    seed: int = 0,
    level: float = 0.95,
) -> dict:
    """ "X% greater reduction" of condition A over B: 100 (R_A / R_B - 1) per bootstrap replicate.

    A and B are evaluated on the same prompts against the same base; every replicate resamples
    prompts once for both. The ratio is undefined (`defined: False`) when the CI of R_B covers
    0; the difference R_A - R_B (always reported) is then the comparison to read.
    """
    base, ta, tb = _as_2d(base), _as_2d(tuned_a), _as_2d(tuned_b)
    n, s = base.shape[0], max(x.shape[1] for x in (base, ta, tb))
    rows, cols = draws(n, s, b, seed)

    def means(x):
        """Replicate means of one condition on the shared draws."""
        return resampled_means(x, rows, cols[:, : x.shape[1]] % x.shape[1])

    bm = means(base)
    ra = reduction(bm, means(ta), lower_is_better)
    rb = reduction(bm, means(tb), lower_is_better)
    b0 = float(prompt_means(base).mean())
    r_a = reduction(b0, float(prompt_means(ta).mean()), lower_is_better)
    r_b = reduction(b0, float(prompt_means(tb).mean()), lower_is_better)
    rb_ci = percentile_ci(rb, level)
    defined = bool(np.isfinite(rb_ci[0]) and (rb_ci[0] > 0 or rb_ci[1] < 0))
    out = {
        "reduction_a": r_a,
        "reduction_b": r_b,
        "reduction_b_ci": list(rb_ci),
        "difference": r_a - r_b,
        "difference_ci": list(percentile_ci(ra - rb, level)),
        "defined": defined,
        "pct": float("nan"),
        "pct_ci": [float("nan"), float("nan")],
    }
    if defined:
        out["pct"] = 100.0 * (r_a / r_b - 1.0)
        out["pct_ci"] = list(percentile_ci(100.0 * (ra / rb - 1.0), level))
    return out


def length_adjusted(base, tuned, base_words, tuned_words, **kw) -> dict:
    """`paired` on scores residualised on log(1 + words), base and tuned pooled (one OLS line).

    Removes the part of a difference that a change of reply length alone would explain.
    """
    base, tuned = _as_2d(base), _as_2d(tuned)
    bw, tw = _as_2d(base_words), _as_2d(tuned_words)
    y = np.concatenate([base.ravel(), tuned.ravel()])
    x = np.log1p(np.concatenate([bw.ravel(), tw.ravel()]))
    ok = np.isfinite(y) & np.isfinite(x)
    slope = 0.0
    if ok.sum() > 2 and np.var(x[ok]) > 0:
        slope = float(np.cov(x[ok], y[ok], ddof=1)[0, 1] / np.var(x[ok], ddof=1))
    centre = np.mean(x[ok]) if ok.any() else 0.0
    adj_b = base - slope * (np.log1p(bw) - centre)
    adj_t = tuned - slope * (np.log1p(tw) - centre)
    return {**paired(adj_b, adj_t, **kw), "slope": slope}

"""Per-response analysis: dimension trade-offs, length, and whether groups rank responses alike.

A group's additive shift moves every response's mean by the same amount and leaves the
ranking unchanged; a group x content interaction changes the ranking. For each comparison
of two groups (both with at least `analysis.interaction_min_raters` raters) and each
dimension, the report gives the Spearman correlation of the two groups' per-response mean
ratings, the correlation that noise alone would leave if both ranked identically (the
`ceiling`, sqrt of the product of the two groups' reliabilities of per-response means), and
their ratio (`agreement`, about 1 when the groups rank alike). CIs come from a bootstrap
that resamples raters within each group (`analysis.rank_bootstrap` resamples). When the
ratings come from the simulator, the planted interactions are checked against the
recovered style contrast.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from jaxalign.survey import schema
from jaxalign.survey.groups import contrast

WORD = r"\w+"


def response_matrix(frame: pd.DataFrame, raters: pd.DataFrame):
    """(response ids, sparse [R, N*D] ratings, squared ratings and counts) per rater."""
    from scipy import sparse

    responses = np.array(sorted(frame["response_id"].unique(), key=str), dtype=object)
    n_dim = len(schema.DIMENSIONS)
    rows = pd.Index(raters["rater_id"]).get_indexer(frame["rater_id"])
    d_idx = frame["dimension"].map({d: i for i, d in enumerate(schema.DIMENSIONS)}).to_numpy()
    cols = pd.Index(responses).get_indexer(frame["response_id"]) * n_dim + d_idx
    rating = frame["rating"].to_numpy(float)
    shape = (len(raters), len(responses) * n_dim)

    def matrix(data):
        return sparse.csr_matrix((data, (rows, cols)), shape=shape)

    return responses, (matrix(rating), matrix(rating**2), matrix(np.ones_like(rating)))


def overview_tables(frame: pd.DataFrame) -> dict:
    """Correlations of per-response mean ratings between dimensions, and with length."""
    means = frame.pivot_table(index="response_id", columns="dimension", values="rating")
    dims = [d for d in schema.DIMENSIONS if d in means.columns]
    corr = means[dims].corr()
    english = frame.sort_values("language", key=lambda s: s != "en", kind="stable")
    text = english.drop_duplicates("response_id").set_index("response_id")["response"]
    words = np.log(text.str.count(WORD).clip(lower=1)).reindex(means.index)
    return {
        "dimension_correlations": {
            a: {b: round(float(corr.loc[a, b]), 4) for b in dims} for a in dims
        },
        "log_words_correlations": {
            d: round(float(np.corrcoef(words, means[d])[0, 1]), 4) for d in dims
        },
    }


def _group_stats(mats, weights):
    """Per-replicate per-response means and reliability of the means: [B, N, D], [B, D]."""
    shape = (len(weights), -1, len(schema.DIMENSIONS))
    s, q, n = ((m.T @ weights.T).T.reshape(shape) for m in mats)
    n2 = (mats[2].T @ (weights**2).T).T.reshape(shape)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        # A resample repeats raters, so a mean rests on n^2 / sum(w^2) independent ratings.
        n_eff = n**2 / n2
        noise = (q / n - mean**2) * n_eff / (n_eff - 1) / n_eff  # squared standard error
    ok = n >= 2
    spread = np.nanvar(np.where(ok, mean, np.nan), axis=1)
    noise_mean = np.nanmean(np.where(ok, noise, np.nan), axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        reliability = np.clip(1.0 - noise_mean / spread, 1e-3, 1.0)
    return mean, reliability


def _correlate_rows(a: np.ndarray, b: np.ndarray, ranks: bool = False) -> np.ndarray:
    """Pearson (or, with `ranks`, Spearman) correlation of a[i] with b[i] for every row i."""
    if ranks:
        a = np.argsort(np.argsort(a, axis=-1), axis=-1)
        b = np.argsort(np.argsort(b, axis=-1), axis=-1)
    ra, rb = a.astype(float), b.astype(float)
    ra -= ra.mean(-1, keepdims=True)
    rb -= rb.mean(-1, keepdims=True)
    return (ra * rb).sum(-1) / np.sqrt((ra**2).sum(-1) * (rb**2).sum(-1))


def _weights(n: int, n_boot: int, rng) -> np.ndarray:
    """[1 + B, n] rater weights: the point estimate (all ones), then bootstrap resamples."""
    draws = rng.integers(0, n, size=(n_boot, n)) + (np.arange(n_boot) * n)[:, None]
    boot = np.bincount(draws.ravel(), minlength=n_boot * n).reshape(n_boot, n)
    return np.vstack([np.ones((1, n)), boot]).astype(float)


def compare_rankings(mats, g_mask, r_mask, cfg, rng, styles_mask=None):
    """Per dimension: rank agreement of two groups' response means (+ style contrast)."""
    boot_g = _weights(int(g_mask.sum()), cfg.rank_bootstrap, rng)
    mean_g, rel_g = _group_stats([m[g_mask] for m in mats], boot_g)
    boot_r = _weights(int(r_mask.sum()), cfg.rank_bootstrap, rng)
    mean_r, rel_r = _group_stats([m[r_mask] for m in mats], boot_r)
    both = ~np.isnan(mean_g[0]) & ~np.isnan(mean_r[0])  # [N, D] rated by both groups
    tail = (1.0 - cfg.confidence) / 2.0
    out = {}
    for d, dim in enumerate(schema.DIMENSIONS):
        keep = both[:, d]
        if keep.sum() < 5:
            continue
        # A response a resample leaves unrated keeps the group's full-sample mean.
        a = np.where(np.isnan(mean_g[:, keep, d]), mean_g[0, keep, d], mean_g[:, keep, d])
        b = np.where(np.isnan(mean_r[:, keep, d]), mean_r[0, keep, d], mean_r[:, keep, d])
        ceiling = np.sqrt(rel_g[:, d] * rel_r[:, d])
        rec = {
            "responses": int(keep.sum()),
            "rank_agreement": _summary(_correlate_rows(a, b, ranks=True), tail),
            "ceiling": round(float(ceiling[0]), 4),
            "agreement": _summary(_correlate_rows(a, b) / ceiling, tail),
        }
        rec["differs"] = bool(rec["agreement"]["ci_high"] < 1.0)
        if styles_mask is not None:
            inside = styles_mask[keep]
            diff = a - b
            did = diff[:, inside].mean(1) - diff[:, ~inside].mean(1)
            rec["style_contrast"] = _summary(did, tail)
        out[dim] = rec
    return out


def _summary(values: np.ndarray, tail: float) -> dict:
    """Point estimate (row 0) and a bootstrap CI over the other rows, centred on the estimate.

    Resampling raters repeats some of them, which adds noise to every resampled mean and
    shifts raw correlations down; the interval keeps the bootstrap's width and quantiles
    relative to its median, placed around the estimate.
    """
    lo, mid, hi = np.nanquantile(values[1:], [tail, 0.5, 1.0 - tail])
    est = float(values[0])
    return {
        "estimate": round(est, 4),
        "ci_low": round(est + float(lo - mid), 4),
        "ci_high": round(est + float(hi - mid), 4),
    }


def rank_report(frame, raters, jobs, cfg, rng, truth: dict | None = None) -> dict:
    """Rank agreement for every (attribute, group, reference) job, and planted interactions."""
    responses, mats = response_matrix(frame, raters)
    comparisons = []
    for attribute, group, reference in jobs:
        g, r = contrast(raters, attribute, group, reference)
        if min(g.sum(), r.sum()) < cfg.interaction_min_raters:
            continue
        per_dim = compare_rankings(mats, g, r, cfg, rng)
        for dim, rec in per_dim.items():
            comparisons.append(
                {
                    "dimension": dim,
                    "attribute": attribute,
                    "group": group,
                    "reference": reference,
                    **rec,
                }
            )
    return {
        "comparisons": comparisons,
        "planted": _planted(truth, responses, mats, raters, cfg, rng),
    }


def _planted(truth, responses, mats, raters, cfg, rng) -> list[dict]:
    """Each planted interaction of a simulated survey with its recovered style contrast."""
    if not truth or not truth.get("planted_interactions"):
        return []
    style_of = {str(r["prompt_id"]): r["style"] for r in truth["responses"]}
    styles = np.array([style_of.get(str(rid), "") for rid in responses], dtype=object)
    out = []
    for inter in truth["planted_interactions"]:
        g, r = contrast(raters, inter["attribute"], inter["group"], inter["reference"])
        if not g.any() or not r.any():
            continue
        inside = np.isin(styles, inter["styles"])
        rec = compare_rankings(mats, g, r, cfg, rng, inside).get(inter["dimension"])
        if rec is not None:
            out.append(
                {
                    **{
                        k: inter[k]
                        for k in ("dimension", "attribute", "group", "reference", "styles", "shift")
                    },
                    **rec,
                }
            )
    return out


def find_simulation(ratings_path: str | Path) -> dict | None:
    """The simulator's manifest beside a ratings file (or an export directory), if any."""
    path = Path(ratings_path)
    for candidate in (path.parent / "simulation.json", path / "simulation.json"):
        if candidate.is_file():
            try:
                return json.loads(candidate.read_text())
            except (OSError, ValueError):
                return None
    return None

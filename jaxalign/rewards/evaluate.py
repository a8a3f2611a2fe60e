"""Held-out evaluation of rating heads: other raters, other questions (grouped CV).

Raters of the fold are split in two halves by a hash of reward.seed and their id, and
questions into reward.cv_folds folds. For each direction (fit on half A, score against
half B, and back) and each question fold, heads are fitted on one half's ratings of the
other folds' questions and score the held-out questions' texts. The report gives, per
head, the Spearman correlation of those out-of-fold scores with the other half's mean
ratings, averaged over both directions, beside the split-half ceiling: the Spearman
correlation of the two halves' own mean ratings of the same responses. A model scores
held-out texts without their raters' noise, so it can exceed this ceiling.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxalign.rewards.features import Tfidf
from jaxalign.rewards.heads import Corpus, fit_heads, head_name, rater_half, response_scores
from jaxalign.rewards.ridge import fold_ids
from jaxalign.survey import schema


def _half_aggregates(corpus: Corpus, masks: dict, halves: np.ndarray, h: int):
    """(base, groups) aggregates over raters of half `h`."""
    in_half = halves == h
    base = corpus.aggregate(in_half)
    groups = {g: corpus.aggregate(in_half & m) for g, m in masks.items()}
    return base, groups


def out_of_fold(corpus: Corpus, masks: dict, halves: np.ndarray, h: int, cfg):
    """Per head, out-of-fold response scores [N] from heads fitted on half `h`."""
    base, groups = _half_aggregates(corpus, masks, halves, h)
    folds = fold_ids(corpus.questions, min(cfg.cv_folds, len(set(corpus.questions.tolist()))))
    scores = {
        head_name(g, d): np.full(len(corpus.responses), np.nan)
        for g in masks
        for d in cfg.dimensions
    }
    for f in range(folds.max() + 1):
        train = folds != f
        vocab = Tfidf.fit(
            [t for t, r in zip(corpus.texts, corpus.text_response) if train[r]], cfg.ngrams
        )
        X = vocab.transform(corpus.texts)
        heads = fit_heads(corpus, X, train, base, groups, cfg)
        for name, s in response_scores(corpus, X, heads).items():
            scores[name][~train] = s[~train]
    return scores


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman over the entries finite in both; NaN with fewer than 3."""
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 3:
        return float("nan")
    # Average ranks for ties, as scipy.stats.spearmanr (whose import alone costs ~1 s).
    ra, rb = pd.Series(a[ok]).rank().to_numpy(), pd.Series(b[ok]).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def evaluate(corpus: Corpus, masks: dict, cfg) -> dict[str, dict]:
    """Per head: held-out Spearman (both directions), ceiling, counts."""
    raters = corpus.frame["rater_id"].to_numpy(object)
    halves = rater_half(raters, cfg.seed)
    oof = [out_of_fold(corpus, masks, halves, h, cfg) for h in (0, 1)]
    report = {}
    for group, mask in masks.items():
        means = []
        for h in (0, 1):
            s, c = corpus.aggregate((halves == h) & mask)
            with np.errstate(invalid="ignore", divide="ignore"):
                means.append(s / c)
        sub = corpus.frame.loc[mask]
        for dim in cfg.dimensions:
            d, name = schema.DIMENSIONS.index(dim), head_name(group, dim)
            rho = [spearman(oof[h][name], means[1 - h][:, d]) for h in (0, 1)]
            ceiling = spearman(means[0][:, d], means[1][:, d])
            rho_mean = float(np.nanmean(rho)) if np.isfinite(rho).any() else float("nan")
            report[name] = {
                "dimension": dim,
                "group": group,
                "spearman": round4(rho_mean),
                "spearman_by_direction": [round4(r) for r in rho],
                "ceiling": round4(ceiling),
                "valid": bool(np.isfinite(rho_mean) and rho_mean >= cfg.min_spearman),
                **head_counts(sub, dim),
            }
    return report


def head_counts(sub: pd.DataFrame, dim: str) -> dict:
    """Raters, ratings of `dim`, rated responses and questions in a group's ratings `sub`."""
    return {
        "raters": int(sub["rater_id"].nunique()),
        "ratings": int((sub["dimension"] == dim).sum()),
        "responses": int(sub.loc[sub["dimension"] == dim, "response_id"].nunique()),
        "questions": int(sub["question_id"].nunique()),
    }


def round4(x: float) -> float | None:
    """4 decimals; None for NaN (JSON has no NaN)."""
    return round(float(x), 4) if np.isfinite(x) else None

"""Fit ridge rating heads per (group, dimension) and evaluate them on held-out raters/questions.

Targets are mean ratings per response; each distinct text of a response (English and
German) is a training row weighted by the response's rating count over its text count.
The all-rater head of a dimension is fitted first; a group's head adds the group's mean
offset and a ridge fit of its per-response residuals shrunk by n / (n + reward.shrinkage)
(n = the group's ratings of that response), so a small group's head stays close to the
all-rater head where its own evidence is thin (docs/REWARDS.md).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jaxalign.config import RewardConfig
from jaxalign.errors import DataError
from jaxalign.prefs.filters import group_mask
from jaxalign.rewards.ridge import Linear, predict, select
from jaxalign.survey import schema


def head_name(group: str, dimension: str) -> str:
    """`dimension[group]`, e.g. toxicity[gender=female]."""
    return f"{dimension}[{group}]"


@dataclass
class Corpus:
    """Responses, their texts and questions, and the long ratings they come from."""

    frame: pd.DataFrame
    responses: np.ndarray  # [N] response ids
    questions: np.ndarray  # [N] question id per response
    texts: list[str]  # [T] distinct texts
    text_response: np.ndarray  # [T] response index per text

    @classmethod
    def build(cls, frame: pd.DataFrame) -> Corpus:
        """Index a fold's ratings by response and text."""
        pairs = frame.drop_duplicates(["response_id", "response"]).sort_values(
            ["response_id", "response"], key=lambda s: s.astype(str), kind="stable"
        )
        first = pairs.drop_duplicates("response_id")
        responses = first["response_id"].to_numpy(object)
        index = pd.Index(responses)
        return cls(
            frame,
            responses,
            first["question_id"].to_numpy(object),
            pairs["response"].tolist(),
            index.get_indexer(pairs["response_id"]),
        )

    def aggregate(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rating sums and counts [N, D] over the ratings rows selected by the mask `rows`."""
        sub = self.frame.loc[rows]
        r = pd.Index(self.responses).get_indexer(sub["response_id"])
        d = sub["dimension"].map({k: i for i, k in enumerate(schema.DIMENSIONS)}).to_numpy()
        sums = np.zeros((len(self.responses), len(schema.DIMENSIONS)))
        counts = np.zeros_like(sums)
        np.add.at(sums, (r, d), sub["rating"].to_numpy(float))
        np.add.at(counts, (r, d), 1.0)
        return sums, counts


def group_masks(frame: pd.DataFrame, cfg: RewardConfig) -> dict[str, np.ndarray]:
    """Row mask per group, of its `reward.max_raters` raters chosen as the preferences choose
    them (`prefs.build.subsample_raters`); fewer than reward.min_raters raters is an error."""
    from jaxalign.prefs.build import subsample_raters

    out = {}
    for expr in cfg.groups:
        mask = group_mask(frame, expr)
        if cfg.max_raters:
            kept = subsample_raters(frame.loc[mask], expr, cfg.max_raters, "reward.max_raters")
            mask = np.asarray(frame.index.isin(kept.index))
        n = frame.loc[mask, "rater_id"].nunique()
        if n < cfg.min_raters:
            raise DataError(
                f"group '{expr}': {n} raters in the fold, fewer than reward.min_raters={cfg.min_raters}"
            )
        out[expr] = mask
    return out


def _rows(corpus: Corpus, keep: np.ndarray, counts: np.ndarray):
    """Text rows of responses in `keep` with ratings, and each row's weight share."""
    per_response = np.bincount(corpus.text_response, minlength=len(corpus.responses))
    rows = np.flatnonzero(keep[corpus.text_response] & (counts[corpus.text_response] > 0))
    resp = corpus.text_response[rows]
    return rows, resp, counts[resp] / per_response[resp]


def _fit_target(corpus, X, K, keep, target, counts, cfg) -> Linear | None:
    """Ridge on one per-response target (responses in `keep` with counts > 0)."""
    rows, resp, w = _rows(corpus, keep, counts)
    if len(rows) < 2:
        return None
    return select(
        X[rows],
        target[resp],
        w,
        corpus.questions[resp],
        cfg.alphas,
        cfg.cv_folds,
        K[np.ix_(rows, rows)],
    )


def fit_heads(corpus, X, keep, base: tuple, groups: dict[str, tuple], cfg) -> dict[str, Linear]:
    """All heads from aggregates: base (all raters of the fold) and per-group (sums, counts)."""
    K = (X @ X.T).toarray()
    heads = {}
    for dim in cfg.dimensions:
        d = schema.DIMENSIONS.index(dim)
        s_all, c_all = base[0][:, d], base[1][:, d]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_all = s_all / c_all
        head_all = _fit_target(corpus, X, K, keep, mean_all, c_all, cfg)
        if head_all is None:
            raise DataError(f"no ratings of {dim} to train on")
        for group, (s_g, c_g) in groups.items():
            heads[head_name(group, dim)] = (
                head_all
                if group == "all"
                else _group_head(corpus, X, K, keep, head_all, mean_all, s_g[:, d], c_g[:, d], cfg)
            )
    return heads


def _group_head(corpus, X, K, keep, head_all, mean_all, s_g, c_g, cfg) -> Linear:
    """The all-rater head plus the group's offset and its shrunken residual fit."""
    rated = keep & (c_g > 0) & np.isfinite(mean_all)
    with np.errstate(invalid="ignore", divide="ignore"):
        diff = np.where(rated, s_g / c_g - mean_all, 0.0)
    offset = float((c_g[rated] * diff[rated]).sum() / max(c_g[rated].sum(), 1e-12))
    shrunk = c_g / (c_g + cfg.shrinkage) * (diff - offset)
    res = _fit_target(corpus, X, K, rated, shrunk, np.where(rated, c_g, 0.0), cfg)
    if res is None:
        return Linear(head_all.coef, head_all.intercept + offset, head_all.alpha)
    return Linear(head_all.coef + res.coef, head_all.intercept + offset + res.intercept, res.alpha)


def response_scores(corpus: Corpus, X, heads: dict[str, Linear]) -> dict[str, np.ndarray]:
    """Per head, the mean score over each response's texts: [N]."""
    n = np.bincount(corpus.text_response, minlength=len(corpus.responses))
    return {
        name: np.bincount(corpus.text_response, predict(X, h), len(corpus.responses)) / n
        for name, h in heads.items()
    }


def rater_half(rater_ids, seed: int) -> np.ndarray:
    """0 or 1 per rater id, from SHA-256 of the seed and the id (the evaluation's halves)."""
    return np.array(
        [hashlib.sha256(f"half:{seed}:{r}".encode()).digest()[0] & 1 for r in rater_ids]
    )

"""Scale collapse, orientation and the disagreement policies, as small named functions.

Scores are "higher is better": agreement ratings are collapsed to the chosen scale, then
flipped for dimensions where agreeing is bad (toxicity, stereotypical bias). A response's
ratings are the rows of an array [n_raters, n_dims] of scores.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jaxalign.survey.schema import LOWER_IS_BETTER

# Agreement 1..5 -> level on the collapsed scale; NaN means "dropped" (binary neutral).
COLLAPSE = {
    5: {1: 1, 2: 2, 3: 3, 4: 4, 5: 5},
    3: {1: 1, 2: 1, 3: 2, 4: 3, 5: 3},
    2: {1: 1, 2: 1, 3: np.nan, 4: 2, 5: 2},
}
BINARY_NEUTRAL = {"drop": np.nan, "low": 1, "high": 2}


def collapse(ratings: np.ndarray, scale: int, binary_neutral: str = "drop") -> np.ndarray:
    """Map agreement ratings 1..5 onto a 5-, 3- or 2-level scale (float; NaN = dropped)."""
    table = dict(COLLAPSE[scale])
    if scale == 2:
        table[3] = BINARY_NEUTRAL[binary_neutral]
    lookup = np.array([np.nan] + [table[k] for k in range(1, 6)], dtype=float)
    return lookup[np.asarray(ratings, dtype=np.int64)]


def orient(levels: np.ndarray, dimension: str, scale: int) -> np.ndarray:
    """Flip levels so that higher is better for `dimension`."""
    return (scale + 1) - levels if dimension in LOWER_IS_BETTER else levels


def mode(x: np.ndarray) -> float:
    """Most frequent value; ties go to the lowest tied value."""
    values, counts = np.unique(x, return_counts=True)
    return float(values[np.argmax(counts)])


@dataclass(frozen=True)
class Evidence:
    """Pairwise evidence between responses A and B from individual ratings."""

    n_a: int
    n_b: int
    n_ab: int  # rating pairs where A's rating is strictly better than B's
    n_ba: int
    n_tie: int  # equal (or, for pareto, incomparable) rating pairs


def scalar_evidence(a: np.ndarray, b: np.ndarray) -> Evidence:
    """Count strict wins between every rating of A and every rating of B (1-D scores)."""
    b_sorted = np.sort(b)
    below = np.searchsorted(b_sorted, a, side="left").sum()
    above = (len(b) - np.searchsorted(b_sorted, a, side="right")).sum()
    total = len(a) * len(b)
    return Evidence(len(a), len(b), int(below), int(above), int(total - below - above))


def pareto_evidence(a: np.ndarray, b: np.ndarray) -> Evidence:
    """Count rating pairs where one score vector Pareto-dominates the other ([n, k] arrays)."""
    ge = a[:, None, :] >= b[None, :, :]
    le = a[:, None, :] <= b[None, :, :]
    a_dom = (ge.all(-1) & ~le.all(-1)).sum()
    b_dom = (le.all(-1) & ~ge.all(-1)).sum()
    total = len(a) * len(b)
    return Evidence(len(a), len(b), int(a_dom), int(b_dom), int(total - a_dom - b_dom))


def dominance(stat_a: np.ndarray, stat_b: np.ndarray) -> int:
    """+1 if A Pareto-dominates B, -1 if B dominates A, else 0."""
    if np.all(stat_a >= stat_b) and np.any(stat_a > stat_b):
        return 1
    if np.all(stat_b >= stat_a) and np.any(stat_b > stat_a):
        return -1
    return 0


@dataclass(frozen=True)
class Decision:
    """Preference records for one response pair: (a_is_chosen, weight, soft_label) each."""

    records: tuple[tuple[bool, float, float], ...]
    tie: bool
    stat_a: object
    stat_b: object


def _aggregate(x: np.ndarray, how: str, weights: np.ndarray | None) -> np.ndarray | float:
    """Per-dimension mode or mean, combined by weights when given."""
    per_dim = np.array([mode(col) if how == "mode" else float(col.mean()) for col in x.T])
    return float(per_dim @ weights) if weights is not None else per_dim


def decide(
    a: np.ndarray, b: np.ndarray, policy: str, weights: np.ndarray | None, keep_ties: bool
) -> Decision:
    """Apply a disagreement policy to the rating arrays of A and B ([n, k] scores).

    `weights` (summing to 1) combine dimensions into one score; None means Pareto.
    """
    if policy in ("majority", "mean"):
        stat_a = _aggregate(a, "mode" if policy == "majority" else "mean", weights)
        stat_b = _aggregate(b, "mode" if policy == "majority" else "mean", weights)
        if weights is not None:
            sign = int(np.sign(round(stat_a - stat_b, 9)))
        else:
            sign = dominance(stat_a, stat_b)
        if sign == 0:
            return Decision(((True, 1.0, 0.5),) if keep_ties else (), True, stat_a, stat_b)
        return Decision(((sign > 0, 1.0, 1.0),), False, stat_a, stat_b)
    ev = evidence(a, b, weights)
    strict = ev.n_ab + ev.n_ba
    if policy == "preserve":
        if strict == 0:
            return Decision(((True, 1.0, 0.5),) if keep_ties else (), True, None, None)
        records = tuple(
            (a_wins, n / strict, 1.0) for a_wins, n in ((True, ev.n_ab), (False, ev.n_ba)) if n
        )
        return Decision(records, False, None, None)
    # soft: P(A better than B) counting ties and incomparable pairs as half.
    p = (ev.n_ab + 0.5 * ev.n_tie) / (ev.n_a * ev.n_b)
    if abs(p - 0.5) < 1e-12:
        return Decision(((True, 1.0, 0.5),) if keep_ties else (), True, p, 1 - p)
    return Decision(((p > 0.5, 1.0, max(p, 1 - p)),), False, p, 1 - p)


def evidence(a: np.ndarray, b: np.ndarray, weights: np.ndarray | None) -> Evidence:
    """Pairwise rating evidence on the combined score (weights) or by Pareto dominance (None)."""
    if weights is None:
        return pareto_evidence(a, b)
    # Rounded so that equal weighted sums compare as ties despite float error.
    return scalar_evidence(np.round(a @ weights, 9), np.round(b @ weights, 9))

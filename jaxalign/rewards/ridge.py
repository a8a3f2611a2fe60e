"""Weighted ridge regression in its dual form, with the penalty chosen by grouped CV.

Rows are texts (a few hundred), columns n-grams (thousands), so the n x n kernel is the
cheap side: solve (Kc + alpha W^-1) a = yc for the weighted-centred kernel Kc, then
beta = Xc^T a and b = mean_w(y) - mean_w(x) . beta. This minimises
sum_i w_i (y_i - b - x_i . beta)^2 + alpha |beta|^2 with weights normalised to mean 1.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import numpy as np
from scipy import sparse


@dataclass(frozen=True)
class Linear:
    """A fitted linear head: score = x . coef + intercept."""

    coef: np.ndarray
    intercept: float
    alpha: float


@contextlib.contextmanager
def one_blas_thread():
    """Run small dense solves on one BLAS thread (many threads contend and run ~10x slower)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # optional: only a speed-up
        yield
        return
    with threadpool_limits(1, user_api="blas"):
        yield


def fit(X: sparse.csr_matrix, y: np.ndarray, w: np.ndarray, alpha: float, K=None) -> Linear:
    """Weighted ridge with an unpenalised intercept (K = X X^T may be passed in)."""
    K = (X @ X.T).toarray() if K is None else K
    w = w / w.mean()
    p = w / w.sum()
    y_bar = float(p @ y)
    Kp = K @ p
    Kc = K - Kp[:, None] - Kp[None, :] + float(p @ Kp)
    a = np.linalg.solve(Kc + alpha * np.diag(1.0 / w), y - y_bar)
    coef = np.asarray(X.T @ (a - p * a.sum())).ravel()
    x_bar_coef = float(p @ (X @ coef))
    return Linear(coef, y_bar - x_bar_coef, alpha)


def predict(X: sparse.csr_matrix, head: Linear) -> np.ndarray:
    """Scores of the rows of X."""
    return np.asarray(X @ head.coef).ravel() + head.intercept


def fold_ids(groups: np.ndarray, k: int) -> np.ndarray:
    """Fold index per row: distinct groups dealt round-robin in sorted order."""
    uniq = sorted(set(groups.tolist()), key=str)
    fold_of = {g: i % k for i, g in enumerate(uniq)}
    return np.array([fold_of[g] for g in groups.tolist()])


def select(X, y, w, groups, alphas, k: int, K=None) -> Linear:
    """Fit with the alpha whose grouped-CV weighted squared error is smallest."""
    K = (X @ X.T).toarray() if K is None else K
    folds = fold_ids(groups, min(k, len(set(groups.tolist()))))
    best, best_err = alphas[0], np.inf
    if folds.max() > 0:
        for alpha in alphas:
            err = 0.0
            for f in range(folds.max() + 1):
                tr, te = folds != f, folds == f
                head = fit(X[tr], y[tr], w[tr], alpha, K[np.ix_(tr, tr)])
                err += float(w[te] @ (predict(X[te], head) - y[te]) ** 2)
            if err < best_err - 1e-12:
                best, best_err = alpha, err
    return fit(X, y, w, best, K)

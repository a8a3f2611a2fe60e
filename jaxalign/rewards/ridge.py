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


def _dual(K: np.ndarray, y: np.ndarray, w: np.ndarray, alphas) -> list[tuple[np.ndarray, float]]:
    """Per alpha, (dual weights t, intercept): scores of rows j are K[j] . t + intercept.

    The weighted centring is shared by every alpha, so it is done once.
    """
    w = w / w.mean()
    p = w / w.sum()
    y_bar = float(p @ y)
    Kp = K @ p
    Kc = K - Kp[:, None] - Kp[None, :] + float(p @ Kp)
    out = []
    for alpha in alphas:
        a = np.linalg.solve(Kc + alpha * np.diag(1.0 / w), y - y_bar)
        t = a - p * a.sum()  # coef = X^T t, so x_bar . coef = p . (K t)
        out.append((t, y_bar - float(Kp @ t)))
    return out


def fit(X: sparse.csr_matrix, y: np.ndarray, w: np.ndarray, alpha: float, K=None) -> Linear:
    """Weighted ridge with an unpenalised intercept (K = X X^T may be passed in)."""
    K = (X @ X.T).toarray() if K is None else K
    [(t, intercept)] = _dual(K, y, w, [alpha])
    return Linear(np.asarray(X.T @ t).ravel(), intercept, alpha)


def predict(X: sparse.csr_matrix, head: Linear) -> np.ndarray:
    """Scores of the rows of X."""
    return np.asarray(X @ head.coef).ravel() + head.intercept


def fold_ids(groups: np.ndarray, k: int) -> np.ndarray:
    """Fold index per row: distinct groups dealt round-robin in sorted order."""
    uniq = sorted(set(groups.tolist()), key=str)
    fold_of = {g: i % k for i, g in enumerate(uniq)}
    return np.array([fold_of[g] for g in groups.tolist()])


def select(X, y, w, groups, alphas, k: int, K=None) -> Linear:
    """Fit with the alpha whose grouped-CV weighted squared error is smallest.

    Held-out predictions come from the kernel alone (K[te, tr] . t): no sparse slicing.
    """
    K = (X @ X.T).toarray() if K is None else K
    folds = fold_ids(groups, min(k, len(set(groups.tolist()))))
    errs = np.zeros(len(alphas))
    for f in range(folds.max() + 1 if folds.max() > 0 else 0):
        tr, te = np.flatnonzero(folds != f), np.flatnonzero(folds == f)
        K_te = K[np.ix_(te, tr)]
        for i, (t, b) in enumerate(_dual(K[np.ix_(tr, tr)], y[tr], w[tr], alphas)):
            errs[i] += float(w[te] @ (K_te @ t + b - y[te]) ** 2)
    best, best_err = alphas[0], np.inf
    for alpha, err in zip(alphas, errs):
        if err < best_err - 1e-12:
            best, best_err = alpha, err
    return fit(X, y, w, best, K)

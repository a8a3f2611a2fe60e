"""Rater folds: a deterministic split of raters into a train fold and a judge fold.

A rater is in the judge fold when SHA-256(f"{fold_seed}:{rater_id}"), read as a number in
[0, 1), is below `ratings.judge_fraction`. The split depends on nothing else (not on the
file's order or on which other raters are present), so every command that reads one
ratings file agrees on it. Preferences and rewards learn from the train fold; judges that
evaluate tuned models learn from the judge fold.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from jaxalign.config import RatingsConfig
from jaxalign.errors import DataError

FOLDS = ("train", "judge")


def _unit(seed: int, rater_id: str) -> float:
    """SHA-256 of seed and rater id as a number in [0, 1)."""
    digest = hashlib.sha256(f"{seed}:{rater_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def rater_folds(rater_ids, cfg: RatingsConfig) -> dict[str, str]:
    """{rater id: 'train' | 'judge'} for the distinct ids given."""
    return {
        rid: "judge" if _unit(cfg.fold_seed, str(rid)) < cfg.judge_fraction else "train"
        for rid in pd.unique(np.asarray(rater_ids, dtype=object))
    }


def fold_hash(rater_ids) -> str:
    """12 hex digits identifying a set of raters (sorted ids), for manifests."""
    blob = "\n".join(sorted(str(r) for r in set(rater_ids)))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def select_fold(
    frame: pd.DataFrame, fold: str, cfg: RatingsConfig, source: str = ""
) -> tuple[pd.DataFrame, dict]:
    """Rows of raters in `fold`, and a manifest entry (fold, fraction, seed, raters, hash)."""
    if fold not in FOLDS:
        raise DataError(f"fold '{fold}': expected one of {', '.join(FOLDS)}")
    folds = rater_folds(frame["rater_id"], cfg)
    mask = frame["rater_id"].map(folds).to_numpy() == fold
    sub = frame.loc[mask]
    if sub.empty:
        raise DataError(
            f"{source or 'ratings'}: the {fold} fold has no raters "
            f"(ratings.judge_fraction={cfg.judge_fraction:g})"
        )
    ids = sub["rater_id"].unique()
    entry = {
        "fold": fold,
        "judge_fraction": cfg.judge_fraction,
        "fold_seed": cfg.fold_seed,
        "raters": len(ids),
        "hash": fold_hash(ids),
    }
    return sub, entry

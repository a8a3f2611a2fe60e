"""The `reward` config section: rating models per (rater group, dimension) (docs/REWARDS.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jaxalign.config.vocab import DIMENSIONS
from jaxalign.errors import ConfigError


@dataclass(frozen=True)
class RewardConfig:
    """Rating models: one head per (group, dimension) predicting the mean rating of a text."""

    kind: Literal["ridge"] = "ridge"
    # Rater filter expressions (as prefs.groups); every group gets one head per dimension.
    groups: tuple[str, ...] = ("all",)
    dimensions: tuple[str, ...] = field(default=DIMENSIONS, metadata={"choices": DIMENSIONS})
    # Which rater fold (ratings.judge_fraction) the model learns from.
    fold: Literal["train", "judge"] = "train"
    # A group with fewer raters (in the fold) than this is an error, not a noisy head.
    min_raters: int = field(default=30, metadata={"ge": 2})
    # Group residuals are shrunk by n / (n + shrinkage), n = the group's ratings of a response.
    shrinkage: float = field(default=10.0, metadata={"ge": 0.0})
    # Ridge penalties tried; one is chosen per head by cross-validation grouped by question.
    alphas: tuple[float, ...] = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
    ngrams: int = field(default=2, metadata={"ge": 1, "le": 3})
    cv_folds: int = field(default=5, metadata={"ge": 2, "le": 20})
    seed: int = field(default=0, metadata={"ge": 0})
    # A head is `valid` if its held-out Spearman reaches this.
    min_spearman: float = field(default=0.5, metadata={"ge": -1.0, "le": 1.0})
    # A scored text whose largest cosine similarity to any training text is below this is
    # flagged out of distribution.
    ood_threshold: float = field(default=0.3, metadata={"ge": 0.0, "le": 1.0})

    def __post_init__(self):
        """Groups/dimensions distinct and non-empty; penalties positive (groups parse at use)."""
        if not self.groups:
            raise ConfigError("groups: at least one group expression is required ('all')")
        if len(set(self.groups)) != len(self.groups):
            raise ConfigError(f"groups: {list(self.groups)} repeats a group")
        if not self.dimensions:
            raise ConfigError("dimensions: at least one dimension is required")
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ConfigError(f"dimensions: {list(self.dimensions)} repeats a dimension")
        if not self.alphas or min(self.alphas) <= 0:
            raise ConfigError(f"alphas: {list(self.alphas)} must be positive and non-empty")

"""The `reward` config section: rating models per (rater group, dimension) (docs/REWARDS.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jaxalign.config.vocab import DIMENSIONS
from jaxalign.errors import ConfigError


@dataclass(frozen=True)
class RewardDecoderConfig:
    """The decoder kind: heads on a `model` backbone's last-token hidden state (docs/REWARDS.md)."""

    # bradley_terry: pairs of responses to one question whose group mean ratings differ by more
    # than `min_gap`; ordinal: cumulative-logit likelihood of the group's individual ratings.
    loss: Literal["bradley_terry", "ordinal"] = "bradley_terry"
    min_gap: float = field(default=0.0, metadata={"ge": 0.0})
    steps: int = field(default=300, metadata={"ge": 1})
    # Pairs (bradley_terry) or texts (ordinal) per step.
    batch_size: int = field(default=16, metadata={"ge": 1})
    learning_rate: float = field(default=1.0e-4, metadata={"gt": 0.0})
    weight_decay: float = field(default=0.0, metadata={"ge": 0.0})
    # Tokens of prompt + response (chat template); longer texts keep their first max_len tokens.
    max_len: int = field(default=256, metadata={"ge": 8})
    # Rows per scoring call: every text is scored in a block of this many rows padded to its own
    # length bucket, so a score never depends on the other texts of the batch.
    score_batch: int = field(default=8, metadata={"ge": 1})
    # Train a second model on half the raters and 1/cv_folds fewer questions for report.json.
    evaluate: bool = True


@dataclass(frozen=True)
class RewardConfig:
    """Rating models: one head per (group, dimension) predicting the mean rating of a text."""

    kind: Literal["ridge", "decoder"] = "ridge"
    # Rater filter expressions (as prefs.groups); every group gets one head per dimension.
    groups: tuple[str, ...] = ("all",)
    dimensions: tuple[str, ...] = field(default=DIMENSIONS, metadata={"choices": DIMENSIONS})
    # Which rater fold (ratings.judge_fraction) the model learns from.
    fold: Literal["train", "judge"] = "train"
    # A group with fewer raters (in the fold) than this is an error, not a noisy head.
    min_raters: int = field(default=30, metadata={"ge": 2})
    # Keep this many raters of each group (as prefs.max_raters, the same raters); 0: all.
    max_raters: int = field(default=0, metadata={"ge": 0})
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
    # The decoder kind's training; its backbone is the `model` section (SmolLM2 by default).
    decoder: RewardDecoderConfig = field(default_factory=RewardDecoderConfig)

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

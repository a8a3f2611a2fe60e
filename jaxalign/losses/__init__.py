"""Pure loss functions of log-probabilities and masks (no model, flax or data imports)."""

from jaxalign.losses.dpo import (
    LENGTH_AVERAGED,
    LOSS_TYPES,
    REFERENCE_FREE,
    dpo_loss,
    dpo_metrics,
    hard_loss,
    implicit_rewards,
    margins,
    pair_losses,
)
from jaxalign.losses.grpo import AGGREGATIONS as GRPO_AGGREGATIONS
from jaxalign.losses.grpo import LOSSES as GRPO_LOSSES
from jaxalign.losses.grpo import check_grpo_names, group_advantages, grpo_loss

__all__ = [
    "GRPO_AGGREGATIONS",
    "GRPO_LOSSES",
    "LENGTH_AVERAGED",
    "LOSS_TYPES",
    "REFERENCE_FREE",
    "check_grpo_names",
    "dpo_loss",
    "dpo_metrics",
    "group_advantages",
    "grpo_loss",
    "hard_loss",
    "implicit_rewards",
    "margins",
    "pair_losses",
]

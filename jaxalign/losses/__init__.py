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

__all__ = [
    "LENGTH_AVERAGED",
    "LOSS_TYPES",
    "REFERENCE_FREE",
    "dpo_loss",
    "dpo_metrics",
    "hard_loss",
    "implicit_rewards",
    "margins",
    "pair_losses",
]

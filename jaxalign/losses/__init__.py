"""Pure loss functions of log-probabilities and masks (no model, flax or data imports)."""

from jaxalign.losses.dpo import LOSS_TYPES, dpo_loss, dpo_metrics

__all__ = ["LOSS_TYPES", "dpo_loss", "dpo_metrics"]

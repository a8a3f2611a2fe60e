"""Rating models per (rater group, dimension): judges and rewards (docs/REWARDS.md)."""

from __future__ import annotations


def load(path):
    """Load a trained rating model directory: `.score(prompts, responses) -> {head: array}`."""
    from jaxalign.rewards.model import load_model

    return load_model(path)


def train(ratings_path, out_dir, config=None):
    """Train the heads `config.reward` asks for (default config) and write `out_dir`."""
    from jaxalign.config import Config
    from jaxalign.rewards.run import train_model

    return train_model(ratings_path, out_dir, config or Config())

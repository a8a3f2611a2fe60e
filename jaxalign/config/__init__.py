"""Config loading: YAML file + dotted overrides -> frozen, validated `Config`."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

from jaxalign.config.core import (
    apply_override,
    config_hash,
    dump,
    from_dict,
    read_yaml,
    to_dict,
)
from jaxalign.config.reward import RewardConfig
from jaxalign.config.schema import (
    AnalysisConfig,
    AttentionDeConfig,
    AttentionEnConfig,
    AttentionExpected,
    Config,
    DataConfig,
    DPOConfig,
    EffectConfig,
    InteractionConfig,
    ModelSpec,
    OptimConfig,
    PrefsConfig,
    RandomInitConfig,
    RatingsConfig,
    SimulateConfig,
    SplitConfig,
    TrainConfig,
)

__all__ = [
    "AnalysisConfig",
    "AttentionDeConfig",
    "AttentionEnConfig",
    "AttentionExpected",
    "Config",
    "DPOConfig",
    "DataConfig",
    "EffectConfig",
    "InteractionConfig",
    "ModelSpec",
    "OptimConfig",
    "PrefsConfig",
    "RandomInitConfig",
    "RatingsConfig",
    "RewardConfig",
    "SimulateConfig",
    "SplitConfig",
    "TrainConfig",
    "config_hash",
    "dump",
    "load_config",
    "to_dict",
]


def load_config(path: str | Path | None = None, overrides: Sequence[str] = ()) -> Config:
    """Load `path` (partial YAML over defaults) then apply `key=value` overrides in order.

    Errors name the file, or the override, that introduced the bad key or value.
    """
    data = read_yaml(path) if path else {}
    config = from_dict(Config, data, source=str(path) if path else "<defaults>")
    for override in overrides:
        data = copy.deepcopy(data)
        apply_override(data, override)
        config = from_dict(Config, data, source=f"override '{override}'")
    return config

"""Config loading: YAML file + dotted overrides -> frozen, validated `Config`."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from jaxalign.config.core import (
    apply_override,
    config_hash,
    dump,
    from_dict,
    read_yaml,
    to_dict,
)
from jaxalign.config.evaluation import EvalConfig
from jaxalign.config.grpo import GRPOConfig
from jaxalign.config.lora import LoRAConfig
from jaxalign.config.reward import RewardConfig
from jaxalign.config.schema import (
    AnalysisConfig,
    AttentionDeConfig,
    AttentionEnConfig,
    AttentionExpected,
    Config,
    DataConfig,
    DPOConfig,
    DPORun,
    EffectConfig,
    GRPORun,
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

T = TypeVar("T")

__all__ = [
    "AnalysisConfig",
    "AttentionDeConfig",
    "AttentionEnConfig",
    "AttentionExpected",
    "Config",
    "DPOConfig",
    "DPORun",
    "DataConfig",
    "EffectConfig",
    "EvalConfig",
    "GRPOConfig",
    "GRPORun",
    "InteractionConfig",
    "LoRAConfig",
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
    "project",
    "to_dict",
]


def project(config: Config, root: type[T]) -> T:
    """The sections of `config` that make up an entry point's root (e.g. `DPORun`)."""
    return root(**{f.name: getattr(config, f.name) for f in dataclasses.fields(root)})


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

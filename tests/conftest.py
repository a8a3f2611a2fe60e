"""Shared fixtures: one default simulated survey per test session; 8 simulated CPU devices."""

from __future__ import annotations

import os

# Before jax is imported anywhere: sharding tests run on 8 simulated CPU devices.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from jaxalign.config import RatingsConfig, SimulateConfig
from jaxalign.survey.readers import load_ratings
from jaxalign.survey.simulate import write_simulation


@pytest.fixture(scope="session")
def survey_dir(tmp_path_factory):
    """The default survey (1,095 raters), simulated once and written to disk."""
    out = tmp_path_factory.mktemp("survey") / "default"
    write_simulation(out, SimulateConfig(), RatingsConfig())
    return out


@pytest.fixture(scope="session")
def ratings(survey_dir):
    """The default survey's ratings after validation and attention exclusion."""
    frame, _ = load_ratings(survey_dir / "ratings.parquet")
    return frame

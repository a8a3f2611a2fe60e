"""Evaluation statistics (jaxalign/eval/stats.py) against closed forms and by simulation."""

from __future__ import annotations

import numpy as np
import pytest

from jaxalign.eval import stats


def test_paired_means_diff_and_dz_match_closed_forms():
    rng = np.random.default_rng(1)
    base = rng.normal(2.0, 1.0, (40, 3))
    tuned = base - 0.5 + rng.normal(0, 0.3, (40, 3))
    out = stats.paired(base, tuned, b=500)
    d = tuned.mean(1) - base.mean(1)
    assert out["base_mean"] == pytest.approx(base.mean())
    assert out["tuned_mean"] == pytest.approx(tuned.mean())
    assert out["diff"] == pytest.approx(d.mean())
    assert out["effect_size"] == pytest.approx(d.mean() / d.std(ddof=1))
    assert out["ci_low"] < d.mean() < out["ci_high"] < 0
    assert out["reduction"] == pytest.approx(-d.mean())  # lower is better: base - tuned
    assert out["rel_reduction"] == pytest.approx(-d.mean() / base.mean())
    assert out["n_prompts"] == 40 and out["n_samples"] == 3
    assert out["p"] < 0.001


def test_paired_is_deterministic_and_gain_direction():
    base, tuned = np.arange(10.0), np.arange(10.0) + 1 + np.r_[0.0, 1e-9, [0] * 8]
    a = stats.paired(base, tuned, lower_is_better=False, b=200, seed=3)
    assert a == stats.paired(base, tuned, lower_is_better=False, b=200, seed=3)
    assert np.isfinite(a["effect_size"])
    assert a["reduction"] == pytest.approx(1.0)  # a gain where higher is better
    assert a["ci_low"] == pytest.approx(1.0) and a["ci_high"] == pytest.approx(1.0)


def test_one_prompt_gives_a_null_ci_and_nan_rows_are_dropped():
    out = stats.paired(np.array([[1.0, 2.0]]), np.array([[0.5, 0.5]]), b=100)
    assert out["n_prompts"] == 1 and np.isnan(out["ci_low"]) and np.isnan(out["p"])
    out = stats.paired(np.array([1.0, np.nan, 3.0]), np.array([0.0, 1.0, 1.0]), b=100)
    assert out["n_prompts"] == 2 and out["diff"] == pytest.approx(-1.5)


def test_hedges_g_and_holm_closed_forms():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 3.0, 4.0, 5.0, 6.0])
    pooled = np.sqrt((3 * a.var(ddof=1) + 4 * b.var(ddof=1)) / 7)
    j = 1 - 3 / (4 * 9 - 9)
    assert stats.hedges_g(a, b) == pytest.approx((a.mean() - b.mean()) / pooled * j)
    adj = stats.holm([0.01, 0.04, 0.03, np.nan])
    np.testing.assert_allclose(adj[:3], [0.03, 0.06, 0.06])
    assert np.isnan(adj[3])


def test_sign_flip_p_is_uniformish_under_null_and_small_under_effect():
    rng = np.random.default_rng(0)
    assert stats.sign_flip_p(rng.normal(0, 1, 50), n=2000) > 0.05
    assert stats.sign_flip_p(rng.normal(1, 1, 50), n=2000) < 0.001


def test_greater_reduction_worked_example():
    base = np.full(30, 10.0) + np.linspace(-1, 1, 30)
    tuned_a = base - 3.0  # R_A = 3
    tuned_b = base - 2.0 + np.linspace(-0.1, 0.1, 30)  # R_B = 2
    out = stats.greater_reduction(base, tuned_a, tuned_b, b=300)
    assert out["defined"] and out["pct"] == pytest.approx(50.0)
    assert out["pct_ci"][0] < 50.0 < out["pct_ci"][1]
    assert out["difference"] == pytest.approx(1.0)


def test_greater_reduction_undefined_when_b_ci_covers_zero():
    rng = np.random.default_rng(2)
    base = rng.normal(5, 1, 30)
    out = stats.greater_reduction(base, base - 1.0, base + rng.normal(0, 0.5, 30), b=300)
    assert not out["defined"] and np.isnan(out["pct"])
    assert out["difference_ci"][0] < out["difference"] < out["difference_ci"][1]


def test_length_adjustment_removes_a_pure_length_effect():
    rng = np.random.default_rng(4)
    words_b = rng.integers(5, 20, (40, 2)).astype(float)
    words_t = words_b * 3  # tuned replies are three times longer ...
    base = np.log1p(words_b) + rng.normal(0, 0.01, (40, 2))
    tuned = np.log1p(words_t) + rng.normal(0, 0.01, (40, 2))  # ... and that is all that changed
    raw = stats.paired(base, tuned, b=200)
    adj = stats.length_adjusted(base, tuned, words_b, words_t, b=200)
    assert raw["diff"] > 0.9 and abs(adj["diff"]) < 0.05 and adj["slope"] == pytest.approx(1, 0.05)


def test_bootstrap_ci_coverage_in_simulation():
    """95% CIs of tuned - base cover the truth in 93-97% of 300 simulated experiments."""
    rng = np.random.default_rng(12345)
    reps, n, truth = 300, 60, -0.4
    covered = 0
    for r in range(reps):
        base = rng.normal(3.0, 1.0, (n, 2))
        tuned = base + truth + rng.normal(0, 1.0, (n, 1))  # a prompt-level effect
        out = stats.paired(base, tuned, b=1000, seed=r)
        covered += out["ci_low"] <= truth <= out["ci_high"]
    assert 0.93 <= covered / reps <= 0.97

"""Demographic analysis: planted effects are recovered; the statistics are right."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from jaxalign.config import AnalysisConfig, SimulateConfig
from jaxalign.survey.analyze import adjust, analyze, hedges_g, write_analysis
from jaxalign.survey.readers import load_ratings
from jaxalign.survey.simulate import write_simulation

PLANTED = [
    ("toxicity", "gender", "male", -18.0),
    ("emotional_awareness", "political_spectrum", "conservative", 27.9),
    ("emotional_awareness", "ethnicity", "Black/African American", 44.0),
]


@pytest.fixture(scope="module")
def analysis_dir(ratings, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis") / "out"
    write_analysis(ratings, AnalysisConfig(), out)
    return out


@pytest.mark.parametrize("dimension,attribute,group,planted", PLANTED)
def test_planted_effects_recovered(analysis_dir, dimension, attribute, group, planted):
    effects = json.loads((analysis_dir / "effects.json").read_text())["effects"]
    (record,) = [
        r
        for r in effects
        if (r["dimension"], r["attribute"], r["group"]) == (dimension, attribute, group)
    ]
    assert abs(record["pct_diff"] - planted) <= 3.0
    assert record["ci_low"] <= planted <= record["ci_high"]
    assert record["significant"] and record["p_adjusted"] < 1e-6
    for key in ("reference", "p_value", "n_raters", "effect_size", "ci_low", "ci_high"):
        assert key in record


def test_outputs_and_plots(analysis_dir):
    names = {p.name for p in analysis_dir.iterdir()}
    assert {
        "effects.json",
        "summary.md",
        "effects_heatmap.png",
        "forest_gender.png",
        "rating_distributions.png",
    } <= names
    for png in analysis_dir.glob("*.png"):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    summary = (analysis_dir / "summary.md").read_text()
    assert "Significant differences" in summary and "effects_heatmap.png" in summary


def test_unplanted_comparisons_mostly_null(analysis_dir):
    effects = json.loads((analysis_dir / "effects.json").read_text())["effects"]
    planted = {(d, a, g) for d, a, g, _ in PLANTED}
    false = [
        r
        for r in effects
        if r["significant"]
        and (r["dimension"], r["attribute"], r["group"]) not in planted
        and r["attribute"] != "country"
    ]  # country differs through its ethnic mix (a real composition effect)
    assert len(false) <= 1


def test_null_survey_has_no_gender_effect(tmp_path):
    write_simulation(tmp_path / "null", SimulateConfig(participants=400, effects=()))
    frame, _ = load_ratings(tmp_path / "null" / "ratings.parquet")
    records, _ = analyze(frame, AnalysisConfig(bootstrap=200, attributes=("gender",)))
    tox = next(r for r in records if r["dimension"] == "toxicity" and r["group"] == "male")
    assert not tox["significant"] and tox["ci_low"] < 0 < tox["ci_high"]


def test_adjust_closed_form():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    assert np.allclose(adjust(p, "bonferroni"), [0.04, 0.16, 0.12, 0.8])
    assert np.allclose(adjust(p, "holm"), [0.04, 0.09, 0.09, 0.2])
    assert np.allclose(adjust(p, "bh"), [0.04, 0.0533333, 0.0533333, 0.2])


def test_hedges_g_matches_formula():
    a, b = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 3.0, 4.0, 5.0, 6.0])
    pooled = np.sqrt((3 * a.var(ddof=1) + 4 * b.var(ddof=1)) / 7)
    assert hedges_g(a, b) == pytest.approx((a.mean() - b.mean()) / pooled * (1 - 3 / 27))


def test_welch_p_value_matches_scipy(ratings):
    records, _ = analyze(ratings, AnalysisConfig(bootstrap=100, attributes=("country",)))
    rec = next(r for r in records if r["dimension"] == "helpfulness")
    raters = (
        ratings[ratings["dimension"] == "helpfulness"]
        .groupby(["rater_id", "country"])["rating"]
        .mean()
    )
    de, us = raters.xs("DE", level="country"), raters.xs("US", level="country")
    assert rec["p_value"] == pytest.approx(stats.ttest_ind(de, us, equal_var=False).pvalue)
    assert rec["n_raters"] == len(de) and rec["n_raters_reference"] == len(us)

"""Demographic analysis: planted effects are recovered; the statistics are right."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from jaxalign.config import AnalysisConfig, SimulateConfig
from jaxalign.survey.analyze import adjust, analyze, hedges_g, rankings, write_analysis
from jaxalign.survey.readers import load_ratings
from jaxalign.survey.responses import find_simulation
from jaxalign.survey.simulate import write_simulation

PLANTED = [
    ("toxicity", "gender", "male", -18.0),
    ("emotional_awareness", "political_spectrum", "conservative", 27.9),
    ("emotional_awareness", "ethnicity", "Black/African American", 44.0),
]


@pytest.fixture(scope="module")
def analysis_dir(ratings, survey_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("analysis") / "out"
    truth = find_simulation(survey_dir / "ratings.parquet")
    write_analysis(ratings, AnalysisConfig(), out, truth=truth)
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
    write_simulation(
        tmp_path / "null", SimulateConfig(participants=400, effects=(), interactions=())
    )
    frame, _ = load_ratings(tmp_path / "null" / "ratings.parquet")
    records, _ = analyze(frame, AnalysisConfig(bootstrap=200, attributes=("gender",)))
    tox = next(r for r in records if r["dimension"] == "toxicity" and r["group"] == "male")
    assert not tox["significant"] and tox["ci_low"] < 0 < tox["ci_high"]
    # Without interactions, women and men rank responses alike on every dimension.
    ranks = rankings(frame, AnalysisConfig(bootstrap=300, attributes=("gender",)))
    male = [c for c in ranks["comparisons"] if c["group"] == "male"]
    assert len(male) == 5 and not any(c["differs"] for c in male)
    assert all(c["agreement"]["ci_low"] < 1.0 for c in male)


def test_planted_interactions_recovered(analysis_dir, survey_dir):
    manifest = json.loads((survey_dir / "simulation.json").read_text())
    ranks = json.loads((analysis_dir / "rankings.json").read_text())
    assert len(ranks["planted"]) == len(manifest["planted_interactions"]) == 3
    for planted in ranks["planted"]:
        contrast = planted["style_contrast"]
        assert abs(contrast["estimate"] - planted["shift"]) < 0.3, planted
        assert contrast["ci_low"] <= planted["shift"] <= contrast["ci_high"], planted
        assert planted["differs"], planted  # the two groups rank responses differently
    # Comparisons without a planted interaction rank alike (at most one false alarm).
    planted_keys = {(p["dimension"], p["attribute"]) for p in ranks["planted"]}
    false = [
        c
        for c in ranks["comparisons"]
        if c["differs"] and (c["dimension"], c["attribute"]) not in planted_keys
    ]
    assert len(false) <= 1, false
    summary = (analysis_dir / "summary.md").read_text()
    assert "Planted interactions" in summary and "Do groups rank responses alike?" in summary


def test_dimension_and_length_tables(analysis_dir):
    ranks = json.loads((analysis_dir / "rankings.json").read_text())
    corr = np.array([list(row.values()) for row in ranks["dimension_correlations"].values()])
    assert corr.shape == (5, 5) and np.allclose(np.diag(corr), 1.0)
    assert np.abs(corr - np.eye(5)).max() < 0.8  # responses trade dimensions off
    assert ranks["log_words_correlations"]["helpfulness"] > 0.3


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

"""Rater folds: deterministic, disjoint, sized by judge_fraction, recorded by prefs build."""

from __future__ import annotations

import json

import pytest

from jaxalign.cli import main
from jaxalign.config import RatingsConfig
from jaxalign.errors import DataError
from jaxalign.survey.folds import rater_folds, select_fold


def test_folds_are_deterministic_disjoint_and_sized(ratings):
    cfg = RatingsConfig(judge_fraction=0.2)
    train, t_entry = select_fold(ratings, "train", cfg)
    judge, j_entry = select_fold(ratings, "judge", cfg)
    assert not set(train["rater_id"]) & set(judge["rater_id"])
    assert len(train) + len(judge) == len(ratings)
    assert 0.15 < j_entry["raters"] / (j_entry["raters"] + t_entry["raters"]) < 0.25
    assert t_entry["hash"] != j_entry["hash"]
    # A rater's fold depends only on the seed and its id, not on who else is in the file.
    ids = sorted(ratings["rater_id"].unique())
    assert rater_folds(ids[:50], cfg) == {
        k: v for k, v in rater_folds(ids, cfg).items() if k in ids[:50]
    }
    other = rater_folds(ids, RatingsConfig(judge_fraction=0.2, fold_seed=1))
    assert other != rater_folds(ids, cfg)


def test_empty_judge_fold_is_an_error(ratings):
    with pytest.raises(DataError, match="judge fold has no raters"):
        select_fold(ratings, "judge", RatingsConfig())


def test_prefs_build_uses_and_records_the_train_fold(survey_dir, tmp_path, capsys):
    base = ["prefs", "build", "--ratings", str(survey_dir / "ratings.parquet")]
    assert main([*base, "--out", str(tmp_path / "all.jsonl")]) == 0
    assert main([*base, "--out", str(tmp_path / "part.jsonl"), "ratings.judge_fraction=0.3"]) == 0
    everyone = json.loads((tmp_path / "all.manifest.json").read_text())
    part = json.loads((tmp_path / "part.manifest.json").read_text())
    assert everyone["fold"]["fold"] == part["fold"]["fold"] == "train"
    assert everyone["fold"]["judge_fraction"] == 0.0 and part["fold"]["judge_fraction"] == 0.3
    assert part["fold"]["raters"] < 0.8 * everyone["fold"]["raters"]
    assert part["counts"]["groups"]["all"]["raters"] == part["fold"]["raters"]
    capsys.readouterr()

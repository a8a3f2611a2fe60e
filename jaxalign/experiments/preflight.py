"""Checks that refuse a whole experiment before anything is written or trained.

A judge group (`eval.judge_groups`) with fewer raters in the judge fold than its minimum
(`reward.min_raters`, the judge's training rule) would fail every cell at its last stage, after
training. `plan` and `run` count each group from the cells' survey instead: the survey stage's
ratings when it is done under ROOT, else the same simulation in a temporary directory (about a
second; cached per survey for the process), and exit 1 with one line naming the condition, the
group, its count and the minimum.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from jaxalign.errors import DataError
from jaxalign.experiments.cells import Cell
from jaxalign.experiments.runner import Runner, hash_of, read_json

_COUNTS: dict[str, dict[str, int]] = {}  # survey key + groups -> raters per judge group


def needs_judge(cell: Cell) -> bool:
    """The cell's evaluation trains a judge from its survey (judge scorer, no eval.judge)."""
    return "judge" in cell.config.eval.scorers and not cell.config.eval.judge


def judge_counts(ratings_path: Path, cfg) -> dict[str, int]:
    """Raters per `eval.judge_groups` expression in the judge fold of a ratings file."""
    from jaxalign.prefs.filters import check_groups, group_mask
    from jaxalign.survey.folds import rater_folds
    from jaxalign.survey.readers import load_ratings

    check_groups(cfg.eval.judge_groups, "eval.judge_groups")
    frame, _ = load_ratings(ratings_path, cfg.ratings)
    folds = rater_folds(frame["rater_id"], cfg.ratings)
    judge = frame.loc[frame["rater_id"].map(folds).to_numpy() == "judge"]
    return {
        g: int(judge.loc[group_mask(judge, g), "rater_id"].nunique()) for g in cfg.eval.judge_groups
    }


def _counts(runner: Runner, survey, cell: Cell) -> dict[str, int]:
    """judge_counts from the done survey stage, or from a throwaway simulation."""
    from jaxalign.survey.simulate import write_simulation

    cfg = cell.config
    key = hash_of(survey.inputs(cell, {}))
    memo = hash_of([key, list(cfg.eval.judge_groups)])
    if memo not in _COUNTS:
        where = runner.stage_dir(survey, cell, key)
        done = read_json(where.with_name(where.name + ".done.json"))
        ratings = where / "data" / "ratings.parquet"
        if done and done.get("key") == key and ratings.is_file():
            _COUNTS[memo] = judge_counts(ratings, cfg)
        else:
            with tempfile.TemporaryDirectory(prefix="jaxalign-preflight-") as tmp:
                write_simulation(Path(tmp), cfg.simulate, cfg.ratings, overwrite=True)
                _COUNTS[memo] = judge_counts(Path(tmp) / "ratings.parquet", cfg)
    return _COUNTS[memo]


def check_judge_groups(runner: Runner, cells: list[Cell], survey_run) -> None:
    """DataError naming the first judge group below reward.min_raters in any runnable cell.

    `survey_run` is the real survey stage's function: a runner without it (fake stages in
    tests) has no ratings to count.
    """
    survey = next((s for s in runner.stages if s.run is survey_run), None)
    if survey is None:
        return
    for cell in cells:
        if runner.blocked(cell) or not needs_judge(cell):
            continue
        cfg = cell.config
        for group, n in _counts(runner, survey, cell).items():
            if n < cfg.reward.min_raters:
                raise DataError(
                    f"condition {cell.label}: eval.judge_groups: group {json.dumps(group)} has "
                    f"{n} raters in the judge fold, below its minimum reward.min_raters="
                    f"{cfg.reward.min_raters} (ratings.judge_fraction="
                    f"{cfg.ratings.judge_fraction:g}); raise ratings.judge_fraction, lower "
                    "reward.min_raters or drop the group"
                )

"""Keeping the judge apart from training: judges come from the judge fold of the raters, and a
run whose preferences (or GRPO reward) learned from the evaluation judge's fold is refused.

The preference manifest (prefs build) and the rating model's model.json both record their
fold: {fold, judge_fraction, fold_seed, raters, hash}. They are "circular" when they name the
same fold or the same set of raters (hash).
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from jaxalign.errors import DataError

JUDGE_FOLD = {"fold": "judge"}  # the fold every evaluation judge learns from


def prefs_manifest(cfg) -> tuple[Path | None, dict | None]:
    """(path, manifest) of the run's preference file; manifest None when absent, both None
    when the config names no preference file (a GRPO run on plain prompts)."""
    if not cfg.data.prefs:
        return None, None
    prefs = Path(cfg.data.prefs)
    path = prefs.with_name(prefs.name.removesuffix(".jsonl") + ".manifest.json")
    if not path.is_file():
        return path, None
    try:
        return path, json.loads(path.read_text(encoding="utf-8"))
    except ValueError:
        raise DataError(f"{path}: not valid JSON") from None


def check_not_circular(judge_fold: dict, train_fold: dict | None, what: str, where) -> None:
    """DataError 'circular evaluation' when the judge shares a fold with what was trained on."""
    if not train_fold:
        return
    same = judge_fold.get("fold") == train_fold.get("fold") or (
        judge_fold.get("hash") and judge_fold.get("hash") == train_fold.get("hash")
    )
    if same:
        raters = f" (raters hash {train_fold['hash']})" if train_fold.get("hash") else ""
        raise DataError(
            f"{where}: circular evaluation: the judge and the run's {what} both learned from "
            f"the {train_fold.get('fold')} fold{raters}; train it on the train fold"
        )


def reward_folds(cfg) -> list[tuple[str, dict | None]]:
    """(where, fold) of every rating-model reward of a GRPO run (from their model.json);
    a model whose model.json is missing or unreadable has fold None (build_rewards says why)."""
    if cfg.train.algorithm != "grpo":
        return []
    out = []
    for i, spec in enumerate(cfg.grpo.rewards):
        if not isinstance(spec, dict) or not isinstance(spec.get("model"), str):
            continue
        path = Path(spec["model"]) / "model.json"
        try:
            fold = json.loads(path.read_text(encoding="utf-8")).get("fold")
        except (OSError, ValueError, AttributeError):
            fold = None
        out.append((f"grpo.rewards[{i}].model={spec['model']}", fold))
    return out


def check_rewards(cfg, judge_fold: dict) -> None:
    """Refuse a GRPO run whose rating-model reward shares the evaluation judge's fold."""
    for where, fold in reward_folds(cfg):
        check_not_circular(judge_fold, fold, "GRPO reward", where)


def cache_dir(cfg) -> Path:
    """Where base generations and trained judges are cached."""
    return Path(cfg.eval.cache_dir or Path(cfg.train.run_dir).parent / "_eval_cache")


def train_judge(cfg, manifest: dict, manifest_path: Path) -> Path:
    """A judge-fold rating model from the ratings the preferences came from (cached)."""
    from jaxalign.config import Config, RatingsConfig, config_hash, from_dict
    from jaxalign.rewards.run import train_model

    ratings = manifest.get("input", {}).get("path")
    if not ratings or not Path(ratings).is_file():
        raise DataError(
            f"{manifest_path}: its ratings file {ratings!r} is missing; set eval.judge to a "
            "judge-fold rating model (jaxalign reward train --fold judge)"
        )
    rcfg = from_dict(RatingsConfig, manifest["ratings_options"], source=str(manifest_path))
    if rcfg.judge_fraction <= 0:
        raise DataError(
            f"{manifest_path}: the preferences used every rater (ratings.judge_fraction=0), so "
            "no judge fold is left; rebuild them with ratings.judge_fraction=0.2"
        )
    # Judges learn from every judge-fold rater (reward.max_raters subsamples a trained reward)
    groups = tuple(cfg.eval.judge_groups)
    reward = replace(cfg.reward, fold="judge", groups=groups, max_raters=0)
    judge_cfg = Config(ratings=rcfg, reward=reward)
    key = f"{manifest['input']['sha256'][:12]}-{config_hash((reward, rcfg))[:12]}"
    out = cache_dir(cfg) / f"judge-{key}"
    if not (out / "model.json").is_file():
        train_model(ratings, out, judge_cfg)
    return out


def resolve_judge(cfg) -> tuple[str, dict | None]:
    """(judge model directory, the prefs manifest's fold); refuses a circular judge."""
    from jaxalign.rewards.model import RatingModel

    manifest_path, manifest = prefs_manifest(cfg)
    if cfg.eval.judge:
        judge = cfg.eval.judge
    elif manifest is None:
        where = f"{manifest_path}:" if manifest_path else "data.prefs: not set, so there is"
        raise DataError(
            f"{where} no preference manifest to find the ratings for a judge; "
            "set eval.judge to a judge-fold rating model or leave 'judge' out of eval.scorers"
        )
    else:
        judge = str(train_judge(cfg, manifest, manifest_path))
    fold = RatingModel(judge).meta.get("fold", {})
    prefs_fold = (manifest or {}).get("fold")
    check_not_circular(fold, prefs_fold, "preferences", judge)
    check_rewards(cfg, fold)
    return judge, prefs_fold


def reward_vs_judge(reward_gain: float, judge_gain: float | None, limit: float = 2.0) -> dict:
    """GRPO hook: the training reward's gain beside the judge's; a ratio above `limit` warns.

    A policy that raises its own reward much more than an independent judge's score is
    likely exploiting the reward model (Goodhart); GRPO cells report both. Without a judge
    (`judge_gain` None) the ratio is None and nothing warns.
    """
    if judge_gain is None:
        return {
            "reward_gain": reward_gain,
            "judge_gain": None,
            "ratio": None,
            "goodhart_warning": False,
        }
    ratio = reward_gain / judge_gain if judge_gain else float("inf")
    return {
        "reward_gain": reward_gain,
        "judge_gain": judge_gain,
        "ratio": ratio,
        "goodhart_warning": bool(reward_gain > 0 and (judge_gain <= 0 or ratio > limit)),
    }

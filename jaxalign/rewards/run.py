"""`reward train | eval | score`: from a ratings file to a model directory and back."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jaxalign import __version__
from jaxalign.config import Config, config_hash, to_dict
from jaxalign.errors import DataError, located


def _load_fold(ratings_path, cfg: Config):
    """Ratings of the configured fold, its manifest entry and the input hash."""
    from jaxalign.io import sha256_path
    from jaxalign.survey.folds import select_fold
    from jaxalign.survey.readers import load_ratings

    frame, _ = load_ratings(ratings_path, cfg.ratings)
    frame, fold = select_fold(frame, cfg.reward.fold, cfg.ratings, str(ratings_path))
    return frame.reset_index(drop=True), fold, sha256_path(ratings_path)


def _report(corpus, masks, cfg: Config, fold: dict, sha: str) -> dict:
    """report.json: held-out evaluation per head plus what it was computed from."""
    from jaxalign.rewards.evaluate import evaluate

    return {
        "schema": "jaxalign.reward-report/1",
        "kind": cfg.reward.kind,
        "fold": fold,
        "input_sha256": sha,
        "cv": {
            "folds": cfg.reward.cv_folds,
            "seed": cfg.reward.seed,
            "min_spearman": cfg.reward.min_spearman,
        },
        "heads": evaluate(corpus, masks, cfg.reward),
    }


def train_model(ratings_path, out_dir, cfg: Config, overwrite: bool = False) -> dict:
    """Fit every head on the fold's ratings, evaluate held out, write DIR atomically."""
    from jaxalign.io import check_output, staged_dir
    from jaxalign.prefs.filters import check_groups
    from jaxalign.rewards.features import Tfidf
    from jaxalign.rewards.heads import Corpus, fit_heads, group_masks
    from jaxalign.rewards.model import write_model
    from jaxalign.rewards.ridge import one_blas_thread

    check_groups(cfg.reward.groups, "reward.groups")
    # The shared output policy (jaxalign/io.py), before any work.
    check_output(out_dir, "reward train", inputs=[ratings_path], overwrite=overwrite)
    frame, fold, sha = _load_fold(ratings_path, cfg)
    corpus = Corpus.build(frame)
    masks = group_masks(frame, cfg.reward)
    vocab = Tfidf.fit(corpus.texts, cfg.reward.ngrams)
    X = vocab.transform(corpus.texts)
    everything = np.ones(len(corpus.responses), bool)
    groups = {g: corpus.aggregate(m) for g, m in masks.items()}
    base = corpus.aggregate(np.ones(len(frame), bool))
    with one_blas_thread():
        heads = fit_heads(corpus, X, everything, base, groups, cfg.reward)
        report = _report(corpus, masks, cfg, fold, sha)
    meta = {
        "jaxalign_version": __version__,
        "kind": cfg.reward.kind,
        "config": to_dict(cfg.reward),
        "ratings_options": to_dict(cfg.ratings),
        "config_hash": config_hash((cfg.reward, cfg.ratings)),
        "input": {"path": str(ratings_path), "sha256": sha},
        "fold": fold,
        "groups": {g: int(frame.loc[m, "rater_id"].nunique()) for g, m in masks.items()},
    }
    with staged_dir(out_dir, "reward train", overwrite) as tmp:
        write_model(tmp, meta, vocab, heads, corpus.texts)
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def eval_model(model_dir, ratings_path=None) -> dict:
    """Recompute DIR/report.json from the recorded config and ratings (hash must match)."""
    from jaxalign.config import RatingsConfig, RewardConfig, from_dict
    from jaxalign.io import staged_files
    from jaxalign.prefs.filters import check_groups
    from jaxalign.rewards.heads import Corpus, group_masks
    from jaxalign.rewards.model import RatingModel
    from jaxalign.rewards.ridge import one_blas_thread

    model = RatingModel(model_dir)
    meta = model.meta
    path = ratings_path or meta["input"]["path"]
    cfg = Config(
        ratings=from_dict(RatingsConfig, meta["ratings_options"], source=f"{model_dir}/model.json"),
        reward=from_dict(RewardConfig, meta["config"], source=f"{model_dir}/model.json"),
    )
    check_groups(cfg.reward.groups, f"{model_dir}/model.json: reward.groups")
    frame, fold, sha = _load_fold(path, cfg)
    if sha != meta["input"]["sha256"]:
        raise DataError(f"{path}: not the ratings this model was trained on (sha256 differs)")
    with one_blas_thread():
        report = _report(Corpus.build(frame), group_masks(frame, cfg.reward), cfg, fold, sha)
    with staged_files(Path(model_dir) / "report.json") as (tmp,):
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    return report


def read_records(path) -> list[dict]:
    """{prompt, response} records of a JSONL file; errors name the file and line."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read: {err}") from None
    records = []
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            raise DataError(located(path, "not valid JSON", row=i)) from None
        if not isinstance(rec, dict):
            raise DataError(located(path, "expected a JSON object", row=i))
        for key in ("prompt", "response"):
            if not isinstance(rec.get(key), str):
                raise DataError(located(path, f"'{key}' must be a string", row=i))
        records.append(rec)
    if not records:
        raise DataError(f"{path}: no records")
    return records


def score_file(model_dir, input_path, out_path, heads=None) -> int:
    """Add `scores` {head: value}, `similarity` and `out_of_distribution` to each record."""
    from jaxalign.io import check_output, staged_files
    from jaxalign.rewards.model import RatingModel

    # Never onto the input or the model; an existing file is replaced (scores are derived data).
    check_output(
        out_path, "reward score", kind="file", inputs=[input_path, model_dir], overwrite=True
    )

    model = RatingModel(model_dir)
    records = read_records(input_path)
    responses = [r["response"] for r in records]
    X = model.features.transform(responses)  # once, for the scores and the similarity
    scores = model.score_rows(X, heads)
    similarity = model.similarity(responses, X)
    ood = similarity < float(model.meta["config"]["ood_threshold"])
    lines = []
    for i, rec in enumerate(records):
        out = {**rec, "scores": {h: float(v[i]) for h, v in scores.items()}}
        out["similarity"] = round(float(similarity[i]), 6)
        out["out_of_distribution"] = bool(ood[i])
        lines.append(json.dumps(out, ensure_ascii=False) + "\n")
    with staged_files(out_path) as (tmp,):
        tmp.write_text("".join(lines), encoding="utf-8")
    return len(records)

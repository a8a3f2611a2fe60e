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


def _report(cfg: Config, fold: dict, sha: str, heads: dict, **extra) -> dict:
    """report.json: held-out evaluation per head plus what it was computed from."""
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
        "heads": heads,
        **extra,
    }


def _fit_ridge(corpus, masks, cfg: Config, fold: dict, sha: str, meta: dict):
    """(writer of the model files, report) for the ridge kind."""
    from jaxalign.rewards.evaluate import evaluate
    from jaxalign.rewards.features import Tfidf
    from jaxalign.rewards.heads import fit_heads
    from jaxalign.rewards.model import write_model
    from jaxalign.rewards.ridge import one_blas_thread

    vocab = Tfidf.fit(corpus.texts, cfg.reward.ngrams)
    X = vocab.transform(corpus.texts)
    everything = np.ones(len(corpus.responses), bool)
    groups = {g: corpus.aggregate(m) for g, m in masks.items()}
    base = corpus.aggregate(np.ones(len(corpus.frame), bool))
    with one_blas_thread():
        heads = fit_heads(corpus, X, everything, base, groups, cfg.reward)
        report = _report(cfg, fold, sha, evaluate(corpus, masks, cfg.reward))
    return (lambda tmp: write_model(tmp, meta, vocab, heads, corpus.texts)), report


def _decoder_heads(cfg: Config) -> list[tuple[str, str]]:
    """(group, dimension) per head, in the order of their sorted names (the model's columns)."""
    from jaxalign.rewards.heads import head_name

    pairs = [(g, d) for g in cfg.reward.groups for d in cfg.reward.dimensions]
    return sorted(pairs, key=lambda gd: head_name(*gd))


def _decoder_report(trainer, corpus, masks, cfg, fold, sha, train_metrics) -> dict:
    """report.json of the decoder kind: held-out heads, TRL's eval metrics, training metrics."""
    from jaxalign.rewards.decoder_run import held_out

    heads, metrics = held_out(trainer, corpus, masks, _decoder_heads(cfg))
    return _report(
        cfg, fold, sha, heads, loss=cfg.reward.decoder.loss, eval=metrics, train=train_metrics
    )


def _trainer(corpus, cfg: Config):
    """The decoder kind's backbone (model section), tokenised corpus and compiled step."""
    from jaxalign.models.spec import build_model
    from jaxalign.rewards.decoder_data import text_prompts
    from jaxalign.rewards.decoder_run import Trainer

    model, tokenizer = build_model(cfg.model, None)
    return Trainer(model, tokenizer, corpus, text_prompts(corpus), cfg)


def _fit_decoder(corpus, masks, cfg: Config, fold: dict, sha: str, meta: dict):
    """(writer of the model files, report) for the decoder kind."""
    from jaxalign.rewards.decoder import average
    from jaxalign.rewards.decoder_model import write_decoder
    from jaxalign.rewards.decoder_run import train_all

    trainer = _trainer(corpus, cfg)
    params, history = train_all(trainer, corpus, masks, _decoder_heads(cfg))
    train_metrics = average(history, max(1, cfg.reward.decoder.steps // 10))
    report = _decoder_report(trainer, corpus, masks, cfg, fold, sha, train_metrics)
    meta = {**meta, "model": to_dict(cfg.model), "train": train_metrics}
    meta["heads"] = sorted(report["heads"])

    def write(tmp):
        """The decoder kind's files."""
        write_decoder(tmp, meta, trainer.model, trainer.tokenizer, params, corpus.texts)

    return write, report


def train_model(ratings_path, out_dir, cfg: Config, overwrite: bool = False) -> dict:
    """Fit every head on the fold's ratings, evaluate held out, write DIR atomically."""
    from jaxalign.io import check_output, staged_dir
    from jaxalign.prefs.filters import check_groups
    from jaxalign.rewards.heads import Corpus, group_masks

    check_groups(cfg.reward.groups, "reward.groups")
    # The shared output policy (jaxalign/io.py), before any work.
    check_output(out_dir, "reward train", inputs=[ratings_path], overwrite=overwrite)
    frame, fold, sha = _load_fold(ratings_path, cfg)
    corpus = Corpus.build(frame)
    masks = group_masks(frame, cfg.reward)
    parts = (cfg.reward, cfg.ratings, cfg.model) if cfg.reward.kind == "decoder" else None
    meta = {
        "jaxalign_version": __version__,
        "kind": cfg.reward.kind,
        "config": to_dict(cfg.reward),
        "ratings_options": to_dict(cfg.ratings),
        "config_hash": config_hash(parts or (cfg.reward, cfg.ratings)),
        "input": {"path": str(ratings_path), "sha256": sha},
        "fold": fold,
        "groups": {g: int(frame.loc[m, "rater_id"].nunique()) for g, m in masks.items()},
    }
    fit = _fit_decoder if cfg.reward.kind == "decoder" else _fit_ridge
    write, report = fit(corpus, masks, cfg, fold, sha, meta)
    with staged_dir(out_dir, "reward train", overwrite) as tmp:
        write(tmp)
        (tmp / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    return report


def eval_model(model_dir, ratings_path=None) -> dict:
    """Recompute DIR/report.json from the recorded config and ratings (hash must match)."""
    from jaxalign.config import ModelSpec, RatingsConfig, RewardConfig, from_dict
    from jaxalign.io import staged_files
    from jaxalign.prefs.filters import check_groups
    from jaxalign.rewards.evaluate import evaluate
    from jaxalign.rewards.heads import Corpus, group_masks
    from jaxalign.rewards.model import load_model
    from jaxalign.rewards.ridge import one_blas_thread

    meta = load_model(model_dir).meta
    path = ratings_path or meta["input"]["path"]
    source = f"{model_dir}/model.json"
    cfg = Config(
        ratings=from_dict(RatingsConfig, meta["ratings_options"], source=source),
        reward=from_dict(RewardConfig, meta["config"], source=source),
        model=from_dict(ModelSpec, meta.get("model", {}), source=source),
    )
    check_groups(cfg.reward.groups, f"{source}: reward.groups")
    frame, fold, sha = _load_fold(path, cfg)
    if sha != meta["input"]["sha256"]:
        raise DataError(f"{path}: not the ratings this model was trained on (sha256 differs)")
    corpus, masks = Corpus.build(frame), group_masks(frame, cfg.reward)
    if cfg.reward.kind == "decoder":
        trainer = _trainer(corpus, cfg)
        report = _decoder_report(trainer, corpus, masks, cfg, fold, sha, meta["train"])
    else:
        with one_blas_thread():
            report = _report(cfg, fold, sha, evaluate(corpus, masks, cfg.reward))
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
    from jaxalign.rewards.model import load_model

    # Never onto the input or the model; an existing file is replaced (scores are derived data).
    check_output(
        out_path, "reward score", kind="file", inputs=[input_path, model_dir], overwrite=True
    )

    model = load_model(model_dir)
    records = read_records(input_path)
    prompts, responses = [r["prompt"] for r in records], [r["response"] for r in records]
    scores, similarity = model.score_records(prompts, responses, heads)
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

"""Behaviour evaluation: replies of the tuned and the base model to evaluation prompts, scored
on the five dimensions, compared with paired statistics over prompts (docs/EVALUATION.md).

`evaluate_run(cfg)` writes RUN_DIR/eval/{generations.jsonl, results.json, report.md} together
(nothing half-written) and returns the results path; `jaxalign eval` runs it as the
`behaviour` evaluator. Everything a user can get wrong (prompt file, scorer package, a
circular judge) is refused before a model is built.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from jaxalign.eval import stats
from jaxalign.eval.registry import Comparison, EvalRun, register

SCHEMA = "jaxalign.eval/1"
QUALITY_LOWER = {
    "empty": True,
    "truncated": True,
    "distinct_2": False,
    "words": False,
    "wrong_language": True,
}


def _build_scorers(cfg, judge: str) -> list:
    """Every scorer eval.scorers names, built now (a missing package fails here)."""
    from jaxalign.eval import scorers

    scorers.check(cfg.eval.scorers)
    return [
        scorers.build(n, **({"model_dir": judge} if n == "judge" else {})) for n in cfg.eval.scorers
    ]


def _generate(cfg, prompts) -> tuple[dict, int]:
    """({'base', 'tuned'}: [P][S] replies, checkpoint step); base replies from the cache."""
    import jax
    from flax import nnx

    from jaxalign.config import to_dict
    from jaxalign.eval import decode
    from jaxalign.eval.generations import restore_run
    from jaxalign.eval.separation import cache_dir
    from jaxalign.models.spec import build_model
    from jaxalign.sharding import make_mesh

    base, tokenizer = build_model(cfg.model, make_mesh(devices=jax.devices()[:1]))
    tuned, step = restore_run(cfg, nnx.clone(base))  # no second load of the weights
    ids = decode.render_ids(tokenizer, prompts, cfg.data.conditioning)
    decode.check_context(base, ids, cfg.eval.max_new_tokens)
    key = decode.cache_key(to_dict(cfg.model), ids, cfg.eval)
    path = cache_dir(cfg) / f"base-{key}.json"
    sampler = decode.sampler_for(base, tokenizer)
    replies = {
        "base": decode.cached(path, lambda: decode.generate(sampler, tokenizer, ids, cfg.eval))
    }
    decode.use(sampler, tuned)
    replies["tuned"] = decode.generate(sampler, tokenizer, ids, cfg.eval)
    return replies, step


def _grid(replies: list[list[dict]], field: str) -> np.ndarray:
    """[P, S] array of one reply field."""
    return np.array([[float(r[field]) for r in row] for row in replies])


def _score(built, prompts, replies) -> dict:
    """{(dimension, scorer, group): {'base': [P, S], 'tuned': [P, S]}}, both models in one call."""
    n_p, n_s = len(prompts), len(replies["base"][0])
    texts = [r["text"] for m in ("base", "tuned") for row in replies[m] for r in row]
    asked = [p.text for _ in range(2) for p in prompts for _ in range(n_s)]
    out = {}
    for scorer in built:
        for (dim, group), values in scorer.score(texts, asked).items():
            both = values.reshape(2, n_p, n_s)
            out[(dim, scorer.name, group)] = {"base": both[0], "tuned": both[1]}
    return out


def _quality(prompts, replies) -> dict:
    """Quality figures as score grids, keyed like `_score`."""
    from jaxalign.eval.scorers.quality import FIGURES, figures

    per = {}
    for m in ("base", "tuned"):
        texts = [r["text"] for row in replies[m] for r in row]
        n_s = len(replies[m][0])
        langs = [p.language for p in prompts for _ in range(n_s)]
        trunc = [r["truncated"] for row in replies[m] for r in row]
        per[m] = {k: v.reshape(len(prompts), n_s) for k, v in figures(texts, langs, trunc).items()}
    return {(f, "quality", "all"): {m: per[m][f] for m in per} for f in FIGURES}


def _records(scores, quality, words, lower, cfg) -> list[dict]:
    """One record per (dimension, scorer, group), Holm-adjusted across the scorer records."""
    kw = {"b": cfg.eval.bootstrap, "seed": cfg.eval.seed}
    records = []
    for (dim, scorer, group), grid in {**scores, **quality}.items():
        is_quality = scorer == "quality"
        lib = QUALITY_LOWER[dim] if is_quality else lower[scorer][dim]
        rec = {"dimension": dim, "scorer": scorer, "group": group, "lower_is_better": lib}
        rec.update(stats.paired(grid["base"], grid["tuned"], lower_is_better=lib, **kw))
        if not is_quality:
            adj = stats.length_adjusted(
                grid["base"],
                grid["tuned"],
                words["base"],
                words["tuned"],
                lower_is_better=lib,
                **kw,
            )
            rec["length_adjusted_diff"] = adj["diff"]
            rec["length_adjusted_ci"] = [adj["ci_low"], adj["ci_high"]]
        records.append(rec)
    tested = [i for i, r in enumerate(records) if r["scorer"] != "quality"]
    adjusted = stats.holm([records[i]["p"] for i in tested])
    for r in records:
        r["p_adj"] = float("nan")
    for i, p in zip(tested, adjusted):
        records[i]["p_adj"] = float(p)
    return records


def _generation_rows(prompts, replies, scores) -> list[dict]:
    """generations.jsonl rows: prompt x model x decoding, with every score."""
    rows = []
    for m in ("base", "tuned"):
        for i, p in enumerate(prompts):
            for k, r in enumerate(replies[m][i]):
                row = {"prompt_id": p.id, "language": p.language, "prompt": p.text, "model": m}
                row.update(decoding="greedy" if k == 0 else f"sample{k}", **r)
                row["scores"] = {
                    f"{s}/{d}/{g}": round(float(v[m][i, k]), 6) for (d, s, g), v in scores.items()
                }
                rows.append(row)
    return rows


def _clean(x):
    """JSON-safe: NaN/inf -> None, numpy -> Python, floats rounded to 6 digits."""
    if isinstance(x, dict):
        return {k: _clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_clean(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return round(float(x), 6) if np.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    return x


def _scorer_meta(built, judge_fold, prefs_fold) -> dict:
    """results.json 'scorers': package, note, and the judge's fold and head validity."""
    out = {}
    for s in built:
        out[s.name] = {"package": s.package, "dimensions": sorted(s.lower_is_better)}
        if s.note:
            out[s.name]["note"] = s.note
        if s.name == "judge":
            report = json.loads((s.model.path / "report.json").read_text())
            out[s.name].update(
                path=str(s.model.path),
                fold=judge_fold,
                prefs_fold=prefs_fold,
                valid={h: v.get("valid") for h, v in report.get("heads", {}).items()},
            )
    return out


def evaluate_run(cfg) -> Path:
    """Generate, score and compare; write RUN_DIR/eval/ atomically; return results.json."""
    from jaxalign.eval import prompts as prompt_sources
    from jaxalign.eval import scorers as registry
    from jaxalign.eval.decode import decoding
    from jaxalign.eval.report import render
    from jaxalign.eval.reward_gain import reward_vs_judge
    from jaxalign.eval.separation import resolve_judge
    from jaxalign.io import staged_files

    registry.check(cfg.eval.scorers)
    prompts, source = prompt_sources.load(cfg)
    judge, prefs_fold = resolve_judge(cfg) if "judge" in cfg.eval.scorers else ("", None)
    built = _build_scorers(cfg, judge)
    replies, step = _generate(cfg, prompts)
    scores = _score(built, prompts, replies)
    quality = _quality(prompts, replies)
    words = {m: quality[("words", "quality", "all")][m] for m in ("base", "tuned")}
    lower = {s.name: s.lower_is_better for s in built}
    records = _records(scores, quality, words, lower, cfg)
    judge_fold = (
        built[[s.name for s in built].index("judge")].model.meta.get("fold") if judge else None
    )
    text = "\n".join(p.text for p in prompts).encode()
    results = _clean(
        {
            "schema": SCHEMA,
            "run_dir": str(cfg.train.run_dir),
            "checkpoint_step": step,
            "prompts": {
                "source": source,
                "n": len(prompts),
                "sha256": hashlib.sha256(text).hexdigest(),
                "languages": {
                    lang: sum(p.language == lang for p in prompts) for lang in ("en", "de")
                },
            },
            "decoding": decoding(cfg.eval),
            "scorers": _scorer_meta(built, judge_fold, prefs_fold),
            "records": records,
            "reward_vs_judge": reward_vs_judge(cfg, prompts, replies, scores),  # DPO: None
        }
    )
    out = Path(cfg.train.run_dir) / "eval"
    rows = _generation_rows(prompts, replies, {**scores, **quality})
    targets = [out / n for n in ("generations.jsonl", "results.json", "report.md")]
    with staged_files(*targets) as (gen, res, rep):
        gen.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
        res.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
        rep.write_text(render(results))
    return targets[1]


@register("behaviour")
def behaviour(run: EvalRun) -> Comparison:
    """Tuned vs base on the evaluation prompts, every scorer, with bootstrap CIs."""
    from jaxalign.eval.report import table

    path = evaluate_run(run.cfg)
    results = json.loads(path.read_text())
    return Comparison(
        step=results["checkpoint_step"],
        footer=(*table(results), f"behaviour results in {path.parent}"),
    )

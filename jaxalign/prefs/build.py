"""Ratings -> preference records (+ manifest): group filter, scale collapse, disagreement policy.

Pairs are built from responses to the same question. Output order, splits and hashes are
deterministic, so a rerun is byte-identical.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from itertools import combinations
from pathlib import Path

import numpy as np
import pandas as pd

from jaxalign import __version__
from jaxalign.config import PrefsConfig, RatingsConfig, config_hash, to_dict
from jaxalign.errors import DataError
from jaxalign.prefs.filters import check_groups, group_mask
from jaxalign.prefs.policies import collapse, decide, evidence, orient
from jaxalign.progress import bar


def natural_key(text: str) -> tuple:
    """Sort key that orders '2' before '10'."""
    return tuple(
        (0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", str(text)) if t
    )


def assign_splits(question_ids, cfg) -> dict[str, str]:
    """Deterministic question -> split map (train/validation/test) from a seeded hash order."""
    split = cfg.split
    ordered = sorted(
        set(question_ids), key=lambda q: hashlib.sha256(f"{split.seed}:{q}".encode()).hexdigest()
    )
    n = len(ordered)
    n_train = round(split.train * n)
    n_val = round((split.train + split.validation) * n) - n_train
    out = {}
    for i, q in enumerate(ordered):
        out[q] = "train" if i < n_train else "validation" if i < n_train + n_val else "test"
    return out


def score_table(frame: pd.DataFrame, cfg: PrefsConfig) -> pd.DataFrame:
    """One row per (rater, response) with oriented, collapsed scores for the chosen dimensions."""
    subset = frame[frame["dimension"].isin(cfg.dimensions)]
    wide = subset.pivot_table(
        index=["rater_id", "question_id", "response_id"],
        columns="dimension",
        values="rating",
        aggfunc="first",
    )
    out = pd.DataFrame(index=wide.index)
    for dim in cfg.dimensions:
        if dim not in wide.columns:
            raise DataError(f"no ratings for dimension '{dim}' in the selected raters")
        levels = collapse(wide[dim].fillna(0).to_numpy(), cfg.scale, cfg.binary_neutral)
        levels[wide[dim].isna().to_numpy()] = np.nan
        out[dim] = orient(levels, dim, cfg.scale)
    return out.reset_index()


def _texts(frame: pd.DataFrame, language: str) -> tuple[dict, dict]:
    """Prompt text per question and response text per response, preferring `language`."""
    pref = frame.assign(_pref=(frame["language"] != language).astype(int)).sort_values(
        ["_pref", "rater_id"], kind="stable"
    )
    first = pref.drop_duplicates("response_id")
    responses = dict(zip(first["response_id"], first["response"]))
    prompts = dict(
        zip(
            pref.drop_duplicates("question_id")["question_id"],
            pref.drop_duplicates("question_id")["prompt"],
        )
    )
    return prompts, responses


def _variants(cfg: PrefsConfig) -> list[tuple[tuple[str, ...], np.ndarray | None]]:
    """(dimensions, weights) per record family: one for weighted_sum/pareto, one per dim for concat."""
    if cfg.combine == "concat":
        return [((d,), np.ones(1)) for d in cfg.dimensions]
    if cfg.combine == "pareto":
        return [(cfg.dimensions, None)]
    w = np.array([cfg.weights.get(d, 1.0) for d in cfg.dimensions], dtype=float)
    if w.sum() <= 0:
        raise DataError("prefs.weights must have a positive sum")
    return [(cfg.dimensions, w / w.sum())]


def subsample_raters(
    sub: pd.DataFrame, expr: str, max_raters: int, key: str = "prefs.max_raters"
) -> pd.DataFrame:
    """Keep `max_raters` of a group's raters (lowest SHA-256 of their id), all if 0; errors
    name `key` (the reward model's `reward.max_raters` keeps the same raters)."""
    if not max_raters:
        return sub
    raters = sorted(
        sub["rater_id"].astype(str).unique(),
        key=lambda r: hashlib.sha256(r.encode()).hexdigest(),
    )
    if len(raters) < max_raters:
        raise DataError(
            f"{key}={max_raters}: group '{expr}' has only {len(raters)} raters; "
            f"lower {key} to the smallest group's count"
        )
    return sub.loc[sub["rater_id"].astype(str).isin(set(raters[:max_raters]))]


def build_records(frame: pd.DataFrame, cfg: PrefsConfig) -> tuple[list[dict], dict]:
    """All preference records for every configured group, plus counts for the manifest."""
    splits = assign_splits(frame["question_id"], cfg)
    prompts, responses = _texts(frame, cfg.text_language)
    records, counts = (
        [],
        {
            "groups": {},
            "ties_dropped": 0,
            "ties_kept": 0,
            "responses_below_min_ratings": 0,
            "response_pairs": 0,
            "strict_comparisons": 0,
        },
    )
    with bar(cfg.groups, desc="prefs", unit="group", disable=None) as ticks:
        for expr in ticks:
            sub = subsample_raters(frame.loc[group_mask(frame, expr)], expr, cfg.max_raters)
            before = len(records)
            if not sub.empty:
                scores = score_table(sub, cfg)
                records += _group_records(scores, expr, cfg, splits, prompts, responses, counts)
            counts["groups"][expr] = {
                "raters": int(sub["rater_id"].nunique()),
                "ratings": len(sub),
                "pairs": len(records) - before,
            }
    counts["pairs"] = len(records)
    counts["pairs_by_split"] = dict(sorted(Counter(r["split"] for r in records).items()))
    counts["questions_by_split"] = dict(sorted(Counter(splits.values()).items()))
    counts["weight_sum"] = round(sum(r["weight"] for r in records), 6)
    return records, counts


def _group_records(scores, expr, cfg, splits, prompts, responses, counts) -> list[dict]:
    """Records for one rater group."""
    out = []
    for dims, weights in _variants(cfg):
        usable = scores.dropna(subset=list(dims))
        by_response = {
            rid: g[list(dims)].to_numpy(float)
            for rid, g in usable.groupby("response_id", sort=False)
        }
        question_of = dict(zip(usable["response_id"], usable["question_id"]))
        per_question: dict[str, list[str]] = {}
        for rid in sorted(by_response, key=natural_key):
            if len(by_response[rid]) < cfg.min_ratings:
                counts["responses_below_min_ratings"] += 1
                continue
            per_question.setdefault(question_of[rid], []).append(rid)
        for qid in sorted(per_question, key=natural_key):
            for a_id, b_id in combinations(per_question[qid], 2):
                a, b = by_response[a_id], by_response[b_id]
                counts["response_pairs"] += 1
                decision = decide(a, b, cfg.disagreement, weights, cfg.keep_ties)
                ev = evidence(a, b, weights)
                counts["strict_comparisons"] += ev.n_ab + ev.n_ba
                if decision.tie:
                    counts["ties_kept" if decision.records else "ties_dropped"] += 1
                for a_chosen, weight, soft in decision.records:
                    chosen, rejected = (a_id, b_id) if a_chosen else (b_id, a_id)
                    n_cr, n_rc = (ev.n_ab, ev.n_ba) if a_chosen else (ev.n_ba, ev.n_ab)
                    out.append(
                        {
                            "pair_id": f"{expr}|{'+'.join(dims)}|{qid}|{chosen}>{rejected}",
                            "question_id": qid,
                            "prompt": prompts[qid],
                            "chosen": responses[chosen],
                            "rejected": responses[rejected],
                            "chosen_id": chosen,
                            "rejected_id": rejected,
                            "weight": round(float(weight), 6),
                            "soft_label": round(float(soft), 6),
                            "group": expr,
                            "dimensions": list(dims),
                            "split": splits[qid],
                            "provenance": {
                                "n_chosen": len(by_response[chosen]),
                                "n_rejected": len(by_response[rejected]),
                                "chosen_better": int(n_cr),
                                "rejected_better": int(n_rc),
                                "equal": int(ev.n_tie),
                            },
                        }
                    )
    return out


def build_prefs(
    ratings_path: str | Path,
    out_path: str | Path,
    cfg: PrefsConfig,
    ratings_cfg: RatingsConfig | None = None,
    overwrite: bool = False,
) -> dict:
    """Read ratings, build records, write FILE.jsonl and FILE.manifest.json (and a dropped-rows report)."""
    from jaxalign.io import sha256_path, staged_files
    from jaxalign.survey.folds import select_fold
    from jaxalign.survey.readers import load_ratings

    check_groups(cfg.groups, "prefs.groups")  # before any output check or input read
    ratings_cfg = ratings_cfg or RatingsConfig()
    out_path, manifest_path, report_path = check_prefs_outputs(out_path, ratings_path, overwrite)
    frame, report = load_ratings(ratings_path, ratings_cfg)
    # Preferences learn from the train fold; the judge fold is kept for evaluation.
    frame, fold = select_fold(frame, "train", ratings_cfg, str(ratings_path))
    records, counts = build_records(frame, cfg)
    if not records:
        raise DataError(
            f"{ratings_path}: no preference pairs (every pair was a tie or no group had ratings); "
            "try prefs.keep_ties=true, another --disagreement or a wider --group"
        )
    body = "".join(
        json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records
    ).encode()
    manifest = {
        "jaxalign_version": __version__,
        "input": {"path": str(ratings_path), "sha256": sha256_path(ratings_path)},
        "options": to_dict(cfg),
        "ratings_options": to_dict(ratings_cfg),
        "config_hash": config_hash((cfg, ratings_cfg)),
        "reading": report.summary(),
        "fold": fold,
        "counts": counts,
        "output": {
            "path": out_path.name,
            "sha256": hashlib.sha256(body).hexdigest(),
            "records": len(records),
        },
    }
    targets = [out_path, manifest_path] + ([report_path] if report.problems else [])
    # A report left by an earlier lenient build would contradict this manifest: remove it.
    stale = [] if report.problems else [report_path]
    with staged_files(*targets, remove=stale) as temps:
        temps[0].write_bytes(body)
        temps[1].write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
        if report.problems:
            temps[2].write_text(report.problems.to_csv())
    return manifest


def _prefs_outputs(out_path: Path) -> tuple[Path, Path, Path]:
    """FILE.jsonl, FILE.manifest.json and FILE.dropped.csv for an output path."""
    stem = out_path.with_name(out_path.stem)
    return out_path, Path(f"{stem}.manifest.json"), Path(f"{stem}.dropped.csv")


def _is_own_output(path: Path) -> bool:
    """True when `path` is one of the three files an earlier `prefs build` wrote together."""
    stem = path.name.removesuffix(".jsonl").removesuffix(".manifest.json")
    stem = stem.removesuffix(".dropped.csv")
    try:
        manifest = json.loads(path.with_name(f"{stem}.manifest.json").read_text(encoding="utf-8"))
        return manifest["output"]["path"] == f"{stem}.jsonl"
    except (OSError, ValueError, KeyError, TypeError):
        return False


def check_prefs_outputs(
    out_path: str | Path, ratings_path: str | Path, overwrite: bool = False
) -> tuple[Path, Path, Path]:
    """Apply the output policy to the three files `prefs build` writes; return their paths."""
    from jaxalign.io import check_output

    out_path = Path(out_path)
    if out_path.suffix != ".jsonl":
        raise DataError(f"{out_path}: output must be a .jsonl file")
    paths = _prefs_outputs(out_path)
    for path in paths:
        check_output(
            path,
            "prefs build",
            kind="file",
            inputs=[ratings_path],
            overwrite=overwrite,
            owned=_is_own_output,
        )
    return paths

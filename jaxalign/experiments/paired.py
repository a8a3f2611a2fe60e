"""Comparisons from per-prompt scores: "X% greater reduction" per bootstrap replicate.

Used when both conditions' cells have the behaviour evaluator's generations.jsonl and
`jaxalign.eval.stats` exists: every replicate resamples prompts once for both conditions
(`stats.greater_reduction`). Seeds of a condition enter as extra samples per prompt. Without
them the report falls back to the per-condition aggregates (report.comparison_rows).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

GENERATIONS = Path("train") / "eval" / "generations.jsonl"


def score_grid(path: Path, key: str) -> dict[str, np.ndarray] | None:
    """{'base', 'tuned'} -> [prompts, decodings] scores under `key` (scorer/dimension/group)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    rows = [json.loads(line) for line in lines if line.strip()]
    cells: dict[str, dict[str, dict[str, float]]] = {"base": {}, "tuned": {}}
    for row in rows:
        value = row.get("scores", {}).get(key)
        if value is None or row.get("model") not in cells:
            continue
        cells[row["model"]].setdefault(str(row["prompt_id"]), {})[row["decoding"]] = value
    out = {}
    for model, by_prompt in cells.items():
        if not by_prompt:
            return None
        ids = sorted(by_prompt)
        decodings = sorted(by_prompt[ids[0]])
        try:
            out[model] = np.array([[by_prompt[i][d] for d in decodings] for i in ids], float)
        except KeyError:
            return None  # prompts decoded differently: not a paired design
        out[f"{model}_ids"] = ids
    return out


def _stack(grids: list[dict]) -> tuple[np.ndarray, np.ndarray] | None:
    """Base of the first seed and tuned replies of every seed side by side (same prompts)."""
    if not grids or any(g["tuned_ids"] != grids[0]["base_ids"] for g in grids):
        return None
    return grids[0]["base"], np.concatenate([g["tuned"] for g in grids], axis=1)


def greater_reduction(dirs_a: list[Path], dirs_b: list[Path], key: str, lower: bool) -> dict | None:
    """stats.greater_reduction of condition a over b, or None if the data or stats are absent."""
    try:
        from jaxalign.eval import stats
    except ImportError:
        return None
    grids_a = [score_grid(d / GENERATIONS, key) for d in dirs_a]
    grids_b = [score_grid(d / GENERATIONS, key) for d in dirs_b]
    if not grids_a or not grids_b or None in grids_a or None in grids_b:
        return None
    a, b = _stack(grids_a), _stack(grids_b)
    if a is None or b is None or grids_a[0]["base_ids"] != grids_b[0]["base_ids"]:
        return None
    return stats.greater_reduction(a[0], a[1], b[1], lower_is_better=lower, seed=0)

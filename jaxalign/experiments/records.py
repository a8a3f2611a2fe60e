"""Evaluation results in one form for the report, whichever evaluator produced them.

A record: {dimension, scorer, group, lower_is_better, base_mean, tuned_mean, diff, ci_low,
ci_high, p, p_adj, effect_size, n_prompts}; unknown numbers are None. `jaxalign.eval.behaviour.evaluate_run`'s
results.json (docs/EVALUATION.md) maps field for field; the older registry evaluators give
base and tuned numbers only (no intervals).
"""

from __future__ import annotations

import math
from typing import Any

FIELDS = ("base_mean", "tuned_mean", "diff", "ci_low", "ci_high", "p", "p_adj", "effect_size")
LOWER_IS_BETTER = ("toxicity", "stereotypical_bias")
# Registry metrics that measure a dimension: metric -> (dimension, scorer).
KNOWN = {
    "offensiveness_mean": ("toxicity", "offensiveness"),
    "reply_words_mean": ("quality", "words"),
}


def _number(value: Any) -> float | None:
    """A finite float rounded for stable output, or None."""
    if value is None or isinstance(value, bool):
        return None
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return round(value, 6) if math.isfinite(value) else None


def _record(dimension: str, scorer: str, group: str, values: dict) -> dict:
    """One normalised record."""
    out = {"dimension": dimension, "scorer": scorer, "group": group}
    out.update({k: _number(values.get(k)) for k in FIELDS})
    lower = values.get("lower_is_better")
    out["lower_is_better"] = lower if isinstance(lower, bool) else dimension in LOWER_IS_BETTER
    if out["diff"] is None and None not in (out["base_mean"], out["tuned_mean"]):
        out["diff"] = round(out["tuned_mean"] - out["base_mean"], 6)
    n = values.get("n_prompts")
    out["n_prompts"] = int(n) if isinstance(n, int) and not isinstance(n, bool) else None
    return out


def sort_records(records: list[dict]) -> list[dict]:
    """Records in a fixed order."""
    return sorted(records, key=lambda r: (r["dimension"], r["scorer"], r["group"]))


def from_results(results: Any) -> dict:
    """evaluate_run's results.json: a list of records, or a mapping with 'metrics'/'records'."""
    rows = results
    if isinstance(results, dict):
        rows = results.get("metrics", results.get("records", []))
    records = []
    for row in rows if isinstance(rows, list) else []:
        if not isinstance(row, dict) or "dimension" not in row:
            continue
        values = dict(row)
        values.setdefault("p", row.get("p_value"))
        values.setdefault("p_adj", row.get("p_adjusted"))
        values.setdefault("effect_size", row.get("d_z"))
        group = str(row.get("group") or "all")
        records.append(_record(str(row["dimension"]), str(row.get("scorer", "")), group, values))
    return {"evaluator": "behaviour", "records": sort_records(records)}


def from_comparisons(found: list) -> dict:
    """The registry evaluators' (name, Comparison) pairs."""
    records = []
    for name, comparison in found:
        for metric, (base, tuned) in comparison.rows.items():
            dimension, scorer = KNOWN.get(metric, (name, metric))
            values = {"base_mean": base, "tuned_mean": tuned}
            records.append(_record(dimension, scorer, "all", values))
    return {"evaluator": "registry", "records": sort_records(records)}


def reduction(record: dict) -> float | None:
    """How much tuning improved a dimension: base - tuned where lower is better, else tuned - base."""
    diff = record.get("diff")
    if diff is None:
        return None
    return -diff if _lower(record) else diff


def reduction_ci(record: dict) -> tuple[float | None, float | None]:
    """The reduction's interval (the difference's, turned round where lower is better)."""
    lo, hi = record.get("ci_low"), record.get("ci_high")
    if lo is None or hi is None:
        return None, None
    return (-hi, -lo) if _lower(record) else (lo, hi)


def _lower(record: dict) -> bool:
    """Whether lower is better for a record's scorer (the evaluator says; else by dimension)."""
    lower = record.get("lower_is_better")
    return lower if isinstance(lower, bool) else record["dimension"] in LOWER_IS_BETTER

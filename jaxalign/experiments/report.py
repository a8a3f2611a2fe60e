"""`experiment report`: summary.json, report.md, tables/*.csv and plots, byte-identical for
identical inputs (sorted keys, fixed rounding, no timings or paths, PNG metadata fixed).

Aggregation over seeds is a plain mean of each seed's difference; the interval is the mean of
the seeds' intervals when every seed has one (the evaluator's bootstrap), else none. A cell that
did not finish (never run, failed, blocked) is listed as missing and left out of every number.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from pathlib import Path
from typing import Any

from jaxalign.config.experiment import Compare, Experiment
from jaxalign.experiments.cells import Cell
from jaxalign.experiments.records import reduction, reduction_ci
from jaxalign.experiments.runner import Runner, read_json
from jaxalign.io import staged_dir

SCHEMA = "jaxalign.experiment/1"
COMMAND = "experiment report"


def _r(x: float | None, nd: int = 6) -> float | None:
    """Fixed rounding (None stays None)."""
    return None if x is None else round(float(x), nd)


def cell_rows(runner: Runner, cells: list[Cell], order: list[str]) -> list[dict]:
    """Each cell's status and evaluation records, in condition then seed order."""
    rows = []
    for cell in sorted(cells, key=lambda c: (order.index(c.condition), c.seed)):
        status = read_json(runner.cell_dir(cell) / "status.json") or {}
        state = status.get("status", "missing")
        found = {}
        if state == "done":
            found = read_json(runner.cell_dir(cell) / "eval" / "records.json") or {}
        row = {"id": cell.id, "condition": cell.condition, "seed": cell.seed}
        row.update({"algorithm": cell.algorithm, "status": state})
        row.update(records=found.get("records", []), reward_vs_judge=found.get("reward_vs_judge"))
        row["trained_on"] = "+".join(cell.config.prefs.groups)
        if state != "done":
            row["error"] = status.get("error", "not run yet")
        rows.append(row)
    return rows


def _metric_key(rec: dict) -> tuple[str, str, str]:
    """(dimension, scorer, group)."""
    return rec["dimension"], rec["scorer"], rec["group"]


def condition_rows(rows: list[dict], order: list[str]) -> list[dict]:
    """Per condition and metric: the mean difference and reduction over finished seeds."""
    out = []
    for cond in order:
        done = [r for r in rows if r["condition"] == cond and r["status"] == "done"]
        by_metric: dict[tuple, list[dict]] = {}
        for row in done:
            for rec in row["records"]:
                by_metric.setdefault(_metric_key(rec), []).append({**rec, "seed": row["seed"]})
        for (dim, scorer, group), recs in sorted(by_metric.items()):
            out.append(_aggregate(cond, dim, scorer, group, recs))
        if not by_metric:
            out.append({"condition": cond, "dimension": None, "missing": True})
    return out


def _aggregate(cond: str, dim: str, scorer: str, group: str, recs: list[dict]) -> dict:
    """One condition x metric over seeds."""
    diffs = [r["diff"] for r in recs if r["diff"] is not None]
    reds = [reduction(r) for r in recs if reduction(r) is not None]
    cis = [reduction_ci(r) for r in recs]
    full = all(lo is not None for lo, _ in cis) and cis
    return {
        "condition": cond,
        "dimension": dim,
        "scorer": scorer,
        "group": group,
        "seeds": [r["seed"] for r in recs],
        "seed_diffs": [_r(r["diff"]) for r in recs],
        "base_mean": _r(
            statistics.fmean([r["base_mean"] for r in recs if r["base_mean"] is not None] or [0])
        ),
        "diff": _r(statistics.fmean(diffs)) if diffs else None,
        "seed_sd": _r(statistics.stdev(diffs)) if len(diffs) > 1 else None,
        "reduction": _r(statistics.fmean(reds)) if reds else None,
        "reduction_ci": [
            _r(statistics.fmean(c[0] for c in cis)),
            _r(statistics.fmean(c[1] for c in cis)),
        ]
        if full
        else None,
    }


def gain_rows(rows: list[dict], order: list[str]) -> list[dict]:
    """Per condition: GRPO's reward gain beside the judge's (means over finished seeds, `seeds`
    of them); every field None where no finished cell has a reward (DPO)."""
    out = []
    for cond in order:
        mine = [r for r in rows if r["condition"] == cond]
        found = [
            r["reward_vs_judge"] for r in mine if r["status"] == "done" and r["reward_vs_judge"]
        ]
        row = {"condition": cond, "algorithm": "+".join(sorted({r["algorithm"] for r in mine}))}
        reward, judge = _mean_key(found, "reward_gain"), _mean_key(found, "judge_gain")
        row.update(reward_gain=reward, judge_gain=judge, seeds=len(found) or None)
        row["ratio"] = _r(reward / judge) if reward is not None and judge else None
        row["goodhart_warning"] = any(f.get("goodhart_warning") for f in found) if found else None
        out.append(row)
    return out


def _mean_key(found: list[dict], key: str) -> float | None:
    """Mean of a key over seeds that have it (None if none)."""
    values = [f[key] for f in found if f.get(key) is not None]
    return _r(statistics.fmean(values)) if values else None


def _pick(conds: list[dict], name: str, comp: Compare) -> dict | None:
    """The aggregated metric a comparison uses for condition `name`."""
    matches = [
        c
        for c in conds
        if c["condition"] == name
        and c.get("dimension") == comp.dimension
        and c["group"] == comp.group
        and (not comp.scorer or c["scorer"] == comp.scorer)
    ]
    judged = [c for c in matches if c["scorer"] == "judge"]  # the primary scorer (rating model)
    return (judged or matches or [None])[0]


def comparison_rows(exp: Experiment, conds: list[dict], paired=None) -> list[dict]:
    """Each comparison: our reductions for a and b and 'X% greater', beside the paper's figure.

    `paired(comp, scorer)` may return stats.greater_reduction's result from per-prompt scores;
    otherwise the per-condition aggregates are compared.
    """
    out = []
    for comp in exp.compare:
        a, b = _pick(conds, comp.a, comp), _pick(conds, comp.b, comp)
        row: dict[str, Any] = {"name": comp.name, "dimension": comp.dimension, "a": comp.a}
        row.update({"b": comp.b, "paper": comp.paper, "note": comp.note})
        row["scorer"] = (a or b or {}).get("scorer", comp.scorer)
        if not a or not b or a["reduction"] is None or b["reduction"] is None:
            row.update(ours="missing (a condition has no finished cell)", status="missing")
            out.append(row)
            continue
        found = paired(comp, row["scorer"]) if paired else None
        if found:
            out.append(_paired_row(row, found))
            continue
        row["method"] = "condition means"
        ra, rb = a["reduction"], b["reduction"]
        row.update(reduction_a=ra, reduction_b=rb, difference=_r(ra - rb))
        ci_b = b["reduction_ci"]
        if ci_b is not None and ci_b[0] <= 0 <= ci_b[1]:
            row.update(status="undefined", greater_pct=None)
            row["ours"] = f"undefined (b's reduction CI covers 0); a - b = {ra - rb:+.4f}"
        elif rb == 0:
            row.update(
                status="undefined", greater_pct=None, ours=f"b reduced nothing; a - b = {ra:+.4f}"
            )
        else:
            pct = 100.0 * (ra / rb - 1.0)
            row.update(status="ok" if ci_b else "no_ci", greater_pct=_r(pct, 2))
            tail = "" if ci_b else " (no CI from this evaluator: not a test)"
            row["ours"] = f"{pct:+.1f}% greater reduction (a {ra:+.4f}, b {rb:+.4f}){tail}"
        out.append(row)
    return out


def _paired_row(row: dict, found: dict) -> dict:
    """A comparison from stats.greater_reduction (shared prompt resamples)."""
    row = {**row, "method": "paired bootstrap over prompts"}
    ra, rb, diff = found["reduction_a"], found["reduction_b"], found["difference"]
    row.update(reduction_a=_r(ra), reduction_b=_r(rb), difference=_r(diff))
    row["difference_ci"] = [_r(x) for x in found["difference_ci"]]
    lo, hi = row["difference_ci"]
    if not found["defined"]:
        row.update(status="undefined", greater_pct=None)
        row["ours"] = f"undefined (b's reduction CI covers 0); a - b = {diff:+.4f} [{lo}, {hi}]"
        return row
    pct, (plo, phi) = found["pct"], found["pct_ci"]
    row.update(status="ok", greater_pct=_r(pct, 2), greater_pct_ci=[_r(plo, 2), _r(phi, 2)])
    row["ours"] = (
        f"{pct:+.1f}% greater reduction [{plo:+.1f}, {phi:+.1f}] (a {ra:+.4f}, b {rb:+.4f})"
    )
    return row


def _paired_for(runner: Runner, cells: list[Cell], rows: list[dict]):
    """The `paired` hook of comparison_rows for this experiment's finished cells."""
    from jaxalign.experiments.paired import greater_reduction
    from jaxalign.experiments.records import LOWER_IS_BETTER

    done = {r["id"] for r in rows if r["status"] == "done"}

    def dirs(condition: str) -> list[Path]:
        """Finished cells of a condition, by seed."""
        found = [c for c in cells if c.condition == condition and c.id in done]
        return [runner.cell_dir(c) for c in sorted(found, key=lambda c: c.seed)]

    def paired(comp: Compare, scorer: str) -> dict | None:
        """greater_reduction on the judge's (or scorer's) per-prompt scores."""
        key = f"{scorer}/{comp.dimension}/{comp.group}"
        lower = comp.dimension in LOWER_IS_BETTER
        return greater_reduction(dirs(comp.a), dirs(comp.b), key, lower)

    return paired


def build_summary(exp: Experiment, mode: str, runner: Runner, cells: list[Cell]) -> dict:
    """The whole report as one JSON-able mapping."""
    order = [label for label, _ in exp.conditions()]
    rows = cell_rows(runner, cells, order)
    conds = condition_rows(rows, order)
    return {
        "schema": SCHEMA,
        "experiment": exp.name,
        "description": exp.description,
        "mode": mode,
        "notes": exp.notes,
        "cells": rows,
        "conditions": conds,
        "comparisons": comparison_rows(exp, conds, _paired_for(runner, cells, rows)),
        "reward_vs_judge": gain_rows(rows, order),
        "missing": [
            f"{r['condition']}/seed{r['seed']}: {r['status']}"
            for r in rows
            if r["status"] != "done"
        ],
    }


def _csv(rows: list[dict], columns: list[str]) -> str:
    """CSV text with fixed columns and line endings."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return buf.getvalue()


def tables(summary: dict) -> dict[str, str]:
    """tables/*.csv."""
    flat = [
        {**{k: c[k] for k in ("id", "condition", "seed", "algorithm", "status")}, **rec}
        for c in summary["cells"]
        for rec in (c["records"] or [{}])
    ]
    cell_cols = ["id", "condition", "seed", "algorithm", "status", "dimension", "scorer", "group"]
    cell_cols += ["base_mean", "tuned_mean", "diff", "ci_low", "ci_high", "p", "p_adj"]
    cond_cols = ["condition", "dimension", "scorer", "group", "base_mean", "diff", "seed_sd"]
    cond_cols += ["reduction"]
    comp_cols = ["name", "dimension", "scorer", "a", "b", "reduction_a", "reduction_b"]
    comp_cols += ["difference", "greater_pct", "status", "method", "paper"]
    gain_cols = ["condition", "algorithm", "reward_gain", "judge_gain", "ratio"]
    gain_cols += ["goodhart_warning", "seeds"]
    return {
        "reward_vs_judge.csv": _csv(summary["reward_vs_judge"], gain_cols),
        "cells.csv": _csv(flat, cell_cols),
        "conditions.csv": _csv(summary["conditions"], cond_cols),
        "comparisons.csv": _csv(summary["comparisons"], comp_cols),
    }


def write_report(exp: Experiment, mode: str, runner: Runner, cells: list[Cell]) -> Path:
    """Write ROOT/NAME/report/ atomically; returns its path."""
    from jaxalign.experiments.markdown import markdown
    from jaxalign.experiments.plots import plots

    summary = build_summary(exp, mode, runner, cells)
    target = runner.exp_dir / "report"
    with staged_dir(target, COMMAND, overwrite=False) as tmp:
        (tmp / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        (tmp / "report.md").write_text(markdown(summary), encoding="utf-8")
        (tmp / "tables").mkdir()
        for name, text in tables(summary).items():
            (tmp / "tables" / name).write_text(text, encoding="utf-8")
        plots(summary, tmp)
    return target

"""Demographic analysis: how rater groups differ in their ratings of each dimension.

Each comparison (dimension x attribute x group vs reference) reports group means, the
percent difference, a bootstrap CI that resamples raters (a rater's ratings are not
independent), Welch's t-test on per-rater means with a multiple-comparison correction,
and Hedges' g on per-rater means.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from jaxalign.config import AnalysisConfig
from jaxalign.progress import bar
from jaxalign.survey import schema
from jaxalign.survey.groups import contrast, values

SKIP_GROUPS = {"undeclared", "unknown", ""}

COMMAND = "survey analyze"  # the owner mark on its output directories


def rater_table(frame: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Rater attributes plus per-rater rating sums and counts, each [R, D]."""
    raters = frame.drop_duplicates("rater_id").set_index("rater_id")
    raters = raters[[c for c in schema.RATER_COLUMNS if c != "rater_id"]]
    dim_index = frame["dimension"].map({d: i for i, d in enumerate(schema.DIMENSIONS)}).to_numpy()
    rater_index = pd.Index(raters.index).get_indexer(frame["rater_id"])
    sums = np.zeros((len(raters), len(schema.DIMENSIONS)))
    counts = np.zeros_like(sums)
    np.add.at(sums, (rater_index, dim_index), frame["rating"].to_numpy(float))
    np.add.at(counts, (rater_index, dim_index), 1.0)
    return raters.reset_index(), sums, counts


def adjust(p: np.ndarray, method: str) -> np.ndarray:
    """Multiple-comparison adjusted p-values (Holm, Benjamini-Hochberg or Bonferroni)."""
    p = np.asarray(p, float)
    m = len(p)
    if m == 0:
        return p
    if method == "bonferroni":
        return np.minimum(p * m, 1.0)
    order = np.argsort(p, kind="stable")
    ranked = p[order]
    if method == "holm":
        adj = np.maximum.accumulate(ranked * (m - np.arange(m)))
    else:  # bh
        adj = np.minimum.accumulate((ranked * m / np.arange(1, m + 1))[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return out


def hedges_g(a: np.ndarray, b: np.ndarray) -> float:
    """Bias-corrected standardized mean difference of two samples."""
    na, nb = len(a), len(b)
    pooled = np.sqrt(((na - 1) * a.var(ddof=1) + (nb - 1) * b.var(ddof=1)) / max(na + nb - 2, 1))
    if pooled == 0:
        return 0.0
    return float((a.mean() - b.mean()) / pooled * (1 - 3 / (4 * (na + nb) - 9)))


def _bootstrap_means(
    sums: np.ndarray, counts: np.ndarray, n_boot: int, rng: np.random.Generator
) -> np.ndarray:
    """[B, D] ratio-of-sums means over raters resampled with replacement."""
    n = len(sums)
    out = np.empty((n_boot, sums.shape[1]))
    block = max(1, 2_000_000 // max(n, 1))  # bounds the [block, n] index matrix
    for start in range(0, n_boot, block):
        b = min(block, n_boot - start)
        draws = rng.integers(0, n, size=(b, n)) + (np.arange(b) * n)[:, None]
        weights = np.bincount(draws.ravel(), minlength=b * n).reshape(b, n).astype(float)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[start : start + b] = (weights @ sums) / (weights @ counts)
    return out


def compare(
    raters, sums, counts, attribute, group, reference, cfg: AnalysisConfig, rng
) -> list[dict]:
    """One record per dimension for `group` vs `reference` on `attribute`."""
    g_mask, r_mask = contrast(raters, attribute, group, reference)
    n_g, n_r = int(g_mask.sum()), int(r_mask.sum())
    if n_g < cfg.min_raters or n_r < cfg.min_raters:
        return []
    boot_g = _bootstrap_means(sums[g_mask], counts[g_mask], cfg.bootstrap, rng)
    boot_r = _bootstrap_means(sums[r_mask], counts[r_mask], cfg.bootstrap, rng)
    boot_pct = 100.0 * (boot_g / boot_r - 1.0)
    tail = (1.0 - cfg.confidence) / 2.0
    records = []
    for d, dim in enumerate(schema.DIMENSIONS):
        sg, cg = sums[g_mask, d], counts[g_mask, d]
        sr, cr = sums[r_mask, d], counts[r_mask, d]
        if cg.sum() == 0 or cr.sum() == 0:
            continue
        mean_g, mean_r = sg.sum() / cg.sum(), sr.sum() / cr.sum()
        per_g, per_r = sg[cg > 0] / cg[cg > 0], sr[cr > 0] / cr[cr > 0]
        test = stats.ttest_ind(per_g, per_r, equal_var=False)
        lo, hi = np.nanquantile(boot_pct[:, d], [tail, 1.0 - tail])
        records.append(
            {
                "dimension": dim,
                "attribute": attribute,
                "group": group,
                "reference": reference,
                "mean_group": round(float(mean_g), 6),
                "mean_reference": round(float(mean_r), 6),
                "pct_diff": round(float(100.0 * (mean_g / mean_r - 1.0)), 4),
                "ci_low": round(float(lo), 4),
                "ci_high": round(float(hi), 4),
                "p_value": float(test.pvalue) if np.isfinite(test.pvalue) else 1.0,
                "effect_size": round(hedges_g(per_g, per_r), 4),
                "n_raters": len(per_g),
                "n_raters_reference": len(per_r),
                "n_ratings": int(cg.sum()),
                "n_ratings_reference": int(cr.sum()),
            }
        )
    return records


def analyze(frame: pd.DataFrame, cfg: AnalysisConfig) -> tuple[list[dict], dict]:
    """All comparisons for the configured attributes, with adjusted p-values, and an overview."""
    raters, sums, counts = rater_table(frame)
    rng = np.random.default_rng(cfg.seed)
    jobs = comparison_jobs(raters, cfg)
    records = []
    with bar(jobs, desc="analyze", unit="comparison", disable=None) as ticks:
        for attribute, group, reference in ticks:
            records += compare(raters, sums, counts, attribute, group, reference, cfg, rng)
    adjusted = adjust(np.array([r["p_value"] for r in records]), cfg.correction)
    for record, p_adj in zip(records, adjusted):
        record["p_adjusted"] = float(p_adj)
        record["significant"] = bool(p_adj < cfg.alpha)
        record["correction"] = cfg.correction
    overview = _overview(frame, raters)
    return records, overview


def comparison_jobs(raters: pd.DataFrame, cfg: AnalysisConfig) -> list[tuple[str, str, str]]:
    """(attribute, group, reference) for every configured comparison."""
    jobs = []
    for attribute in cfg.attributes:
        reference = cfg.references.get(attribute)
        present = values(raters, attribute)
        if reference is None or reference not in present:
            reference = _largest_group(raters, attribute, present)
        jobs += [
            (attribute, g, reference) for g in present if g != reference and g not in SKIP_GROUPS
        ]
    return jobs


def rankings(frame: pd.DataFrame, cfg: AnalysisConfig, truth: dict | None = None) -> dict:
    """Per-response tables and the groups' rank agreement (survey/responses.py)."""
    from jaxalign.survey.responses import overview_tables, rank_report

    raters, _, _ = rater_table(frame)
    rng = np.random.default_rng([cfg.seed, 1])
    report = rank_report(frame, raters, comparison_jobs(raters, cfg), cfg, rng, truth)
    return {**overview_tables(frame), **report}


def _largest_group(raters: pd.DataFrame, attribute: str, present: list[str]) -> str:
    """The most common declared value, used when no reference is configured or present."""
    from jaxalign.survey.groups import member

    candidates = [v for v in present if v not in SKIP_GROUPS] or present
    return max(candidates, key=lambda v: (member(raters, attribute, v).sum(), v))


def _overview(frame: pd.DataFrame, raters: pd.DataFrame) -> dict:
    """Counts, per-dimension means and rating distributions."""
    dist = frame.groupby("dimension")["rating"].value_counts(normalize=True).unstack(fill_value=0.0)
    return {
        "raters": len(raters),
        "ratings": len(frame),
        "responses": int(frame["response_id"].nunique()),
        "questions": int(frame["question_id"].nunique()),
        "means": {
            d: round(float(frame.loc[frame["dimension"] == d, "rating"].mean()), 4)
            for d in schema.DIMENSIONS
            if (frame["dimension"] == d).any()
        },
        "distribution": {
            d: {int(k): round(float(v), 4) for k, v in dist.loc[d].items()}
            for d in schema.DIMENSIONS
            if d in dist.index
        },
    }


def write_analysis(
    frame: pd.DataFrame,
    cfg: AnalysisConfig,
    out_dir: Path,
    extra: dict | None = None,
    dropped_csv: str = "",
    truth: dict | None = None,
    overwrite: bool = False,
) -> list[dict]:
    """Analyse; write effects.json, rankings.json, summary.md, plots (and dropped_rows.csv) atomically.

    `truth` is the simulator's manifest when the ratings are simulated (planted interactions).
    """
    from jaxalign.io import staged_dir
    from jaxalign.survey.plots import write_plots
    from jaxalign.survey.report import rankings_markdown

    records, overview = analyze(frame, cfg)
    overview.update(extra or {})
    ranks = rankings(frame, cfg, truth)
    with staged_dir(out_dir, COMMAND, overwrite) as tmp:
        payload = {"overview": overview, "effects": records}
        (tmp / "effects.json").write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")
        (tmp / "rankings.json").write_text(json.dumps(ranks, indent=2, ensure_ascii=False) + "\n")
        plots = write_plots(records, overview, tmp, cfg.alpha)
        summary = summary_markdown(records, overview, cfg, plots) + rankings_markdown(ranks, cfg)
        (tmp / "summary.md").write_text(summary)
        if dropped_csv:
            (tmp / "dropped_rows.csv").write_text(dropped_csv)
    return records


def _fmt_p(p: float) -> str:
    """p-values for tables."""
    return "<0.001" if p < 0.001 else f"{p:.3f}"


def summary_markdown(
    records: list[dict], overview: dict, cfg: AnalysisConfig, plots: list[str]
) -> str:
    """A readable report: overview, significant effects, then every comparison."""
    lines = [
        "# Rater perception: demographic analysis",
        "",
        f"{overview['raters']} raters, {overview['ratings']} ratings, {overview['responses']} responses "
        f"to {overview['questions']} questions.",
    ]
    if "raters_excluded_attention" in overview:
        lines.append(
            f"Raters excluded by the attention-check rule: {overview['raters_excluded_attention']}."
        )
    lines += [
        "",
        f"Percent difference = group mean / reference mean - 1 (ratings on the 1-5 agreement scale, "
        f"'the answer exhibits X'). {int(cfg.confidence * 100)}% CIs by bootstrap over raters "
        f"({cfg.bootstrap} resamples); p-values from Welch's t-test on per-rater means, "
        f"{cfg.correction}-adjusted over {len(records)} comparisons; effect size is Hedges' g.",
        "",
        "Mean rating per dimension: "
        + ", ".join(f"{d} {m:.2f}" for d, m in overview["means"].items())
        + ".",
        "",
    ]
    lines += [f"![{Path(p).stem}]({p})" for p in plots] + [""]
    significant = sorted(
        (r for r in records if r["significant"]), key=lambda r: -abs(r["pct_diff"])
    )
    lines += [f"## Significant differences (adjusted p < {cfg.alpha})", ""]
    lines += _table(significant) if significant else ["None.", ""]
    lines += ["## All comparisons", ""]
    for attribute in dict.fromkeys(r["attribute"] for r in records):
        lines += [
            f"### {attribute}",
            "",
            *_table([r for r in records if r["attribute"] == attribute]),
        ]
    return "\n".join(lines)


def _table(records: list[dict]) -> list[str]:
    """Markdown table rows for effect records."""
    out = [
        "| dimension | group | reference | mean | ref. mean | % diff | CI | p adj. | g | n raters |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        out.append(
            f"| {r['dimension']} | {r['group']} | {r['reference']} | {r['mean_group']:.2f} | "
            f"{r['mean_reference']:.2f} | {r['pct_diff']:+.1f}% | [{r['ci_low']:+.1f}, {r['ci_high']:+.1f}] | "
            f"{_fmt_p(r['p_adjusted'])} | {r['effect_size']:+.2f} | {r['n_raters']} vs {r['n_raters_reference']} |"
        )
    return [*out, ""]

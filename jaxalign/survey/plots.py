"""PNG plots of the demographic analysis (matplotlib, headless)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from jaxalign.survey import schema

DIM_LABELS = {
    "toxicity": "Toxicity",
    "emotional_awareness": "Emotional\nawareness",
    "sensitivity": "Sensitivity &\nopenness",
    "stereotypical_bias": "Stereotypical\nbias",
    "helpfulness": "Helpfulness",
}


def _pyplot():
    """matplotlib.pyplot on the non-interactive Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"figure.dpi": 110, "font.size": 9, "svg.hashsalt": "jaxalign"})
    return plt


def write_plots(
    records: list[dict], overview: dict, out_dir: Path, alpha: float = 0.05
) -> list[str]:
    """Write heatmap, per-attribute forest plots and rating distributions; return file names."""
    plt = _pyplot()
    names = []
    if records:
        names.append(_heatmap(plt, records, out_dir / "effects_heatmap.png", alpha))
        for attribute in dict.fromkeys(r["attribute"] for r in records):
            subset = [r for r in records if r["attribute"] == attribute]
            names.append(_forest(plt, subset, attribute, out_dir / f"forest_{attribute}.png"))
    names.append(_distributions(plt, overview, out_dir / "rating_distributions.png"))
    return names


def _save(plt, fig, path: Path) -> str:
    """Save a figure without timestamps (reproducible bytes) and close it."""
    fig.savefig(path, metadata={"Software": None}, bbox_inches="tight")
    plt.close(fig)
    return path.name


def _heatmap(plt, records: list[dict], path: Path, alpha: float) -> str:
    """Percent difference vs reference: rows attribute:group, columns dimensions; * = significant."""
    rows = list(dict.fromkeys((r["attribute"], r["group"], r["reference"]) for r in records))
    grid = np.full((len(rows), len(schema.DIMENSIONS)), np.nan)
    stars = np.zeros_like(grid, dtype=bool)
    for r in records:
        i = rows.index((r["attribute"], r["group"], r["reference"]))
        j = schema.DIMENSIONS.index(r["dimension"])
        grid[i, j], stars[i, j] = r["pct_diff"], r["significant"]
    limit = max(10.0, float(np.nanmax(np.abs(grid))))
    fig, ax = plt.subplots(figsize=(7.5, 0.32 * len(rows) + 1.8))
    image = ax.imshow(grid, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if np.isfinite(value):
            ax.text(
                j,
                i,
                f"{value:+.0f}{'*' if stars[i, j] else ''}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if abs(value) > 0.6 * limit else "black",
            )
    ax.set_xticks(range(len(schema.DIMENSIONS)), [DIM_LABELS[d] for d in schema.DIMENSIONS])
    ax.set_yticks(range(len(rows)), [f"{a}: {g} (vs {ref})" for a, g, ref in rows])
    ax.xaxis.tick_top()
    fig.colorbar(image, ax=ax, label="% difference in mean rating vs reference", shrink=0.8)
    ax.set_title(f"How rater groups rate differently (* adjusted p < {alpha:g})", pad=40)
    return _save(plt, fig, path)


def _forest(plt, records: list[dict], attribute: str, path: Path) -> str:
    """One panel per dimension: each group's % difference with its CI."""
    groups = list(dict.fromkeys(r["group"] for r in records))
    fig, axes = plt.subplots(
        1, len(schema.DIMENSIONS), figsize=(12, 0.35 * len(groups) + 1.6), sharey=True
    )
    for ax, dim in zip(axes, schema.DIMENSIONS):
        for i, group in enumerate(groups):
            match = [r for r in records if r["group"] == group and r["dimension"] == dim]
            if not match:
                continue
            r = match[0]
            color = "tab:red" if r["significant"] else "tab:gray"
            ax.errorbar(
                r["pct_diff"],
                i,
                xerr=[[r["pct_diff"] - r["ci_low"]], [r["ci_high"] - r["pct_diff"]]],
                fmt="o",
                color=color,
                capsize=3,
                markersize=4,
            )
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(DIM_LABELS[dim])
        ax.set_xlabel("% vs reference")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(groups)), groups)
    axes[0].invert_yaxis()
    reference = records[0]["reference"]
    fig.suptitle(
        f"{attribute}: difference from '{reference}' (red: significant after correction)", y=1.02
    )
    return _save(plt, fig, path)


def _distributions(plt, overview: dict, path: Path) -> str:
    """Stacked shares of each agreement level per dimension."""
    dims = [d for d in schema.DIMENSIONS if d in overview["distribution"]]
    colors = ["#2166ac", "#92c5de", "#d9d9d9", "#f4a582", "#b2182b"]
    fig, ax = plt.subplots(figsize=(8, 3))
    left = np.zeros(len(dims))
    for level, label in enumerate(schema.LABELS_EN, start=1):
        share = np.array([overview["distribution"][d].get(level, 0.0) for d in dims])
        ax.barh(range(len(dims)), share, left=left, color=colors[level - 1], label=label)
        left += share
    ax.set_yticks(range(len(dims)), [DIM_LABELS[d].replace("\n", " ") for d in dims])
    ax.invert_yaxis()
    ax.set_xlabel("share of ratings ('The answer exhibits ...')")
    ax.legend(ncol=5, bbox_to_anchor=(0.5, -0.35), loc="upper center", frameon=False)
    ax.set_xlim(0, 1)
    return _save(plt, fig, path)

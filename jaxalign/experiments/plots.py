"""The report's plots; same summary, same bytes (Agg, default style, no PNG metadata)."""

from __future__ import annotations

from pathlib import Path

DPI = 80


def _save(fig, path: Path) -> None:
    """Write a PNG without the matplotlib version or any timestamp in it."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=DPI, metadata={"Software": None})
    plt.close(fig)


def _empty(ax, text: str) -> None:
    """A panel that says why it is empty."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _metrics(summary: dict, dimension: str) -> list[dict]:
    """Aggregated rows of one dimension (group 'all')."""
    return [
        c
        for c in summary["conditions"]
        if c.get("dimension") == dimension and c.get("group") == "all"
    ]


def forest(summary: dict, dimension: str, path: Path) -> None:
    """Reduction per condition and scorer, with its interval where the evaluator gave one."""
    import matplotlib.pyplot as plt

    rows = _metrics(summary, dimension)
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.4 * max(len(rows), 1)))
    for y, row in enumerate(rows):
        if row["reduction"] is None:
            continue
        ci = row["reduction_ci"]
        if ci:
            ax.plot(ci, [y, y], color="0.3")
        ax.plot([row["reduction"]], [y], "o", color="C0")
    ax.axvline(0.0, color="0.6", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{r['condition']} ({r['scorer']})" for r in rows])
    ax.invert_yaxis()  # first condition on top, as in the tables
    ax.set_xlabel(f"{dimension}: improvement (tuned vs base)")
    if not rows:
        _empty(ax, "no finished cells")
    _save(fig, path)


def reduction_bars(summary: dict, path: Path) -> None:
    """Each comparison's two reductions side by side."""
    import matplotlib.pyplot as plt

    comps = summary["comparisons"]
    fig, ax = plt.subplots(figsize=(6, 3))
    for i, c in enumerate(comps):
        for j, side in enumerate(("a", "b")):
            value = c.get(f"reduction_{side}")
            if value is not None:
                ax.bar(i + (j - 0.5) * 0.4, value, width=0.4, color=f"C{j}")
    ax.set_xticks(range(len(comps)), [c["name"] for c in comps], rotation=20, ha="right")
    ax.axhline(0.0, color="0.6", lw=0.8)
    ax.set_ylabel("improvement (a: left, b: right)")
    if not comps:
        _empty(ax, "no comparisons configured")
    _save(fig, path)


def group_matrix(summary: dict, dimension: str, path: Path) -> None:
    """Mean difference by the group a cell was trained on (rows) x the judge's group (columns)."""
    import matplotlib.pyplot as plt
    import numpy as np

    cells = [c for c in summary["cells"] if c["status"] == "done"]
    recs = [
        (c["trained_on"], r) for c in cells for r in c["records"] if r["dimension"] == dimension
    ]
    scorers = sorted({r["scorer"] for _, r in recs})
    primary = "judge" if "judge" in scorers else (scorers or [""])[0]  # one scorer per matrix
    recs = [(t, r) for t, r in recs if r["scorer"] == primary]
    rows = sorted({t for t, _ in recs})
    cols = sorted({r["group"] for _, r in recs})
    grid = np.full((len(rows), len(cols)), np.nan)
    for i, t in enumerate(rows):
        for j, g in enumerate(cols):
            vals = [
                r["diff"] for tt, r in recs if tt == t and r["group"] == g and r["diff"] is not None
            ]
            if vals:
                grid[i, j] = float(np.mean(vals))
    fig, ax = plt.subplots(figsize=(2 + 1.2 * max(len(cols), 1), 1 + 0.5 * max(len(rows), 1)))
    if recs:
        image = ax.imshow(grid, cmap="RdBu_r", aspect="auto")
        fig.colorbar(image, ax=ax, label="tuned - base")
        ax.set_xticks(range(len(cols)), cols, rotation=20, ha="right")
        ax.set_yticks(range(len(rows)), rows)
        ax.set_xlabel(f"judge group ({primary})")
        ax.set_ylabel("trained on")
    else:
        _empty(ax, "no finished cells")
    _save(fig, path)


def seed_spread(summary: dict, path: Path) -> None:
    """Each seed's difference per condition and metric (group 'all')."""
    import matplotlib.pyplot as plt

    rows = [c for c in summary["conditions"] if c.get("group") == "all" and c.get("seed_diffs")]
    fig, ax = plt.subplots(figsize=(8, 1.2 + 0.35 * max(len(rows), 1)))
    for y, row in enumerate(rows):
        xs = [d for d in row["seed_diffs"] if d is not None]
        ax.plot(xs, [y] * len(xs), "o", color="C1", alpha=0.7)
    ax.set_yticks(range(len(rows)), [f"{r['condition']}: {r['scorer']}" for r in rows])
    ax.invert_yaxis()
    ax.set_xlabel("tuned - base, one point per seed")
    if not rows:
        _empty(ax, "no finished cells")
    _save(fig, path)


def plots(summary: dict, out: Path) -> None:
    """Every plot of the report into `out`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dims = sorted({c["dimension"] for c in summary["conditions"] if c.get("dimension")})
    dims = dims or sorted({c["dimension"] for c in summary["comparisons"]})
    with plt.style.context("default"):
        for dim in dims:
            forest(summary, dim, out / f"forest_{dim}.png")
            group_matrix(summary, dim, out / f"group_matrix_{dim}.png")
        reduction_bars(summary, out / "reduction_bars.png")
        seed_spread(summary, out / "seed_spread.png")

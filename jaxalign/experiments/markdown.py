"""report.md from an experiment summary (pure text; the numbers come rounded already)."""

from __future__ import annotations


def _f(x, nd: int = 4) -> str:
    """A number for a table ('-' when missing)."""
    return "-" if x is None else f"{x:+.{nd}f}"


def _comparisons(summary: dict) -> list[str]:
    """The comparisons table: ours beside the paper's."""
    lines = ["## Comparisons (ours beside the paper's)", ""]
    if not summary["comparisons"]:
        return [*lines, "(none configured)", ""]
    lines += [
        "| comparison | dimension (scorer) | a vs b | ours | paper |",
        "|---|---|---|---|---|",
    ]
    for c in summary["comparisons"]:
        lines.append(
            f"| {c['name']} | {c['dimension']} ({c['scorer'] or '-'}) | {c['a']} vs {c['b']} | "
            f"{c['ours']} | {c['paper'] or '-'} |"
        )
    return [*lines, ""]


def _conditions(summary: dict) -> list[str]:
    """Mean tuned - base difference per condition and metric."""
    lines = ["## Conditions (tuned - base, mean over finished seeds)", ""]
    lines += ["| condition | dimension | scorer | group | base | diff | reduction | CI | seeds |"]
    lines += ["|---|---|---|---|---|---|---|---|---|"]
    for c in summary["conditions"]:
        if c.get("missing"):
            lines.append(f"| {c['condition']} | missing | | | | | | | |")
            continue
        ci = c["reduction_ci"]
        shown = f"[{ci[0]:+.4f}, {ci[1]:+.4f}]" if ci else "-"
        lines.append(
            f"| {c['condition']} | {c['dimension']} | {c['scorer']} | {c['group']} | "
            f"{c['base_mean']:.4f} | {_f(c['diff'])} | {_f(c['reduction'])} | {shown} | "
            f"{len(c['seeds'])} |"
        )
    return [*lines, ""]


def _gains(summary: dict) -> list[str]:
    """GRPO's reward gain beside the judge's gain, per condition ('-' for DPO: no reward)."""
    rows = summary.get("reward_vs_judge") or []
    if not any(r["reward_gain"] is not None for r in rows):
        return []
    lines = ["## Reward gain beside judge gain (GRPO; DPO has no reward: -)", ""]
    lines += [
        "Tuned - base on the evaluation prompts, each on [0, 1] with higher better: the cell's "
        "own reward functions, and the judge standing in for the reward's heads. A reward "
        "rising much more than the judge (ratio > 2) suggests the reward is being exploited.",
        "",
        "| condition | algorithm | reward gain | judge gain | ratio | warning | seeds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        warn = {True: "**yes**", False: "no", None: "-"}[r["goodhart_warning"]]
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(
            f"| {r['condition']} | {r['algorithm']} | {_f(r['reward_gain'])} | "
            f"{_f(r['judge_gain'])} | {ratio} | {warn} | {r['seeds'] or '-'} |"
        )
    return [*lines, ""]


def _cells(summary: dict) -> list[str]:
    """Every cell and its state."""
    lines = [
        "## Cells",
        "",
        "| cell | condition | seed | algorithm | status |",
        "|---|---|---|---|---|",
    ]
    for c in summary["cells"]:
        state = c["status"] if c["status"] == "done" else f"**{c['status']}**: {c.get('error', '')}"
        lines.append(f"| {c['id']} | {c['condition']} | {c['seed']} | {c['algorithm']} | {state} |")
    return [*lines, ""]


def markdown(summary: dict) -> str:
    """The whole report.md."""
    done = sum(c["status"] == "done" for c in summary["cells"])
    lines = [f"# Experiment {summary['experiment']} ({summary['mode']} mode)", ""]
    if summary["description"]:
        lines += [summary["description"].strip(), ""]
    lines += [f"{done} of {len(summary['cells'])} cells finished."]
    if summary["missing"]:
        lines += ["Missing (left out of every number):", ""]
        lines += [f"- {m}" for m in summary["missing"]]
    lines += [""]
    lines += _comparisons(summary) + _gains(summary) + _conditions(summary) + _cells(summary)
    if summary["notes"]:
        lines += ["## Notes", "", summary["notes"].strip(), ""]
    lines += [
        "Plots: forest_<dimension>.png, reduction_bars.png, group_matrix_<dimension>.png, "
        "seed_spread.png; tables in tables/.",
        "",
    ]
    return "\n".join(lines)

"""Markdown sections for the per-response analysis (rankings.json)."""

from __future__ import annotations

from jaxalign.config import AnalysisConfig


def _ci(rec: dict, fmt: str = "+.2f") -> str:
    """`estimate [low, high]`."""
    return f"{rec['estimate']:{fmt}} [{rec['ci_low']:{fmt}}, {rec['ci_high']:{fmt}}]"


def _matrix(title: str, table: dict) -> list[str]:
    """A square correlation table."""
    dims = list(table)
    lines = [title, "", "| | " + " | ".join(dims) + " |", "|---" * (len(dims) + 1) + "|"]
    for a in dims:
        lines.append(f"| {a} | " + " | ".join(f"{table[a][b]:+.2f}" for b in dims) + " |")
    return [*lines, ""]


def rankings_markdown(ranks: dict, cfg: AnalysisConfig) -> str:
    """Dimension trade-offs, length, rank agreement between groups, planted interactions."""
    pct = int(cfg.confidence * 100)
    lines = ["", "## Responses: dimension trade-offs and length", ""]
    lines += _matrix(
        "Correlation of per-response mean ratings between dimensions:",
        ranks["dimension_correlations"],
    )
    lines += [
        "Correlation of log word count with per-response mean rating: "
        + ", ".join(f"{d} {r:+.2f}" for d, r in ranks["log_words_correlations"].items())
        + ".",
        "",
        "## Do groups rank responses alike?",
        "",
        "Spearman correlation of the two groups' per-response mean ratings; `ceiling` is the "
        "Pearson correlation noise alone would leave if both ranked identically; `agreement` = "
        "Pearson / ceiling (about 1 when groups rank alike). "
        f"{pct}% CIs by bootstrap over raters ({cfg.rank_bootstrap} resamples), centred on the "
        "estimate; comparisons with at least "
        f"{cfg.interaction_min_raters} raters per side. Marked * where the agreement CI lies below 1.",
        "",
    ]
    if ranks["planted"]:
        lines += [
            "### Planted interactions (simulated survey)",
            "",
            "| dimension | group | reference | styles | planted shift | recovered style contrast | agreement |",
            "|---|---|---|---|---|---|---|",
        ]
        for p in ranks["planted"]:
            lines.append(
                f"| {p['dimension']} | {p['attribute']}={p['group']} | {p['reference']} | "
                f"{', '.join(p['styles'])} | {p['shift']:+.2f} | {_ci(p['style_contrast'])} | "
                f"{_ci(p['agreement'])}{' *' if p['differs'] else ''} |"
            )
        lines.append("")
    lines += [
        "| dimension | group | reference | responses | Spearman | ceiling | agreement |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in ranks["comparisons"]:
        lines.append(
            f"| {c['dimension']} | {c['attribute']}={c['group']} | {c['reference']} | {c['responses']} | "
            f"{_ci(c['rank_agreement'])} | {c['ceiling']:.2f} | {_ci(c['agreement'])}"
            f"{' *' if c['differs'] else ''} |"
        )
    return "\n".join([*lines, ""])

"""Text forms of a behaviour evaluation's results.json: the console table and report.md."""

from __future__ import annotations


def _f(x, digits: int = 3) -> str:
    """A number, or '-' for a missing one."""
    return "-" if x is None else f"{x:.{digits}f}"


def _ci(low, high) -> str:
    """'[low, high]' or '-'."""
    return "-" if low is None or high is None else f"[{low:+.3f}, {high:+.3f}]"


def _rows(results: dict, quality: bool):
    """Records of the scorers (quality=False) or the quality figures."""
    return [r for r in results["records"] if (r["scorer"] == "quality") == quality]


def table(results: dict) -> list[str]:
    """Console lines: one per (dimension, scorer, group), tuned - base with its 95% CI."""
    p = results["prompts"]
    s = results["decoding"]["num_samples"]
    lines = [
        f"behaviour on {p['n']} {p['source']} prompts (greedy + {s} samples each), "
        "tuned - base, 95% bootstrap CI over prompts and samples:",
        f"  {'dimension':<20} {'scorer':<10} {'group':<8} {'base':>7} {'tuned':>7} "
        f"{'diff':>7}  {'95% CI':<18} {'p_holm':>6} {'d_z':>6} {'len-adj':>7}",
    ]
    for r in _rows(results, False) + _rows(results, True):
        lines.append(
            f"  {r['dimension']:<20} {r['scorer']:<10} {r['group']:<8} {_f(r['base_mean']):>7} "
            f"{_f(r['tuned_mean']):>7} {_f(r['diff']):>7}  {_ci(r['ci_low'], r['ci_high']):<18} "
            f"{_f(r['p_adj']):>6} {_f(r['effect_size'], 2):>6} "
            f"{_f(r.get('length_adjusted_diff')):>7}"
        )
    gain = reward_line(results.get("reward_vs_judge"))
    return [*lines, f"  {gain}"] if gain else lines


def reward_line(rvj: dict | None) -> str:
    """'reward gain ... beside judge gain ...' of a GRPO run ('' for DPO: no reward)."""
    if not rvj:
        return ""
    g = {k: "-" if rvj.get(k) is None else f"{rvj[k]:+.4f}" for k in ("reward_gain", "judge_gain")}
    ratio = "-" if rvj.get("ratio") is None else f"{rvj['ratio']:.2f}"
    warn = "; WARNING: the reward rose much more than the judge (Goodhart?)"
    return (
        f"GRPO reward gain {g['reward_gain']} (base {_f(rvj.get('reward_base'), 4)}, "
        f"tuned {_f(rvj.get('reward_tuned'), 4)}) beside judge gain {g['judge_gain']} on the "
        f"same [0, 1] scale, higher better; ratio {ratio}"
        + (warn if rvj.get("goodhart_warning") else "")
    )


def render(results: dict) -> str:
    """report.md: what was evaluated, the comparison table, quality figures and the judge."""
    p, d = results["prompts"], results["decoding"]
    out = [
        "# Behaviour evaluation: tuned vs base",
        "",
        f"Run `{results['run_dir']}`, checkpoint step {results['checkpoint_step']}. "
        f"{p['n']} prompts from `{p['source']}` ({p['languages'].get('en', 0)} English, "
        f"{p['languages'].get('de', 0)} German); greedy plus {d['num_samples']} samples "
        f"(temperature {d['temperature']}, top-p {d['top_p']}, {d['max_new_tokens']} new tokens, "
        f"seed {d['seed']}). The prompt is the unit: samples are averaged within a prompt, and "
        "CIs are percentile bootstraps over prompts and samples. p is a sign-flip permutation "
        "test, Holm-adjusted over the scorer rows; d_z = mean / SD of per-prompt differences; "
        "len-adj is the difference after regressing scores on log(1 + words).",
        "",
        "| dimension | scorer | group | base | tuned | diff | 95% CI | p (Holm) | d_z | len-adj |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in _rows(results, False) + _rows(results, True):
        out.append(
            f"| {r['dimension']} | {r['scorer']} | {r['group']} | {_f(r['base_mean'])} | "
            f"{_f(r['tuned_mean'])} | {_f(r['diff'])} | {_ci(r['ci_low'], r['ci_high'])} | "
            f"{_f(r['p_adj'])} | {_f(r['effect_size'], 2)} | "
            f"{_f(r.get('length_adjusted_diff'))} |"
        )
    gain = reward_line(results.get("reward_vs_judge"))
    if gain:
        heads = ", ".join(results["reward_vs_judge"].get("judge_heads") or []) or "-"
        out += ["", "## Reward vs judge (GRPO)", "", f"{gain}. Judge heads: {heads}."]
    out += ["", "## Scorers", ""]
    for name, meta in results["scorers"].items():
        extra = f" ({meta['note']})" if meta.get("note") else ""
        out.append(f"- `{name}`: {meta['package']}, {', '.join(meta['dimensions'])}{extra}")
        if name == "judge":
            invalid = [h for h, v in meta.get("valid", {}).items() if v is False]
            fold = meta.get("fold") or {}
            out.append(
                f"  - judge fold: {fold.get('raters')} raters (hash {fold.get('hash')}); "
                f"invalid heads (held-out Spearman below the minimum): {', '.join(invalid) or 'none'}"
            )
    return "\n".join(out) + "\n"

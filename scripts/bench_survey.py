"""Benchmark the data layer's commands as a user runs them (wall time of the CLI process).

Usage: python scripts/bench_survey.py [--repeats N] [--write docs/BENCHMARKS.md]

Times `jaxalign --help`, and `survey simulate`, `survey analyze` and `prefs build` on the
default survey (1,095 raters) and on a 10x survey (configs/survey/large.yaml), and strict
`survey validate` on a CSV of 10^6 duplicate rows (`--duplicates-only` times just that).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
LIBS = ("numpy", "pandas", "pyarrow", "scipy", "matplotlib")


def run(args: list[str], exit_code: int = 0) -> float:
    """Wall seconds of one `python -m jaxalign ...` process; fails loudly on another exit code."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "jaxalign", *args],
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "TQDM_DISABLE": "1"},
    )
    if proc.returncode != exit_code:
        raise SystemExit(f"{args}: exit {proc.returncode}\n{proc.stderr.decode()}")
    return time.perf_counter() - t0


def timed(args: list[str], repeats: int, exit_code: int = 0) -> tuple[float, float]:
    """(median, min) wall seconds over `repeats` runs."""
    times = [run(args, exit_code) for _ in range(repeats)]
    return statistics.median(times), min(times)


def duplicates_row(tmp: str, repeats: int) -> tuple:
    """Strict `survey validate` of a CSV holding one rating 10^6 times: the first error's time."""
    survey = Path(tmp) / "small"
    run(["survey", "simulate", "--out", str(survey), "--participants", "20"])
    small = Path(tmp) / "small.csv"
    run(["survey", "convert", "--ratings", str(survey / "ratings.parquet"), "--out", str(small)])
    lines = small.read_text(encoding="utf-8").splitlines(keepends=True)
    dups = Path(tmp) / "dups.csv"
    with open(dups, "w", encoding="utf-8") as fh:
        fh.writelines(lines)
        fh.write(lines[1] * 1_000_000)
    med, low = timed(["survey", "validate", "--ratings", str(dups)], repeats, exit_code=1)
    label = f"{len(lines) - 1:,} valid + 10^6 duplicate rows (CSV)"
    return ("survey validate (first error)", label, med, low, repeats)


def bench(repeats: int) -> str:
    """Run every measurement and return a markdown section."""
    rows = []
    help_med, help_min = timed(["--help"], 5)
    rows.append(("`jaxalign --help`", "-", help_med, help_min, 5))
    with tempfile.TemporaryDirectory() as tmp:
        for label, config, reps in (
            ("default (1,095 raters, 27,375 ratings)", None, repeats),
            ("10x (10,950 raters, 273,750 ratings)", "configs/survey/large.yaml", 1),
        ):
            survey = Path(tmp) / ("large" if config else "default")
            sim = ["survey", "simulate", "--out", str(survey)] + (
                ["--config", config] if config else []
            )
            med, low = timed(sim, reps)
            rows.append(("survey simulate", label, med, low, reps))
            ratings = str(survey / "ratings.parquet")
            med, low = timed(
                ["survey", "analyze", "--ratings", ratings, "--out", str(Path(tmp) / "an")], reps
            )
            rows.append(("survey analyze", label, med, low, reps))
            med, low = timed(
                ["prefs", "build", "--ratings", ratings, "--out", str(Path(tmp) / "p.jsonl")], reps
            )
            rows.append(("prefs build (toxicity, 5-point, preserve)", label, med, low, reps))
            med, low = timed(
                [
                    "prefs",
                    "build",
                    "--ratings",
                    ratings,
                    "--out",
                    str(Path(tmp) / "p.jsonl"),
                    "--config",
                    "configs/prefs/multi_value.yaml",
                ],
                reps,
            )
            rows.append(("prefs build (5 dimensions, weighted sum)", label, med, low, reps))
        rows.append(duplicates_row(tmp, 1))
    lines = [
        "## Data layer: simulate, analyze, prefs build",
        "",
        f"Measured {datetime.date.today().isoformat()} with `python scripts/bench_survey.py --repeats {repeats}` "
        f"on {machine(LIBS)}.",
        "Wall time of the whole CLI process (interpreter start, imports, reading, work, writing). "
        "Goal: each command under 10 s on the default survey; the first error in a file of "
        "10^6 duplicate rows in seconds.",
        "",
        "| command | survey | median s | min s | runs |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {cmd} | {survey} | {med:.2f} | {low:.2f} | {n} |" for cmd, survey, med, low, n in rows
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run, print and optionally write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--write", type=Path, help="markdown file whose bench_survey section is replaced"
    )
    parser.add_argument(
        "--duplicates-only", action="store_true", help="print only the 10^6-duplicates row"
    )
    args = parser.parse_args()
    if args.duplicates_only:
        with tempfile.TemporaryDirectory() as tmp:
            cmd, label, med, low, n = duplicates_row(tmp, args.repeats)
        print(f"| {cmd} | {label} | {med:.2f} | {low:.2f} | {n} |")
        return
    section = bench(args.repeats)
    print(section)
    if args.write:
        write_section(args.write, "bench_survey", section)


if __name__ == "__main__":
    main()

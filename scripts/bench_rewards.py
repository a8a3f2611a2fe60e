"""Benchmark ridge rating models: `reward train` and scoring 10k texts on the default survey.

Usage: python scripts/bench_rewards.py [--repeats N] [--write docs/BENCHMARKS.md]

Times the `jaxalign reward train` and `reward score` CLI processes (interpreter start,
imports, reading, work, writing) and, in process, fitting, held-out evaluation, loading
and `score()` on 10,000 texts. Goals: train < 10 s, score 10k texts < 5 s on 2 cores.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_survey import run
from benchlib import machine, write_section

LIBS = ("numpy", "scipy", "pandas", "pyarrow")
GROUPS = '["all", "gender=female", "gender=male", "political_spectrum=liberal", "political_spectrum=conservative"]'


def texts_10k(ratings: Path) -> list[str]:
    """10,000 distinct texts: the bank's responses with a numbered sentence appended."""
    import pandas as pd

    bank = pd.read_parquet(ratings, columns=["response"])["response"].unique().tolist()
    return [f"{bank[i % len(bank)]} Note {i}." for i in range(10_000)]


def in_process(ratings: Path, tmp: Path) -> list[tuple[str, float]]:
    """Seconds for fitting + evaluation, loading, and score() on 10k texts (best of 3)."""
    from jaxalign import rewards
    from jaxalign.config import load_config

    t0 = time.perf_counter()
    rewards.train(ratings, tmp / "m", load_config())
    train_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    model = rewards.load(tmp / "m")
    load_s = time.perf_counter() - t0
    texts = texts_10k(ratings)
    score_s = []
    for _ in range(3):
        t0 = time.perf_counter()
        model.score(None, texts)
        score_s.append(time.perf_counter() - t0)
    return [
        ("train (fit 5 heads + held-out evaluation), in process", train_s),
        ("load the model directory", load_s),
        ("score() 10,000 texts x 5 heads", min(score_s)),
    ]


def bench(repeats: int) -> str:
    """Run every measurement and return a markdown section."""
    from jaxalign.config import SimulateConfig
    from jaxalign.survey.simulate import write_simulation

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_simulation(tmp / "survey", SimulateConfig())
        ratings = tmp / "survey" / "ratings.parquet"
        for label, extra in (
            ("1 group x 5 dimensions", []),
            ("5 groups x 5 dimensions", [f"reward.groups={GROUPS}"]),
        ):
            args = ["reward", "train", "--ratings", str(ratings), "--out", str(tmp / "m"), *extra]
            times = [run(args) for _ in range(repeats)]
            rows.append(
                (f"`reward train` ({label})", statistics.median(times), min(times), repeats)
            )
        records = tmp / "in.jsonl"
        records.write_text(
            "".join(json.dumps({"prompt": "q", "response": t}) + "\n" for t in texts_10k(ratings))
        )
        args = [
            "reward",
            "score",
            "--model",
            str(tmp / "m"),
            "--input",
            str(records),
            "--out",
            str(tmp / "o.jsonl"),
        ]
        times = [run(args) for _ in range(repeats)]
        rows.append(
            (
                "`reward score` 10,000 records (25 heads)",
                statistics.median(times),
                min(times),
                repeats,
            )
        )
        inner = in_process(ratings, tmp)
    lines = [
        "## Rating models: ridge kind",
        "",
        f"Measured {datetime.date.today().isoformat()} with `python scripts/bench_rewards.py --repeats {repeats}` "
        f"on {machine(LIBS)}, on the default simulated survey (1,095 raters, 120 responses, "
        "240 texts in two languages). Goals: train < 10 s, score 10k texts < 5 s on 2 cores.",
        "",
        "| command (CLI process) | median s | min s | runs |",
        "|---|---|---|---|",
        *[f"| {c} | {m:.2f} | {lo:.2f} | {n} |" for c, m, lo, n in rows],
        "",
        "| in process | s |",
        "|---|---|",
        *[f"| {c} | {s:.2f} |" for c, s in inner],
    ]
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run, print and optionally write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--write", type=Path, help="markdown file whose bench_rewards section is replaced"
    )
    args = parser.parse_args()
    section = bench(args.repeats)
    print(section)
    if args.write:
        write_section(args.write, "bench_rewards", section)


if __name__ == "__main__":
    main()

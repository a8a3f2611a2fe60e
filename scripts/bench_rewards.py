"""Benchmark rating models: ridge train/score on the default survey; decoder-kind scoring.

Usage: python scripts/bench_rewards.py [--repeats N] [--write docs/BENCHMARKS.md]

Ridge: times the `jaxalign reward train` and `reward score` CLI processes (interpreter
start, imports, reading, work, writing) and, in process, fitting, held-out evaluation,
loading and `score()` on 10,000 texts. Goals: train < 10 s, score 10k texts < 5 s on 2 cores.
Decoder kind: texts per second of its jitted scoring function (`score_fn` in blocks of
`reward.decoder.score_batch` rows per length bucket, as `score()` runs it) on the bank's
(prompt, response) texts, for the tiny random-init backbone (configs/train/tiny_cpu.yaml)
and SmolLM2-135M, on this machine's default JAX device.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_survey import run
from benchlib import machine, write_section

LIBS = ("numpy", "scipy", "pandas", "pyarrow", "jax", "flax")
ROOT = Path(__file__).resolve().parent.parent
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


def decoder_rate(ratings: Path, config: Path | None, n: int) -> tuple[str, float, float, int]:
    """(backbone, texts per wall second, CPU ms per text, texts) of the decoder kind's scoring,
    after one warm-up pass that compiles every bucket."""
    import jax
    import pandas as pd
    from flax import nnx

    from jaxalign.config import load_config
    from jaxalign.data.chat import pad_id
    from jaxalign.models.spec import build_model
    from jaxalign.rewards import decoder
    from jaxalign.rewards.decoder_data import encode
    from jaxalign.rewards.decoder_run import score_blocks

    cfg = load_config(config)
    model, tokenizer = build_model(cfg.model, None)
    graphdef, backbone = nnx.split(model)
    head = decoder.init_head(model.config.hidden_size, 5, "bradley_terry", 0)
    params = {"backbone": backbone, "head": head, "calib": decoder.init_calib(5)}
    fn = jax.jit(decoder.make_score_fn(graphdef, "bradley_terry"))
    bank = pd.read_parquet(ratings, columns=["prompt", "response"]).drop_duplicates("response")
    reps = -(-n // len(bank))
    prompts = (bank["prompt"].tolist() * reps)[:n]
    ids = encode(
        tokenizer, prompts, (bank["response"].tolist() * reps)[:n], cfg.reward.decoder.max_len
    )
    dcfg, pad = cfg.reward.decoder, pad_id(tokenizer)
    score_blocks(fn, params, ids, dcfg, pad)  # compile every bucket once
    t0, c0 = time.perf_counter(), time.process_time()
    score_blocks(fn, params, ids, dcfg, pad)
    rate, cpu = n / (time.perf_counter() - t0), (time.process_time() - c0) / n
    shape = (
        cfg.model.path
        or f"random init {cfg.model.random.hidden_size}x{cfg.model.random.num_layers}"
    )
    return f"{shape} ({model.config.vocab_size:,} vocab)", rate, 1000 * cpu, n


def decoder_section(ratings: Path) -> list[str]:
    """Markdown rows of the decoder kind's scoring throughput (CPU, GPU when lent)."""
    import jax

    runs = [
        decoder_rate(ratings, ROOT / "configs/train/tiny_cpu.yaml", 480),
        decoder_rate(ratings, None, 32),
    ]
    device = jax.devices()[0]
    lines = [
        "",
        f"Decoder kind, scoring only (`score_fn` jitted; 5 heads; blocks of 8 rows padded to "
        f"each text's length bucket, max_len 256; bank prompt + response in the chat template), "
        f"on {device.platform.upper()} ({device.device_kind}):",
        "",
        "| backbone | texts/s (wall) | CPU ms per text | texts |",
        "|---|---|---|---|",
        *[f"| {b} | {r:.1f} | {c:.1f} | {n} |" for b, r, c, n in runs],
    ]
    if device.platform == "cpu":
        lines.append("| SmolLM2-135M on a GPU | pending (no GPU lent) | | |")
    return lines


def run_cpu(args: list[str]) -> tuple[float, float]:
    """(wall, CPU) seconds of one CLI process; CPU (user + system of the child) is what a busy
    shared machine distorts least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    wall = run(args)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def cli_rows(ratings: Path, tmp: Path, repeats: int) -> list[tuple]:
    """(command, median wall, min wall, median CPU, runs) of reward train and reward score."""
    records = tmp / "in.jsonl"
    records.write_text(
        "".join(json.dumps({"prompt": "q", "response": t}) + "\n" for t in texts_10k(ratings))
    )
    train = ["reward", "train", "--ratings", str(ratings), "--out", str(tmp / "m")]
    score = ["reward", "score", "--model", str(tmp / "m"), "--input", str(records)]
    cases = (
        ("`reward train` (1 group x 5 dimensions)", train),
        ("`reward train` (5 groups x 5 dimensions)", [*train, f"reward.groups={GROUPS}"]),
        ("`reward score` 10,000 records (25 heads)", [*score, "--out", str(tmp / "o.jsonl")]),
    )
    rows = []
    for label, args in cases:
        walls, cpus = zip(*(run_cpu(args) for _ in range(repeats)))
        rows.append((label, statistics.median(walls), min(walls), statistics.median(cpus), repeats))
    return rows


def bench(repeats: int) -> str:
    """Run every measurement and return a markdown section."""
    from jaxalign.checkpoint import git_commit
    from jaxalign.config import SimulateConfig
    from jaxalign.survey.simulate import write_simulation

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_simulation(tmp / "survey", SimulateConfig())
        ratings = tmp / "survey" / "ratings.parquet"
        rows = cli_rows(ratings, tmp, repeats)
        inner = in_process(ratings, tmp)
        decoder_lines = decoder_section(ratings)
    load = (
        f"1-minute load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    )
    lines = [
        "## Rating models",
        "",
        f"Measured {datetime.date.today().isoformat()} at commit {git_commit()[:12]} with "
        f"`python scripts/bench_rewards.py --repeats {repeats}` "
        f"on {machine(LIBS)} ({load}), on the default simulated survey (1,095 raters, "
        "120 responses, 240 texts in two languages). Ridge goals: train < 10 s, score 10k texts "
        "< 5 s on 2 cores. With a load above the 2 cores, wall times are inflated; the CPU "
        "column (user + system seconds of the process) is the better guide then.",
        "",
        "| command (CLI process) | median wall s | min wall s | median CPU s | runs |",
        "|---|---|---|---|---|",
        *[f"| {c} | {m:.2f} | {lo:.2f} | {cpu:.2f} | {n} |" for c, m, lo, cpu, n in rows],
        "",
        "| in process | wall s |",
        "|---|---|",
        *[f"| {c} | {s:.2f} |" for c, s in inner],
        *decoder_lines,
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

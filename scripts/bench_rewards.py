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


def decoder_rate(ratings: Path, config: Path | None, n: int) -> tuple[str, float, int]:
    """(backbone, texts per second, texts) of the decoder kind's scoring, after one warm-up."""
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
    t0 = time.perf_counter()
    score_blocks(fn, params, ids, dcfg, pad)
    rate = n / (time.perf_counter() - t0)
    shape = (
        cfg.model.path
        or f"random init {cfg.model.random.hidden_size}x{cfg.model.random.num_layers}"
    )
    return f"{shape} ({model.config.vocab_size:,} vocab)", rate, n


def decoder_section(ratings: Path) -> list[str]:
    """Markdown rows of the decoder kind's scoring throughput (CPU, GPU when lent)."""
    import jax

    runs = [
        decoder_rate(ratings, ROOT / "configs/train/tiny_cpu.yaml", 480),
        decoder_rate(ratings, None, 64),
    ]
    device = jax.devices()[0]
    lines = [
        "",
        f"Decoder kind, scoring only (`score_fn` jitted; 5 heads; blocks of 8 rows padded to "
        f"each text's length bucket, max_len 256; bank prompt + response in the chat template), "
        f"on {device.platform.upper()} ({device.device_kind}):",
        "",
        "| backbone | texts/s | texts |",
        "|---|---|---|",
        *[f"| {b} | {r:.1f} | {n} |" for b, r, n in runs],
    ]
    if device.platform == "cpu":
        lines.append("| SmolLM2-135M on a GPU | pending (no GPU lent) | |")
    return lines


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
        decoder_lines = decoder_section(ratings)
    from jaxalign.checkpoint import git_commit

    lines = [
        "## Rating models",
        "",
        f"Measured {datetime.date.today().isoformat()} at commit {git_commit()[:12]} with "
        f"`python scripts/bench_rewards.py --repeats {repeats}` "
        f"on {machine(LIBS)}, on the default simulated survey (1,095 raters, 120 responses, "
        "240 texts in two languages). Ridge goals: train < 10 s, score 10k texts < 5 s on 2 cores.",
        "",
        "| command (CLI process) | median s | min s | runs |",
        "|---|---|---|---|",
        *[f"| {c} | {m:.2f} | {lo:.2f} | {n} |" for c, m, lo, n in rows],
        "",
        "| in process | s |",
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

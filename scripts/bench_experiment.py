"""Benchmark one experiment's smoke cells: wall and CPU seconds per cell, stage and sub-stage.

Usage: python scripts/bench_experiment.py [CONFIG] [--mode smoke] [--write docs/BENCHMARKS.md]

Runs `jaxalign experiment run CONFIG --mode MODE --root TMP` in this process (one fresh root,
so the first cell also pays for the once-per-root work: simulating the survey, training the
judge, compiling) with timers around the functions each stage calls. CPU is user + system
seconds of this process (XLA's threads included): on a shared machine it is the fairer
guide; on 2 idle cores a cell's wall time is at most its CPU time. Goal (issue 13): a smoke
cell <= 40 s on 2 cores, not counting the once-per-root work.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import importlib
import os
import resource
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import machine, write_section

ROOT = Path(__file__).resolve().parent.parent
LIBS = ("jax", "flax", "transformers", "onnxruntime", "scikit-learn")
# (module, function, label): what each stage spends its time on. Nested labels are inclusive.
TIMED = (
    ("jaxalign.models.spec", "build_model", "train+eval: build model (tokenizer, random init)"),
    ("jaxalign.algos.dpo_eval", "reference_cache", "train: reference log-probs (train + held-out)"),
    ("jaxalign.algos.dpo_eval", "evaluate", "train: held-out evaluation (base + final)"),
    ("jaxalign.algos.dpo", "fit", "train: steps, evaluation, checkpoint (fit)"),
    ("jaxalign.eval.separation", "resolve_judge", "eval: judge (trained once per root)"),
    ("jaxalign.eval.separation", "train_judge", "eval: judge training"),
    ("jaxalign.eval.generations", "restore_run", "eval: restore tuned checkpoint"),
    ("jaxalign.eval.decode", "cached", "eval: base generations (cached per root)"),
    ("jaxalign.eval.decode", "generate", "eval: generations (base when not cached, tuned)"),
    ("jaxalign.eval.behaviour", "_records", "eval: statistics (bootstrap, Holm)"),
    ("jaxalign.eval.report", "render", "eval: report.md"),
    ("jaxalign.eval.registry", "run_all", "eval: registry evaluators (preferences)"),
)


def cpu_seconds() -> float:
    """User + system seconds of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class Clock:
    """Inclusive wall and CPU seconds per label, per cell."""

    def __init__(self):
        self.cells: list[dict] = []
        self.now: dict = defaultdict(lambda: [0.0, 0.0, 0])

    def wrap(self, module: str, name: str, label: str) -> None:
        """Time every call of module.name under `label` (missing names are skipped)."""
        mod = importlib.import_module(module)
        fn = getattr(mod, name, None)
        if fn is None:
            print(f"(not timed: {module}.{name} not found)")
            return

        @functools.wraps(fn)
        def timed(*args, **kwargs):
            """The call, timed."""
            return self.timed(label, fn, *args, **kwargs)

        setattr(mod, name, timed)

    def timed(self, label: str, fn, *args, **kwargs):
        """fn(*args, **kwargs), its wall and CPU seconds added to `label`."""
        t0, c0 = time.perf_counter(), cpu_seconds()
        try:
            return fn(*args, **kwargs)
        finally:
            slot = self.now[label]
            slot[0] += time.perf_counter() - t0
            slot[1] += cpu_seconds() - c0
            slot[2] += 1

    def wrap_scorers(self) -> None:
        """Each scorer's build and score, by scorer name."""
        from jaxalign.eval import scorers

        build, score, timed = scorers.build, scorers.Scorer.score, self.timed
        scorers.build = lambda name, **kw: timed(f"eval: scorer {name} load", build, name, **kw)
        scorers.Scorer.score = lambda scorer, *a: timed(
            f"eval: scorer {scorer.name} score", score, scorer, *a
        )

    def wrap_cells(self) -> None:
        """Close the timers of each cell when the experiment runner finishes it."""
        from jaxalign.experiments.runner import Runner

        run_cell = Runner.run_cell

        def timed(runner, cell):
            """One cell: its wall and CPU seconds, its stages and sub-stages."""
            self.now.clear()
            t0, c0 = time.perf_counter(), cpu_seconds()
            status = run_cell(runner, cell)
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            parts = {k: tuple(v) for k, v in self.now.items()}
            self.cells.append(
                {"label": cell.label, "wall": wall, "cpu": cpu, "status": status, "parts": parts}
            )
            return status

        Runner.run_cell = timed


def bench(config: str, mode: str) -> tuple[list[dict], float, float, str]:
    """(cells, process wall, process CPU, load note) of one fresh experiment run."""
    import jax  # noqa: F401  (imported first: the timed modules import it at module level)

    clock = Clock()
    for module, name, label in TIMED:
        clock.wrap(module, name, label)
    clock.wrap_scorers()
    clock.wrap_cells()
    from jaxalign.cli import main

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), cpu_seconds()
        rc = main(["experiment", "run", config, "--mode", mode, "--root", tmp])
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    if rc:
        raise SystemExit(f"experiment run exited {rc}")
    note = f"1-minute load average {load:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
    return clock.cells, wall, cpu, note


def section(config: str, mode: str, cells: list[dict], wall: float, cpu: float, note: str) -> str:
    """Markdown: one row per cell, then each cell's stages and sub-stages."""
    from jaxalign.checkpoint import git_commit

    name = Path(config).stem
    lines = [
        f"## Experiments: one {mode} cell",
        "",
        f"Measured {datetime.date.today().isoformat()} at commit {git_commit()[:12]} with "
        f"`python scripts/bench_experiment.py {os.path.relpath(config, ROOT)} --mode {mode}` on "
        f"{machine(LIBS)} ({note}): `{name}` in a fresh root, {len(cells)} cells in one process "
        f"({wall:.1f} s wall, {cpu:.1f} s CPU including imports). The first cell also pays for "
        "the once-per-root work (survey, judge training, base generations, compiling); later "
        "cells show a cell's own cost. CPU = user + system seconds (XLA threads included); on "
        "2 idle cores a cell's wall time is at most its CPU time. Goal: <= 40 s a cell.",
        "",
        "| cell | wall s | CPU s | stages (wall s) |",
        "|---|---|---|---|",
    ]
    for c in cells:
        stages = c["status"].get("stages", {})
        shown = ", ".join(f"{k} {v['s']:.1f}" for k, v in stages.items() if v["action"] == "ran")
        lines.append(f"| {c['label']} | {c['wall']:.1f} | {c['cpu']:.1f} | {shown} |")
    lines += [
        "",
        "| inside a cell (inclusive) | "
        + " | ".join(f"cell {i + 1} wall / CPU s" for i in range(len(cells)))
        + " |",
    ]
    lines.append("|---|" + "---|" * len(cells))
    labels = sorted({k for c in cells for k in c["parts"]})
    for label in labels:
        row = [
            f"{c['parts'][label][0]:.2f} / {c['parts'][label][1]:.2f}"
            if label in c["parts"]
            else "-"
            for c in cells
        ]
        lines.append(f"| {label} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main() -> None:
    """Parse arguments, run, print and optionally write the section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", nargs="?", default=str(ROOT / "configs/experiments/scale.yaml"))
    parser.add_argument("--mode", default="smoke")
    parser.add_argument("--write", type=Path, help="replace the section in this markdown file")
    args = parser.parse_args()
    text = section(args.config, args.mode, *bench(args.config, args.mode))
    print(text)
    if args.write:
        write_section(args.write, "experiments-smoke", text)


if __name__ == "__main__":
    main()

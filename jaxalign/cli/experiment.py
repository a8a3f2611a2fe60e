"""`jaxalign experiment plan|run|report|status CONFIG`: resumable, shardable sweeps.

The only place an experiment meets the trainers (only the CLI imports jaxalign.algos). A
mistake in the experiment file or the options exits 2; a failing cell is recorded in its
status.json and the others go on; `run` then exits 1 saying how many failed.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import sys
from pathlib import Path

from jaxalign.cli.common import EPILOG, add_debug, add_parser
from jaxalign.errors import JaxalignError

MODES = ("smoke", "cpu", "gpu", "full")
ACTIONS = ("plan", "run", "report", "status")
DESCRIPTION = (
    "Expand an experiment (configs/experiments/*.yaml) into cells, one fully resolved config "
    "each, and plan, run, report on or show them. Runs are resumable (finished stages are "
    "skipped) and shardable (--shard i/n, or auto under a SLURM array or Kubernetes Indexed "
    "Job). Outputs go to ROOT/NAME (default ROOT: runs/experiments/MODE)."
)


def available_algorithms() -> tuple[str, ...]:
    """Algorithms the train stage can run now (GRPO once train.algorithm and its trainer exist)."""
    from jaxalign.config.schema import TrainConfig

    names = ["dpo"]
    has_key = any(f.name == "algorithm" for f in dataclasses.fields(TrainConfig))
    if has_key and importlib.util.find_spec("jaxalign.algos.grpo") is not None:
        names.append("grpo")
    return tuple(names)


def trainers() -> dict:
    """Algorithm -> train(cfg), importing jax only when a cell trains."""

    def dpo(cfg):
        """DPO (jaxalign.algos.dpo)."""
        from jaxalign.algos.dpo import train

        return train(cfg, progress=False)

    def grpo(cfg):
        """GRPO (jaxalign.algos.grpo), once it exists."""
        module = importlib.import_module("jaxalign.algos.grpo")
        return module.train(cfg, progress=False)

    table = {"dpo": dpo, "grpo": grpo}
    return {name: table[name] for name in available_algorithms()}


def _setup(args):
    """The experiment, its cells (this shard's) and a runner."""
    from jaxalign.config.experiment import load_experiment
    from jaxalign.experiments.cells import expand, parse_overrides, parse_shard, shard
    from jaxalign.experiments.runner import Runner
    from jaxalign.experiments.stages import blocker, real_stages

    exp = load_experiment(args.config)
    cells = expand(exp, args.mode, parse_overrides(args.overrides))
    i, n = parse_shard(args.shard, dict(os.environ)) if args.shard else (0, 1)
    mine = shard(cells, i, n)
    root = Path(args.root or f"runs/experiments/{args.mode}")
    table = trainers()
    runner = Runner(root, exp.name, real_stages(table), args.rerun, blocker(table))
    return exp, cells, mine, runner, (i, n)


def _state(runner, cell) -> str:
    """A cell's recorded status ('not run' if none)."""
    from jaxalign.experiments.runner import read_json

    status = read_json(runner.cell_dir(cell) / "status.json") or {}
    state = status.get("status", "not run")
    return f"{state}: {status['error']}" if status.get("error") else state


def _preflight(runner, mine) -> None:
    """Refuse (exit 1, nothing written) what would fail every cell late: a judge group with
    too few raters in the judge fold."""
    from jaxalign.experiments import stages
    from jaxalign.experiments.preflight import check_judge_groups

    check_judge_groups(runner, mine, stages.survey_run())


def _rewards(cell) -> str:
    """Where a GRPO cell's rewards come from ('' for other algorithms)."""
    from jaxalign.experiments.stages import needs_reward

    if cell.algorithm != "grpo":
        return ""
    return " (rewards: reward stage)" if needs_reward(cell) else " (rewards: grpo.rewards)"


def cmd_plan(args) -> int:
    """plan: the cells (this shard's), without running or writing anything."""
    exp, cells, mine, runner, (i, n) = _setup(args)
    _preflight(runner, mine)
    print(f"experiment {exp.name} ({args.mode}): {len(cells)} cells; shard {i}/{n}: {len(mine)}")
    for cell in mine:
        why = runner.blocked(cell)
        state = "blocked: " + why if why else _state(runner, cell) + _rewards(cell)
        print(f"  {cell.id}  {cell.label:<40} {state}")
    print(f"outputs: {runner.exp_dir}")
    return 0


def cmd_status(args) -> int:
    """status: every cell's recorded state and counts."""
    from collections import Counter

    from jaxalign.experiments.runner import read_json, stage_seconds

    exp, _cells, mine, runner, _ = _setup(args)
    counts = Counter()
    for cell in mine:
        state = _state(runner, cell)
        counts[state.split(":")[0]] += 1
        status = read_json(runner.cell_dir(cell) / "status.json") or {}
        took = stage_seconds(status, [s.name for s in runner.stages])
        print(f"  {cell.id}  {cell.label:<40} {state}{took}")
    print(f"{exp.name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    return 0


def _use_compile_cache(root: Path) -> None:
    """Share compiled XLA programs between cells and runs (cells differ in data, not shapes).

    Through the environment while jax is not imported yet, so a run whose every stage is done
    never imports it.
    """
    path = str((root / "_shared" / "jax-cache").resolve())
    if "jax" not in sys.modules:
        os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", path)
        os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
        return
    import jax

    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", path)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def cmd_run(args) -> int:
    """run: every cell of this shard; finished stages skipped; failures recorded, not fatal."""
    from jaxalign.experiments.runner import write_json

    exp, cells, mine, runner, (i, n) = _setup(args)
    _preflight(runner, mine)
    print(f"report (after `experiment report`): {runner.exp_dir / 'report' / 'report.md'}")
    plan = [{"id": c.id, "label": c.label, "algorithm": c.algorithm} for c in cells]
    write_json(
        runner.exp_dir / "plan.json", {"experiment": exp.name, "mode": args.mode, "cells": plan}
    )
    if any(not runner.blocked(c) for c in mine):
        _use_compile_cache(runner.root)
    statuses = runner.run(mine)
    counts = {
        s: sum(x["status"] == s for x in statuses) for s in ("done", "failed", "blocked", "busy")
    }
    print(f"shard {i}/{n}: " + ", ".join(f"{v} {k}" for k, v in counts.items()))
    if counts["failed"]:
        raise JaxalignError(
            f"{counts['failed']} of {len(mine)} cells failed (errors in ROOT/NAME/cells/ID/"
            f"status.json; `jaxalign experiment status {args.config}`)"
        )
    return 0


def cmd_report(args) -> int:
    """report: ROOT/NAME/report from whatever cells have finished (the rest shown missing)."""
    from jaxalign.experiments.report import write_report

    exp, cells, _, runner, _ = _setup(args)
    path = write_report(exp, args.mode, runner, cells)
    print(f"wrote {path}/report.md (summary.json, tables/, plots)")
    return 0


def _guarded(fn):
    """Usage mistakes in the experiment or options exit 2 (one line), like argparse's."""
    from jaxalign.config.experiment import ExperimentUsageError

    def call(args) -> int:
        """Run `fn`, mapping ExperimentUsageError to exit 2."""
        try:
            return fn(args)
        except ExperimentUsageError as err:
            print(f"jaxalign experiment {args.action}: error: {err}", file=sys.stderr)
            return 2

    return call


def _parse_known(self, args=None, namespace=None):
    """Like argparse's, but key=value arguments after options still count as overrides."""
    ns, extra = super(type(self), self).parse_known_args(args, namespace)
    late = [e for e in extra if "=" in e and not e.startswith("-")]
    ns.overrides = [*ns.overrides, *late]
    return ns, [e for e in extra if e not in late]


def register(groups) -> None:
    """Add the `experiment` group."""
    funcs = {"plan": cmd_plan, "run": cmd_run, "report": cmd_report, "status": cmd_status}
    p = add_parser(
        groups,
        "experiment",
        help="plan, run and report sweeps",
        description=DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument("action", choices=ACTIONS, help="what to do")
    p.add_argument("config", metavar="CONFIG", help="experiment file (configs/experiments/*.yaml)")
    p.add_argument("--mode", choices=MODES, default="smoke", help="size of every cell")
    p.add_argument("--shard", metavar="i/n|auto", help="run only shard i of n (0-based)")
    p.add_argument("--root", metavar="DIR", help="where runs go (default runs/experiments/MODE)")
    p.add_argument(
        "--rerun", action="store_true", help="redo stages whose inputs changed (else refused)"
    )
    add_debug(p)
    p.add_argument("overrides", nargs="*", metavar="key=value", help="overrides for every cell")
    p.set_defaults(func=lambda args: _guarded(funcs[args.action])(args))
    # `run X.yaml --mode cpu k=v`: argparse ends the positionals at the first option.
    p.__class__ = type("ExperimentParser", (type(p),), {"parse_known_args": _parse_known})

"""One training run in its run directory: lock, resume check, hooks, results.

`fit` is shared by every algorithm: it owns the run directory and the checkpoints and hands
the loop to the `Runner`. Nothing is written into the run directory before the lock is taken
and a resume's config is accepted.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import jax

from jaxalign.checkpoint import Checkpoints, abstract
from jaxalign.config import TrainConfig, dump
from jaxalign.errors import ConfigError, JaxalignError
from jaxalign.logging import MetricsWriter
from jaxalign.train import run_dir as rd
from jaxalign.train.restore import newest_config, restore_latest
from jaxalign.train.runner import Algorithm, Context, Hook, Runner
from jaxalign.train.state import all_finite


def eval_hook(algo: Algorithm, writer: MetricsWriter, every: int) -> Hook:
    """Evaluate the current parameters; log and keep the results (checkpoints read them)."""

    def run(ctx: Context) -> None:
        ctx.evals = algo.evaluate(ctx.state["params"])
        writer.write(ctx.step, ctx.evals)
        ctx.results.update(ctx.evals)

    return Hook(run, every)


def checkpoint_hook(checkpoints: Checkpoints, algo: Algorithm, config: dict, meta: dict, every):
    """Save the state (only if every parameter is finite) with the data position."""

    def run(ctx: Context) -> None:
        if not bool(all_finite(ctx.state)):
            raise JaxalignError(
                f"the parameters became NaN/Inf at step {ctx.step}; stopped without saving "
                f"this state; the last good checkpoint stays in {checkpoints.directory}"
            )
        data = {"iterator": algo.batches.get_state()}
        checkpoints.save(ctx.step, ctx.state, data, config, meta, metrics=ctx.evals or None)

    return Hook(run, every)


def results_hook(run_dir: Path, primary: bool, every: int) -> Hook:
    """Keep results.json current, so a crash or a resume never loses evaluations."""

    def run(ctx: Context) -> None:
        if primary:
            rd.save_results(run_dir, {**ctx.results, "step": ctx.step})

    return Hook(run, every)


def _logger(writer: MetricsWriter, every: int, steps: int):
    """Per-step metrics -> the writer every `every` steps and at the last step."""

    def log(step: int, values: dict) -> None:
        if step % every == 0 or step == steps:
            writer.write(step, values)

    return log


def _base(algo: Algorithm, results: dict) -> dict:
    """Evaluations of the initial parameters as base/* (computed once per run)."""
    if any(k.startswith("base/") for k in results):
        return {}
    return {
        k.replace("eval/", "base/", 1): v for k, v in algo.evaluate(algo.state["params"]).items()
    }


def fit(cfg: TrainConfig, config, algo: Algorithm, meta: dict, allow=(), progress=True) -> dict:
    """Run or resume `algo` in `cfg.run_dir`; returns the results (merged over resumes)."""
    run_dir = rd.prepare(Path(cfg.run_dir))
    primary = jax.process_index() == 0  # run-directory files are written by process 0
    if primary:
        run_dir.mkdir(parents=True, exist_ok=True)
    with rd.locked(run_dir) if primary else contextlib.nullcontext():
        checkpoints = Checkpoints(
            run_dir, cfg.keep_checkpoints, cfg.best_metric, cfg.async_checkpoints
        )
        try:
            return _fit(cfg, config, algo, meta, allow, progress, run_dir, checkpoints)
        finally:
            checkpoints.close()


def _fit(cfg, config, algo, meta, allow, progress, run_dir, checkpoints) -> dict:
    """The body of `fit` once the run directory is owned."""
    from jaxalign.config import to_dict

    new = to_dict(config)
    primary = jax.process_index() == 0
    stored, warned = newest_config(checkpoints), []

    def check(old: dict) -> None:
        """The resume check; an allowed change is logged once (each step's config is read
        twice: here, then again by the restore)."""
        rd.check_resume(old, new, tuple(allow), run_dir, warn=old not in warned)
        warned.append(old)

    if stored is not None:
        check(stored)  # refuse before any evaluation or write
    results = rd.load_results(run_dir) if stored is not None else {}
    base = _base(algo, results)
    restored = restore_latest(checkpoints, abstract(algo.state), check)
    start, state = 0, algo.state
    if restored is not None:
        start, state, data_state = restored
        if start > cfg.steps:
            raise ConfigError(
                f"train.steps: {cfg.steps} is fewer than the {start} steps already done in "
                f"{run_dir}; give train.steps >= {start} (with --allow-change train.steps)"
            )
        algo.batches.set_state(data_state["iterator"])
    base = base or {k: v for k, v in results.items() if k.startswith("base/")}
    results = {**(results if start else {}), **algo.stats, **base}
    if primary:
        rd.write_text(run_dir / "config.yaml", f"# run id {meta['run_id']}\n" + dump(config))
        rd.trim_metrics(run_dir, start)
    writer = MetricsWriter(run_dir)
    try:
        if start == 0:
            writer.write(0, {**algo.stats, **base})  # data counts and base evaluations
        else:
            writer.restart(start + 1)
        hooks = [
            eval_hook(algo, writer, cfg.eval_every),
            checkpoint_hook(checkpoints, algo, new, meta, cfg.checkpoint_every),
            results_hook(run_dir, primary, min(cfg.eval_every, cfg.checkpoint_every)),
        ]
        runner = Runner(algo, hooks, _logger(writer, cfg.log_every, cfg.steps), cfg.peak_tflops)
        runner.run(state, start, cfg.steps, results, progress)
    finally:
        writer.close()
    results["step"] = cfg.steps
    if primary:
        rd.save_results(run_dir, results)
    return results

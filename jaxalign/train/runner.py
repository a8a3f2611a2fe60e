"""The training runner: iterate -> step -> deferred metrics -> NaN guard -> hooks.

Algorithm-agnostic: an algorithm hands the runner an `Algorithm` (its state, its jitted step,
its batches, its evaluation); everything with a cadence (logging, evaluation, checkpoints) is
a `Hook`. Metrics of step n are fetched after step n+1 is dispatched, so the host never
waits on the device except at hook steps.
"""

from __future__ import annotations

import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import jax

from jaxalign.errors import JaxalignError
from jaxalign.progress import bar as progress_bar


@dataclass
class Algorithm:
    """What an algorithm gives the runner.

    `step(state, host_batch) -> (state, device metrics)`; `batches` yields host batches and has
    `get_state`/`set_state` (saved in checkpoints); `evaluate(params) -> {"eval/...": float}`;
    `describe(host_batch) -> {"tokens": float, "flops": {part: float, "total": float}}`;
    `extras(step) -> {name: float}` logged with the step's metrics (e.g. learning rate);
    `progress` maps progress-bar labels to metric names; `stats` are logged once at step 0.
    """

    state: Any
    step: Callable[[Any, dict], tuple[Any, dict]]
    batches: Iterator
    evaluate: Callable[[Any], dict] = lambda params: {}
    describe: Callable[[dict], dict] = lambda host: {}
    extras: Callable[[int], dict] = lambda step: {}
    progress: dict[str, str] = field(default_factory=lambda: {"loss": "train/loss"})
    stats: dict[str, float] = field(default_factory=dict)


@dataclass
class Context:
    """What a hook sees: the completed step count, the state, and the results so far."""

    step: int
    state: Any
    results: dict
    last: bool
    evals: dict = field(default_factory=dict)


@dataclass
class Hook:
    """`fn(context)` every `every` steps (and at the last step when `at_end`)."""

    fn: Callable[[Context], dict | None]
    every: int
    at_end: bool = True

    def due(self, step: int, last: bool) -> bool:
        """Whether the hook runs after `step` completed steps."""
        return step % self.every == 0 or (last and self.at_end)


@dataclass
class _Pending:
    """A dispatched step whose metrics are not fetched yet."""

    step: int
    metrics: Any
    t0: float
    info: dict


def perf_metrics(info: dict, seconds: float, peak_tflops: float) -> dict[str, float]:
    """Throughput of one step from its token and FLOP counts."""
    out = {"perf/step_seconds": seconds}
    if "tokens" in info:
        out["perf/tokens_per_second"] = info["tokens"] / max(seconds, 1e-9)
    flops = info.get("flops")
    if flops:
        rate = flops["total"] / max(seconds, 1e-9)
        out["perf/tflops_per_second"] = rate / 1e12
        out.update({f"perf/flops_{k}": v for k, v in flops.items() if k != "total"})
        if peak_tflops > 0:
            out["perf/mfu"] = rate / (peak_tflops * 1e12 * jax.device_count())
    return out


def fetch(step: int, metrics, algo: Algorithm) -> dict[str, float]:
    """One step's metrics on the host (blocking), with the NaN/Inf guard on the loss."""
    values = {  # timings an algorithm measures itself (perf/...) keep their own namespace
        k if k.startswith("perf/") else f"train/{k}": float(v)
        for k, v in jax.device_get(metrics).items()
    }
    loss = values.get("train/loss", 0.0)
    if not math.isfinite(loss):
        raise JaxalignError(
            f"loss became {loss} at step {step}; stopped without saving this state; "
            "the last good checkpoint stays in the run directory"
        )
    values.update({f"train/{k}": float(v) for k, v in algo.extras(step).items()})
    return values


class Interrupts:
    """Ctrl-C (SIGINT) while training: the first one stops the loop between steps, once the
    step in flight has finished (so no computation or save is cut off and the writers and
    checkpoints close normally); a second one interrupts at once."""

    def __init__(self):
        self.seen, self.previous = False, None

    def __enter__(self) -> Interrupts:
        if threading.current_thread() is threading.main_thread():
            self.previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)

    def _handle(self, signum, frame) -> None:
        """Note the first interrupt; raise on the second."""
        if self.seen:
            raise KeyboardInterrupt
        self.seen = True
        sys.stderr.write("\njaxalign: interrupted: stopping after this step (again: at once)\n")

    def check(self, state) -> None:
        """Raise KeyboardInterrupt, once `state` is computed, if an interrupt was noted."""
        if self.seen:
            jax.block_until_ready(state)
            raise KeyboardInterrupt


class Runner:
    """Runs `algo` from `start` to `steps`, calling step hooks and per-step metric hooks."""

    def __init__(self, algo: Algorithm, hooks: list[Hook], on_metrics, peak_tflops=0.0):
        self.algo, self.hooks, self.on_metrics = algo, hooks, on_metrics
        self.peak_tflops = peak_tflops

    def _fetch(self, pending: _Pending, results: dict, bar) -> None:
        """Fetch, guard and hand on a pending step's metrics."""
        values = fetch(pending.step, pending.metrics, self.algo)
        seconds = time.perf_counter() - pending.t0
        values.update(perf_metrics(pending.info, seconds, self.peak_tflops))
        self.on_metrics(pending.step, values)
        results.update(values)
        bar.update(1)
        shown = {k: f"{values[m]:.4f}" for k, m in self.algo.progress.items() if m in values}
        bar.set_postfix(**shown)

    def run(self, state, start: int, steps: int, results: dict, progress: bool = True):
        """Train from `start` to `steps`; returns the final state."""
        bar = progress_bar(
            total=steps,
            initial=start,
            desc="train",
            unit="step",
            disable=None if progress else True,
        )
        with Interrupts() as interrupts:
            try:
                state = self._loop(state, start, steps, results, bar, interrupts)
            finally:
                bar.close()
        return state

    def _loop(self, state, start: int, steps: int, results: dict, bar, interrupts):
        """The steps, their deferred metrics and hooks; stops between steps on an interrupt."""
        pending = None
        for step in range(start, steps):
            interrupts.check(state)
            host = next(self.algo.batches)
            info = self.algo.describe(host)
            t0 = time.perf_counter()
            state, metrics = self.algo.step(state, host)
            if pending is not None:
                self._fetch(pending, results, bar)
            pending = _Pending(step + 1, metrics, t0, info)
            last = step + 1 == steps
            due = [h for h in self.hooks if h.due(step + 1, last)]
            if due:
                self._fetch(pending, results, bar)
                pending = None
                context = Context(step + 1, state, results, last)
                for hook in due:
                    hook.fn(context)
        if pending is not None:
            self._fetch(pending, results, bar)
        return state

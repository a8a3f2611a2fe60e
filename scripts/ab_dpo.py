"""A/B of the CPU DPO step's speed-ups in one process, step for step (noise-robust).

Usage: python scripts/ab_dpo.py [--off attention,optimizer] [--pairs 2] [--seq 128]
           [--prompt 32] [--dtype fp32] [--layout pairs] [--rounds 9]

A is the step with the named CPU paths switched off at trace time (`attention`: jax.nn's
generic attention instead of `jaxalign.models.cpu_attention`; `optimizer`: optax's update and
norm without `jaxalign.train.optim.optimizer_step`'s CPU ordering); B is the step as shipped.
Both are compiled first, then run A, B, A, B, ... (`--rounds` pairs, after two warm-ups each);
prints each median and the median of the per-pair ratios B/A, which a shared machine's load
moves far less than it moves either time.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax
import jax.numpy as jnp
import optax
from bench_dpo import random_model, synthetic_pairs
from flax import nnx

from jaxalign.config import DataConfig, DPOConfig, OptimConfig
from jaxalign.data.preferences import collate, longest_run
from jaxalign.sharding import make_mesh
from jaxalign.train.dpo import frozen_reference, make_train_step
from jaxalign.train.optim import make_optimizer


def plain_optimizer_step(tx, grads, opt_state, params):
    """optax's update, application and norm as the step had them before."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, optax.tree.norm(grads)


def switches(off: set[str]) -> list:
    """Patches that turn the named CPU paths off while a step is traced."""
    patches = []
    if "attention" in off:
        patches.append(mock.patch("jaxalign.models.cpu_attention.applies", lambda mask: False))
    if "optimizer" in off:
        patches.append(mock.patch("jaxalign.train.dpo.optimizer_step", plain_optimizer_step))
    return patches


def compiled_step(a, off: set[str]):
    """(run one step and return seconds) for the step with `off` paths switched off."""
    mesh = make_mesh(devices=jax.devices()[:1])
    model, cfg = random_model("smollm2-135m", a.dtype, "none", mesh)
    data = synthetic_pairs(a.pairs, a.seq, a.prompt, cfg.vocab_size)
    data_cfg = DataConfig(layout=a.layout)
    width = longest_run(data, a.layout)
    batch = jax.device_put(collate(data, range(len(data)), (width,), 0, None, layout=a.layout))
    tx = make_optimizer(
        OptimConfig(learning_rate=1e-6, warmup_steps=0, schedule="constant", clip_norm=0.0), 100
    )
    graphdef, params = nnx.split(model)
    reference = frozen_reference(params, model.dtype)
    step = make_train_step(graphdef, tx, DPOConfig(reference="model"), data_cfg)
    holder = {
        "state": {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    }
    patches = switches(off)
    for p in patches:
        p.start()
    try:
        step = step.lower(holder["state"], reference, batch).compile()
    finally:
        for p in patches:
            p.stop()

    def run() -> float:
        """One step: (wall, process CPU) seconds to its metrics."""
        t0, c0 = time.perf_counter(), time.process_time()
        holder["state"], metrics = step(holder["state"], reference, batch)
        jax.block_until_ready(metrics["loss"])
        return time.perf_counter() - t0, time.process_time() - c0

    return run


def main() -> None:
    """Compile A and B, alternate, report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--off", default="attention,optimizer")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--layout", choices=["pairs", "shared_prompt"], default="pairs")
    ap.add_argument("--rounds", type=int, default=9)
    a = ap.parse_args()
    off = {s for s in a.off.split(",") if s}
    steps = {"A": compiled_step(a, off), "B": compiled_step(a, set())}
    for run in steps.values():
        run(), run()
    times = {"A": [], "B": []}
    load = [os.getloadavg()[0]]
    for _ in range(a.rounds):
        for name, run in steps.items():
            times[name].append(run())
    load.append(os.getloadavg()[0])
    print(
        f"A: off {','.join(sorted(off)) or 'none'}; B: as shipped; load {load[0]:.1f}->{load[1]:.1f}"
    )
    for i, kind in enumerate(("wall", "CPU")):
        a_s, b_s = [t[i] for t in times["A"]], [t[i] for t in times["B"]]
        ratios = [b / x for x, b in zip(a_s, b_s)]
        print(
            f"{kind}: A median {statistics.median(a_s):.3f} s, B {statistics.median(b_s):.3f} s;"
            f" B/A per pair median {statistics.median(ratios):.3f} (min {min(ratios):.3f}, max "
            f"{max(ratios):.3f}; B faster in {sum(r < 1 for r in ratios)} of {len(ratios)})"
        )


if __name__ == "__main__":
    main()

"""Where a DPO train step's time and FLOPs go: matmul, attention, optimizer, log-softmax.

Usage: python scripts/profile_dpo.py [--shape smollm2-135m] [--pairs 2] [--seq 128]
           [--prompt 32] [--dtype fp32|bf16] [--layout pairs] [--remat none] [--scan-layers]
           [--attention xla|cudnn] [--repeats 5] [--write docs/BENCHMARKS.md --section NAME]

The step is the one `scripts/bench_dpo.py` times (in-step reference, the same model, rows and
optimizer). Each category is a separately jitted piece doing that category's share of the
step's work on arrays of the step's shapes, timed (median of --repeats after a warm-up) and
costed by XLA's cost analysis of its compiled form:

- matmul: every dense projection (q, k, v, o, gate, up, down per layer, and the output
  kernel over the vocabulary) forward for the reference, forward and backward for the policy;
- attention: scores, softmax and weighted sum of every layer (the step's mask, or plain
  causal for `pairs` rows), forward for the reference, forward and backward for the policy;
- log-softmax: log-probabilities of the targets from fp32 logits [rows, T, V] (forward for
  the reference, forward and backward for the policy), without the vocabulary matmul;
- optimizer: the AdamW update, its application and the gradient norm;
- other: the step minus the four (norms, RoPE, embedding, residuals, fusion differences).

Pieces run apart, so their sum can differ from the step (XLA fuses across them there).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax
import jax.numpy as jnp
import numpy as np
from bench_dpo import random_model, synthetic_pairs
from benchlib import machine, write_section
from flax import nnx

from jaxalign.config import DataConfig, DPOConfig, OptimConfig
from jaxalign.data.preferences import collate, longest_run
from jaxalign.models.decoder import REMAT_POLICIES
from jaxalign.sharding import make_mesh
from jaxalign.train.dpo import causal_only, frozen_reference, make_train_step
from jaxalign.train.optim import make_optimizer

CATEGORIES = ("matmul", "attention", "log-softmax", "optimizer")


def timed(fn, args, repeats: int) -> tuple[float, float]:
    """(median seconds, XLA-counted FLOPs) of jit(fn)(*args) after one warm-up call."""
    jitted = jax.jit(fn)
    cost = jitted.lower(*args).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    jax.block_until_ready(jitted(*args))
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(jitted(*args))
        times.append(time.perf_counter() - t0)
    return statistics.median(times), float((cost or {}).get("flops", 0.0))


def fwd_and_grad(f):
    """fn(cot, ref_args, args) -> (f(*ref_args): the reference's forward, d sum(f(*args) * cot):
    the policy's forward and backward). Separate inputs, as in the step (else XLA would share
    the two forwards)."""

    def both(cot, ref_args, args):
        ref = f(*ref_args)
        out, vjp = jax.vjp(f, *args)  # out returned: the step's loss reads the policy's forward
        return ref, out, vjp(cot)

    return both


def twice(*args):
    """(args, a copy of args): the reference's inputs apart from the policy's."""
    return jax.tree.map(jnp.copy, args), args


def dense_shapes(cfg, rows: int, width: int) -> list[tuple[int, int, int]]:
    """(M, K, N) of every dense matmul of one forward pass (per layer, then the output head)."""
    m, d, f = rows * width, cfg.hidden_size, cfg.intermediate_size
    q, kv = cfg.num_heads * cfg.head_dim, cfg.num_kv_heads * cfg.head_dim
    layer = [(m, d, q), (m, d, kv), (m, d, kv), (m, q, d), (m, d, f), (m, d, f), (m, f, d)]
    return layer * cfg.num_layers + [(m, d, cfg.vocab_size)]


def matmul_piece(cfg, rows: int, width: int, dtype, repeats: int):
    """The step's dense matmuls, one after another (unrolled, as the step's layers are), through
    the model's own `dense` (where it has one)."""
    try:
        from jaxalign.models.decoder import dense
    except ImportError:  # model code before `dense`: the plain product it used

        def dense(x, w):
            """x @ w."""
            return x @ w

    shapes = dense_shapes(cfg, rows, width)
    xs = [jnp.full((m, k), 0.01, dtype) for m, k, _ in shapes]
    ws = [jnp.full((k, n), 0.02, jnp.float32) for _, k, n in shapes]
    cot = [jnp.ones((m, n), dtype) for m, _, n in shapes]
    f = fwd_and_grad(lambda xs, ws: [dense(x, w.astype(dtype)) for x, w in zip(xs, ws)])
    return timed(f, (cot, *twice(xs, ws)), repeats)


def attention_piece(cfg, batch: dict, causal: bool, dtype, repeats: int, implementation="xla"):
    """Attention of every layer (scores, softmax, weighted sum) on the step's rows and mask."""
    from jaxalign.models.decoder import attention_mask

    rows, width = batch["tokens"].shape
    key = jax.random.key(1)
    # per-layer arrays, not one stacked array: slicing a stacked array would add the
    # gradient's pad-and-add accumulation over layers, which the step does not do
    q = list(
        jax.random.normal(key, (cfg.num_layers, rows, width, cfg.num_heads, cfg.head_dim), dtype)
    )
    kv = list(
        jax.random.normal(key, (cfg.num_layers, rows, width, cfg.num_kv_heads, cfg.head_dim), dtype)
    )
    pos, seg, br = batch["positions"], batch["segment_ids"], batch["branch"]
    mask = None if causal else attention_mask(pos, seg, pos, seg, cfg.sliding_window, br, br)
    scale = 1.0 / np.sqrt(cfg.head_dim)

    cudnn = implementation == "cudnn"

    def layer(a):
        """One layer's attention core (as `Attention` calls it: cuDNN is always causal; on CPU
        `jaxalign.models.cpu_attention` where the model has it)."""
        try:
            from jaxalign.models import cpu_attention
        except ImportError:  # model code before the CPU path
            cpu_attention = None
        if cpu_attention is not None and not cudnn and cpu_attention.applies(mask):
            return cpu_attention.attention(a[0], a[1], a[2], mask, scale, cfg.sliding_window)
        return jax.nn.dot_product_attention(
            a[0],
            a[1],
            a[2],
            mask=mask,
            scale=scale,
            is_causal=mask is None or cudnn,
            implementation="cudnn" if cudnn else None,
        )

    f = fwd_and_grad(lambda q, k, v: [layer((q[i], k[i], v[i])) for i in range(len(q))])
    return timed(f, ([jnp.ones_like(q[0])] * cfg.num_layers, *twice(q, kv, kv)), repeats)


def logsoftmax_piece(cfg, rows: int, width: int, repeats: int):
    """Target log-probabilities from fp32 logits [rows, T, V] (the log-prob code's softmax)."""
    logits = jax.random.normal(jax.random.key(2), (rows, width, cfg.vocab_size), jnp.float32)
    targets = jnp.zeros((rows, width), jnp.int32)

    def logp(z):
        """log softmax(z)[targets]."""
        picked = jnp.take_along_axis(z, targets[..., None], axis=-1)[..., 0]
        return picked - jax.nn.logsumexp(z, axis=-1)

    return timed(fwd_and_grad(logp), (jnp.ones((rows, width)), *twice(logits)), repeats)


def optimizer_piece(tx, params, repeats: int):
    """AdamW's update and its application (plus the gradient norm), as in the step."""
    import optax

    def update(grads, opt_state, params):
        """One optimizer update."""
        updates, opt_state = tx.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, optax.tree.norm(grads)

    grads = jax.tree.map(lambda p: jnp.full_like(p, 1e-3), params)
    return timed(update, (grads, tx.init(params), params), repeats)


def step_piece(model, batch, reference_params, tx, data_cfg, repeats: int):
    """The whole DPO step (state donated, as in training): (median s, FLOPs)."""
    graphdef, params = nnx.split(model)
    step = make_train_step(graphdef, tx, DPOConfig(reference="model"), data_cfg)
    state = {
        "params": jax.tree.map(jnp.copy, params),
        "opt_state": tx.init(params),
        "step": jnp.zeros((), jnp.int32),
    }
    cost = step.lower(state, reference_params, batch).compile().cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    times = []
    for i in range(repeats + 2):
        t0 = time.perf_counter()
        state, metrics = step(state, reference_params, batch)
        jax.block_until_ready(metrics["loss"])
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), float((cost or {}).get("flops", 0.0))


def profile(a) -> dict:
    """{category: (seconds, flops)} for the step and each piece."""
    mesh = make_mesh(devices=jax.devices()[:1])
    model, cfg = random_model(a.shape, a.dtype, a.remat, mesh, a.attention, a.scan_layers)
    data = synthetic_pairs(a.pairs, a.seq, a.prompt, cfg.vocab_size)
    data_cfg = DataConfig(layout=a.layout)
    width = longest_run(data, a.layout)
    batch = jax.device_put(collate(data, range(len(data)), (width,), 0, None, layout=a.layout))
    rows, width = batch["tokens"].shape
    tx = make_optimizer(
        OptimConfig(learning_rate=1e-6, warmup_steps=0, schedule="constant", clip_norm=0.0), 100
    )
    params = nnx.split(model)[1]
    reference = frozen_reference(params, model.dtype)
    out = {"step": step_piece(model, batch, reference, tx, data_cfg, a.repeats)}
    out["matmul"] = matmul_piece(cfg, rows, width, model.dtype, a.repeats)
    causal = causal_only(data_cfg)
    out["attention"] = attention_piece(cfg, batch, causal, model.dtype, a.repeats, a.attention)
    out["log-softmax"] = logsoftmax_piece(cfg, rows, width, a.repeats)
    out["optimizer"] = optimizer_piece(tx, params, a.repeats)
    return out, (rows, width)


def commit() -> str:
    """Short git commit of this checkout (with '+dirty' when it has uncommitted changes)."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=root
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            cwd=root,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return (head or "unknown") + ("+dirty" if dirty else "")


def load() -> str:
    """The 1-minute load average, where the OS reports it."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except OSError:
        return "?"


def table(a, out: dict, rows: int, width: int, load_before: str) -> str:
    """The markdown section."""
    step_s, step_fl = out["step"]
    rest = step_s - sum(out[c][0] for c in CATEGORIES)
    rest_fl = step_fl - sum(out[c][1] for c in CATEGORIES)
    lines = [
        f"## DPO step profile: {a.shape}, {a.pairs} pairs x {a.seq} tokens, {a.dtype}, "
        f"{a.layout} rows, remat {a.remat}{', scanned layers' if a.scan_layers else ''}, "
        f"{a.attention} attention, "
        f"{jax.devices()[0].device_kind}",
        "",
        f"Measured {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC at commit {commit()} "
        f"with `python scripts/profile_dpo.py {' '.join(sys.argv[1:])}` on "
        f"{machine(('jax', 'jaxlib', 'flax', 'optax'))}; 1-minute load average {load_before} "
        f"at the start, {load()} at the end. In-step reference, rows {rows} x {width}; medians "
        f"of {a.repeats} runs; FLOPs from XLA's cost analysis of each compiled piece "
        "(see the script's docstring for what each piece holds).",
        "",
        "| part | s | share of step | GFLOP | GFLOP/s |",
        "|---|---|---|---|---|",
    ]
    for name in ("step", *CATEGORIES):
        sec, fl = out[name]
        lines.append(
            f"| {name} | {sec:.3f} | {sec / step_s:.0%} | {fl / 1e9:,.4g} | {fl / 1e9 / sec:,.3g} |"
        )
    lines.append(
        f"| other (step - parts) | {rest:.3f} | {rest / step_s:.0%} | {rest_fl / 1e9:,.4g} | - |"
    )
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """Command-line options."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--shape", default="smollm2-135m")
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--layout", choices=["pairs", "shared_prompt"], default="pairs")
    ap.add_argument("--remat", choices=sorted(REMAT_POLICIES), default="none")
    ap.add_argument("--scan-layers", action="store_true")
    ap.add_argument("--attention", choices=["xla", "cudnn"], default="xla")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--write", type=Path)
    ap.add_argument("--section", default="profile_dpo_cpu")
    return ap


def main() -> None:
    """Profile and report."""
    a = parser().parse_args()
    load_before = load()
    out, (rows, width) = profile(a)
    section = table(a, out, rows, width, load_before)
    print(section)
    if a.write:
        write_section(a.write, a.section, section)


if __name__ == "__main__":
    main()

"""Time jaxalign's DPO train step beside the PyTorch + transformers reference, in one run.

Usage: python scripts/bench_dpo.py --torch-ref ../shared/bench/torch_dpo_reference.py \
           [--shape smollm2-135m] [--pairs 2] [--seq 128] [--prompt 32] [--dtype fp32|bf16] \
           [--steps 5] [--remat none|full|dots_saveable|...] [--scan-layers]
           [--peak-tflops 989] [--write docs/BENCHMARKS.md --section NAME]

Both sides: a randomly initialised Llama of the named shape, policy forward+backward, frozen
reference forward, AdamW. Each pair is a prompt of --prompt tokens and two replies that fill
--seq tokens each (what the torch script computes). jaxalign builds its batches with the real
row pipeline (`collate`) in each --layouts entry (shared_prompt: the prompt once per pair;
pairs: chosen and rejected rows, as the torch script does) and is timed with the in-step
reference and, for the first layout, with a cached reference (log-probs in the batch).
Tokens/s counts 2 * pairs * seq per step on every side (the pair tokens, as the torch script
counts them); "MFU" uses the torch script's FLOP formula for those tokens, so work a layout
saves shows up as speed; "HFU" counts the FLOPs jaxalign's rows actually compute.
The torch runs go first, before jax claims accelerator memory.
"""

from __future__ import annotations

import argparse
import datetime
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax
import jax.numpy as jnp
import numpy as np
from benchlib import SHAPES, machine, shape_config, write_section
from flax import nnx

from jaxalign.algos.dpo_eval import step_flops
from jaxalign.config import DataConfig, DPOConfig, OptimConfig
from jaxalign.data.preferences import Encoded, collate, longest_run
from jaxalign.models.config import ModelConfig
from jaxalign.models.decoder import REMAT_POLICIES
from jaxalign.models.loading import DTYPES, build, random_tensors
from jaxalign.models.weights import param_table
from jaxalign.sharding import make_mesh
from jaxalign.train.dpo import frozen_reference, make_train_step
from jaxalign.train.optim import make_optimizer


def random_model(
    shape: str, dtype: str, remat: str, mesh, attention: str = "xla", scan_layers: bool = False
):
    """A Llama of the named shape with N(0, 0.02) weights, placed on `mesh`."""
    cfg = shape_config(shape)
    tensors = random_tensors(cfg)
    # fp32 master weights, compute in the requested dtype (as the reference's autocast does)
    return build(
        cfg,
        tensors,
        dtype=DTYPES[dtype],
        param_dtype=jnp.float32,
        mesh=mesh,
        remat=remat,
        attention=attention,
        scan_layers=scan_layers,
    ), cfg


def synthetic_pairs(pairs: int, seq: int, prompt: int, vocab: int) -> Encoded:
    """Pairs of a random `prompt`-token prompt and two random replies of seq - prompt tokens."""
    rng = np.random.default_rng(1)
    data = Encoded(groups=["all"])
    for _ in range(pairs):
        p = rng.integers(0, vocab, prompt, dtype=np.int32)
        data.chosen.append(np.concatenate([p, rng.integers(0, vocab, seq - prompt, np.int32)]))
        data.rejected.append(np.concatenate([p, rng.integers(0, vocab, seq - prompt, np.int32)]))
        data.prompt_len.append(prompt)
        data.weight.append(1.0)
        data.soft_label.append(1.0)
        data.group.append(0)
    return data


def jax_step_seconds(model, data: Encoded, layout: str, steps: int, reference: str):
    """(median seconds of one DPO step, rows, row length) with the reference 'model' or 'cache'."""
    graphdef, params = nnx.split(model)
    params = jax.tree.map(
        jnp.copy, params
    )  # the step donates its state; keep the model's arrays alive
    tx = make_optimizer(
        OptimConfig(learning_rate=1e-6, warmup_steps=0, schedule="constant", clip_norm=0.0), 100
    )
    data_cfg = DataConfig(layout=layout)
    step = make_train_step(graphdef, tx, DPOConfig(reference=reference), data_cfg)
    width = longest_run(data, layout)
    ref = np.zeros((len(data), 2), np.float32) if reference == "cache" else None
    host = collate(data, range(len(data)), (width,), 0, ref, layout=layout)
    batch = jax.device_put(host)
    ref_params = frozen_reference(params, model.dtype) if reference == "model" else None
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        state, metrics = step(state, ref_params, batch)
        jax.block_until_ready(metrics["loss"])
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times), host["tokens"].shape


def peak_gib() -> str:
    """' (N GiB peak)' of the accelerator so far in this process, where the backend reports it."""
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return f" ({peak / 2**30:.2f} GiB peak so far)" if peak else ""


def flops(cfg: ModelConfig, pairs: int, seq: int, n_params: int) -> float:
    """The reference script's FLOPs per step (policy fwd+bwd, reference fwd, causal attention)."""
    tokens = 2 * pairs * seq
    attn = 12 * cfg.num_layers * cfg.hidden_size * seq * seq / 2 * (2 * pairs)
    return 6 * n_params * tokens + 2 * n_params * tokens + attn + attn / 3


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options (`--remat` takes every `model.remat` policy the model has)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-ref", type=Path, required=True)
    ap.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES))
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--remat", choices=list(REMAT_POLICIES), default="none")
    ap.add_argument(
        "--scan-layers", action="store_true", help="model.scan_layers: one lax.scan over the layers"
    )
    ap.add_argument("--layouts", default="shared_prompt,pairs", help="comma list of data.layout")
    ap.add_argument("--attention", choices=["xla", "cudnn"], default="xla")
    ap.add_argument(
        "--references",
        default="model,cache",
        help="in-step reference ('model', every layout) and/or cached ('cache', first layout)",
    )
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument(
        "--peak-tflops", type=float, default=0.0, help="for MFU/HFU (H100 SXM dense bf16: 989)"
    )
    ap.add_argument(
        "--torch-compile", action="store_true", help="also time the reference with --compile"
    )
    ap.add_argument(
        "--torch-timeout", type=float, help="seconds each torch run may take (its row says so)"
    )
    ap.add_argument("--write", type=Path)
    ap.add_argument("--section", default="bench_dpo_cpu")
    return ap.parse_args(argv)


def main() -> None:
    """Run both sides and report."""
    a = parse_args()

    rows = []
    variants = [[]] + ([["--compile"]] if a.torch_compile else [])
    for extra in variants:  # torch first: jax would otherwise hold the accelerator's memory
        cmd = [
            sys.executable,
            str(a.torch_ref),
            "--shape",
            a.shape,
            "--pairs",
            str(a.pairs),
            "--seq",
            str(a.seq),
            "--prompt",
            str(a.prompt),
            "--steps",
            str(a.steps),
            "--dtype",
            a.dtype,
            "--peak-tflops",
            str(a.peak_tflops or 989.0),
            *extra,
        ]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=a.torch_timeout)
        except subprocess.TimeoutExpired:  # keep the jaxalign rows (bench_gpu.sh's budget)
            label = f"torch+transformers{' '.join(extra)} (timed out after {a.torch_timeout:g} s)"
            rows.append((label, None, None, None, None))
            continue
        if done.returncode:
            print(done.stderr[-3000:], file=sys.stderr)
            rows.append((f"torch+transformers{' '.join(extra)} (failed)", None, None, None, None))
            continue
        out = json.loads(done.stdout.strip().splitlines()[-1])
        mem = f" ({out['peak_mem_gib']} GiB peak)" if out.get("peak_mem_gib") else ""
        mfu = out["mfu"] if a.peak_tflops else None
        rows.append((out["impl"] + mem, out["median_step_s"], out["tokens_per_s"], mfu, None))
    mesh = make_mesh(devices=jax.devices()[:1])
    model, cfg = random_model(a.shape, a.dtype, a.remat, mesh, a.attention, a.scan_layers)
    n_params = sum(int(np.prod(p.get_value().shape)) for _, p, _, _ in param_table(model))
    tokens = 2 * a.pairs * a.seq
    data = synthetic_pairs(a.pairs, a.seq, a.prompt, cfg.vocab_size)
    layouts = a.layouts.split(",")
    refs = a.references.split(",")
    runs = [(layout, "model") for layout in layouts if "model" in refs]
    runs += [(layouts[0], "cache")] if "cache" in refs else []
    for layout, reference in runs:
        model_opts = (f", remat {a.remat}" if a.remat != "none" else "") + (
            ", scanned layers" if a.scan_layers else ""
        )
        name = (
            f"jaxalign {layout} ({'in-step' if reference == 'model' else 'cached'} reference"
            f", {a.attention} attention{model_opts})"
        )
        try:
            seconds, (n_rows, width) = jax_step_seconds(model, data, layout, a.steps, reference)
        except Exception as err:  # e.g. out of memory: report it, keep the other rows
            print(f"{name}: {type(err).__name__}: {str(err)[:2000]}", file=sys.stderr)
            rows.append((f"{name}: failed ({type(err).__name__})", None, None, None, None))
            continue
        mfu = hfu = None
        if a.peak_tflops:
            work = flops(cfg, a.pairs, a.seq, n_params)
            if reference == "cache":
                work -= 2 * n_params * tokens
            mfu = work / seconds / (a.peak_tflops * 1e12)
            hw = step_flops(model, n_rows, width, reference == "model")["total"]
            hfu = hw / seconds / (a.peak_tflops * 1e12)
        label = f"{name}, rows {n_rows} x {width}{peak_gib()}"
        rows.append((label, seconds, tokens / seconds, mfu, hfu))
    torch_tps = next((r[2] for r in rows if r[0].startswith("torch+transformers ")), None)
    torch_tps = torch_tps or next((r[2] for r in rows if r[0] == "torch+transformers"), None)
    lines = [
        f"## DPO step: {a.shape}, {a.pairs} pairs x {a.seq} tokens, {a.dtype}, {jax.devices()[0].device_kind}",
        "",
        f"Measured {datetime.date.today().isoformat()} with `python scripts/bench_dpo.py {' '.join(sys.argv[1:])}` "
        f"on {machine(('jax', 'jaxlib', 'flax', 'optax', 'torch', 'transformers'))}.",
        f"Random-init Llama of the named shape ({n_params / 1e6:.0f}M parameters) on both sides; median of "
        f"{a.steps} steps after warm-up. Tokens/s: pair tokens (2 x pairs x seq) per second on "
        "every side. MFU: the torch script's FLOPs for those tokens (without the reference "
        "forward for the cached reference) per second; HFU: the FLOPs jaxalign's rows compute "
        "(padding included); "
        + (f"both against {a.peak_tflops:g} TFLOP/s." if a.peak_tflops else "not computed here."),
        "",
        "| implementation | step s | tokens/s | vs torch eager | MFU | HFU |",
        "|---|---|---|---|---|---|",
    ]
    for name, sec, tps, mfu, hfu in rows:
        if sec is None:
            lines.append(f"| {name} | - | - | - | - | - |")
            continue
        ratio = f"{tps / torch_tps:.2f}x" if torch_tps else "-"
        mfu_s = f"{mfu:.3f}" if mfu is not None else "-"
        hfu_s = f"{hfu:.3f}" if hfu is not None else "-"
        lines.append(f"| {name} | {sec:.3f} | {tps:,.0f} | {ratio} | {mfu_s} | {hfu_s} |")
    section = "\n".join(lines)
    print(section)
    if a.write:
        write_section(a.write, a.section, section)


if __name__ == "__main__":
    main()

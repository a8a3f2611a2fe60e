"""Time jaxalign's DPO train step beside the PyTorch + transformers reference, in one run.

Usage: python scripts/bench_dpo.py --torch-ref ../shared/bench/torch_dpo_reference.py \
           [--shape smollm2-135m] [--pairs 2] [--seq 128] [--prompt 32] [--dtype fp32|bf16] \
           [--steps 5] [--peak-tflops 989] [--write docs/BENCHMARKS.md --section NAME]

Both sides: a randomly initialised Llama of the named shape, policy forward+backward, frozen
reference forward, AdamW; jaxalign is timed with the in-step reference and with a cached
reference (log-probs in the batch). Tokens/s counts 2 * pairs * seq per step; MFU uses the
reference script's FLOP formula (6N + 2N per token plus causal attention).
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
from benchlib import machine, write_section
from flax import nnx

from jaxalign.config import DataConfig, DPOConfig, OptimConfig
from jaxalign.models.config import ModelConfig
from jaxalign.models.loading import DTYPES, build, random_tensors
from jaxalign.models.weights import param_table
from jaxalign.sharding import make_mesh
from jaxalign.train.dpo import make_optimizer, make_train_step

SHAPES = {  # the reference script's shapes: (hidden, layers, heads, kv_heads, ffn, vocab, tie)
    "smollm2-135m": (576, 30, 9, 3, 1536, 49152, True),
    "qwen2.5-0.5b-like": (896, 24, 14, 2, 4864, 151936, True),
    "llama-1b": (2048, 16, 32, 8, 8192, 128256, True),
    "llama-3b": (3072, 28, 24, 8, 8192, 128256, True),
}


def random_model(shape: str, dtype: str, remat: str, mesh):
    """A Llama of the named shape with N(0, 0.02) weights, placed on `mesh`."""
    d, layers, h, kv, ff, vocab, tie = SHAPES[shape]
    cfg = ModelConfig(
        family="llama",
        vocab_size=vocab,
        hidden_size=d,
        intermediate_size=ff,
        num_layers=layers,
        num_heads=h,
        num_kv_heads=kv,
        head_dim=d // h,
        tie_word_embeddings=tie,
        rms_norm_eps=1e-6,
    )
    tensors = random_tensors(cfg)
    # fp32 master weights, compute in the requested dtype (as the reference's autocast does)
    return build(
        cfg, tensors, dtype=DTYPES[dtype], param_dtype=jnp.float32, mesh=mesh, remat=remat
    ), cfg


def jax_step_seconds(model, pairs: int, seq: int, prompt: int, steps: int, reference: str) -> float:
    """Median seconds of one DPO step (reference 'model' in-step, or 'cache')."""
    graphdef, params = nnx.split(model)
    params = jax.tree.map(
        jnp.copy, params
    )  # the step donates its state; keep the model's arrays alive
    tx = make_optimizer(
        OptimConfig(learning_rate=1e-6, warmup_steps=0, schedule="constant", clip_norm=0.0), 100
    )
    step = make_train_step(graphdef, tx, DPOConfig(reference=reference), DataConfig())
    rng = np.random.default_rng(1)
    mask = np.ones((pairs, 2, seq), np.float32)
    mask[:, :, :prompt] = 0
    batch = {
        "tokens": jnp.asarray(rng.integers(0, model.config.vocab_size, (pairs, 2, seq)), jnp.int32),
        "loss_mask": jnp.asarray(mask),
        "segment_ids": jnp.ones((pairs, 2, seq), jnp.int32),
        "positions": jnp.broadcast_to(jnp.arange(seq, dtype=jnp.int32), (pairs, 2, seq)),
        "weights": jnp.ones(pairs),
        "soft_labels": jnp.ones(pairs),
        "valid": jnp.ones(pairs),
    }
    ref_params = None
    if reference == "model":
        ref_params = jax.tree.map(jnp.copy, params)
    else:
        batch["ref_logps"] = jnp.zeros((pairs, 2))
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        state, metrics = step(state, ref_params, batch)
        jax.block_until_ready(metrics["loss"])
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def flops(cfg: ModelConfig, pairs: int, seq: int, n_params: int) -> float:
    """The reference script's FLOPs per step (policy fwd+bwd, reference fwd, causal attention)."""
    tokens = 2 * pairs * seq
    attn = 12 * cfg.num_layers * cfg.hidden_size * seq * seq / 2 * (2 * pairs)
    return 6 * n_params * tokens + 2 * n_params * tokens + attn + attn / 3


def main() -> None:
    """Run both sides and report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--torch-ref", type=Path, required=True)
    ap.add_argument("--shape", default="smollm2-135m", choices=sorted(SHAPES))
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--prompt", type=int, default=32)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--remat", choices=["none", "full"], default="none")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--peak-tflops", type=float, default=989.0)
    ap.add_argument(
        "--torch-compile", action="store_true", help="also time the reference with --compile"
    )
    ap.add_argument("--write", type=Path)
    ap.add_argument("--section", default="bench_dpo_cpu")
    a = ap.parse_args()

    mesh = make_mesh(devices=jax.devices()[:1])
    model, cfg = random_model(a.shape, a.dtype, a.remat, mesh)
    n_params = sum(int(np.prod(p.get_value().shape)) for _, p, _, _ in param_table(model))
    tokens = 2 * a.pairs * a.seq
    rows = []
    for reference in ("model", "cache"):
        seconds = jax_step_seconds(model, a.pairs, a.seq, a.prompt, a.steps, reference)
        mfu = flops(cfg, a.pairs, a.seq, n_params) / seconds / (a.peak_tflops * 1e12)
        rows.append(
            (
                f"jaxalign ({'in-step reference' if reference == 'model' else 'cached reference'})",
                seconds,
                tokens / seconds,
                mfu,
            )
        )
    variants = [[]] + ([["--compile"]] if a.torch_compile else [])
    for extra in variants:
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
            str(a.peak_tflops),
            *extra,
        ]
        out = json.loads(
            subprocess.run(cmd, check=True, capture_output=True, text=True)
            .stdout.strip()
            .splitlines()[-1]
        )
        rows.append((out["impl"], out["median_step_s"], out["tokens_per_s"], out["mfu"]))
    torch_tps = next(r[2] for r in rows if r[0] == "torch+transformers")
    lines = [
        f"## DPO step: {a.shape}, {a.pairs} pairs x {a.seq} tokens, {a.dtype}, {jax.devices()[0].device_kind}",
        "",
        f"Measured {datetime.date.today().isoformat()} with `python scripts/bench_dpo.py {' '.join(sys.argv[1:])}` "
        f"on {machine(('jax', 'jaxlib', 'flax', 'optax', 'torch', 'transformers'))}.",
        f"Random-init Llama of the named shape ({n_params / 1e6:.0f}M parameters) on both sides; median of "
        f"{a.steps} steps after warm-up; MFU against {a.peak_tflops:g} TFLOP/s.",
        "",
        "| implementation | step s | tokens/s | vs torch eager | MFU |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {s:.3f} | {tps:,.0f} | {tps / torch_tps:.2f}x | {mfu:.4f} |"
        for name, s, tps, mfu in rows
    ]
    section = "\n".join(lines)
    print(section)
    if a.write:
        write_section(a.write, a.section, section)


if __name__ == "__main__":
    main()

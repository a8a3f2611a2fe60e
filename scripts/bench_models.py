"""Benchmark the model layer beside transformers (PyTorch) on the same inputs, in one run.

Usage: python scripts/bench_models.py [--write docs/BENCHMARKS.md] [--section NAME] [--dtype fp32|bf16]
       [--batch B] [--seq T] [--decode-batches 1,8] [--new-tokens N] [--random [--shape S]]
       [--logprob-lengths 256,1024,4096]

Measures, for SmolLM2-135M-Instruct (the bundled GGUF; transformers loads our HF export of
the same dequantized weights): forward tokens/s, forward+backward tokens/s (mean next-token
log-prob loss), greedy decode tokens/s per batch size, batch-1 decode against the memory
roofline (weight bytes per token / measured copy bandwidth), and the compiled temporary
memory of the chunked vs naive log-prob path at V=152k.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax
import jax.numpy as jnp
import numpy as np
from benchlib import SHAPES, commit, machine, shape_config, write_section
from flax import nnx

from jaxalign.models import export_hf, load_pretrained
from jaxalign.models.sampler import Sampler
from jaxalign.ops import naive_token_logprobs, token_logprobs

LIBS = ("jax", "jaxlib", "flax", "torch", "transformers")


def timeit(fn, repeats: int) -> float:
    """Median seconds of `fn()` after one warm-up call (fn must block until done)."""
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def jax_side(model, tokens: np.ndarray, repeats: int):
    """(forward s, forward+backward s) for jaxalign."""
    graphdef, state = nnx.split(model)
    x = jnp.asarray(tokens)

    @jax.jit
    def forward(state, x):
        return nnx.merge(graphdef, state)(x)

    def loss(state, x):
        m = nnx.merge(graphdef, state)
        return -token_logprobs(m.hidden(x[:, :-1]), m.output_kernel(), x[:, 1:]).mean()

    grad = jax.jit(jax.grad(loss))
    fwd = timeit(lambda: forward(state, x).block_until_ready(), repeats)
    bwd = timeit(lambda: jax.block_until_ready(grad(state, x)), repeats)
    return fwd, bwd


def torch_side(hf_dir: Path, tokens: np.ndarray, repeats: int, dtype: str):
    """(forward s, forward+backward s, model) for transformers on the same tokens."""
    import torch
    import transformers

    torch_dtype = torch.float32 if dtype == "fp32" else torch.bfloat16
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = (
        transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch_dtype)
        .to(device)
        .eval()
    )
    x = torch.tensor(tokens, device=device)

    def sync():
        if device == "cuda":
            torch.cuda.synchronize()

    def forward():
        with torch.no_grad():
            model(x)
        sync()

    def backward():
        model.zero_grad(set_to_none=True)
        model(x, labels=x).loss.backward()
        sync()

    return timeit(forward, repeats), timeit(backward, repeats), model


def decode(model, tokenizer, hf_model, batch: int, new: int, prompt_len: int = 32):
    """(jaxalign tok/s, transformers tok/s) for greedy decoding of exactly `new` tokens per row."""
    import torch

    rng = np.random.default_rng(0)
    prompts = rng.integers(10, min(1000, model.config.vocab_size), (batch, prompt_len)).tolist()
    sampler = Sampler(model, eos_ids=[-1])
    sampler.generate(prompts, max_new_tokens=new, greedy=True)
    t0 = time.perf_counter()
    sampler.generate(prompts, max_new_tokens=new, greedy=True)
    ours = batch * new / (time.perf_counter() - t0)
    device = next(hf_model.parameters()).device
    x = torch.tensor(prompts, device=device)
    kwargs = dict(max_new_tokens=new, min_new_tokens=new, do_sample=False, pad_token_id=0)
    with torch.no_grad():
        hf_model.generate(x, **kwargs)
        t0 = time.perf_counter()
        hf_model.generate(x, **kwargs)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return ours, batch * new / (time.perf_counter() - t0)


def copy_bandwidth() -> float:
    """Bytes/s of a device-to-device copy of a 512 MiB array (read + write counted)."""
    x = jnp.ones((128 * 1024 * 1024,), jnp.float32)
    copy = jax.jit(lambda a: a * 1.0000001)
    seconds = timeit(lambda: copy(x).block_until_ready(), 5)
    return 2 * x.nbytes / seconds


def logprob_memory(lengths, vocab: int = 152_064, width: int = 896) -> list[tuple[int, int, int]]:
    """(T, chunked temp bytes, naive temp bytes) of the compiled value-and-grad, batch 1."""
    rows = []
    for t in lengths:
        h = jax.ShapeDtypeStruct((1, t, width), jnp.bfloat16)
        w = jax.ShapeDtypeStruct((width, vocab), jnp.bfloat16)
        y = jax.ShapeDtypeStruct((1, t), jnp.int32)

        def temp(fn, h=h, w=w, y=y):
            grad = jax.jit(jax.value_and_grad(lambda a, b, c: fn(a, b, c).sum(), argnums=(0, 1)))
            return grad.lower(h, w, y).compile().memory_analysis().temp_size_in_bytes

        rows.append(
            (
                t,
                temp(lambda h, w, y: token_logprobs(h, w, y, chunk=256)),
                temp(naive_token_logprobs),
            )
        )
    return rows


def parse_args(argv=None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path)
    parser.add_argument("--section", default="bench_models_cpu")
    parser.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--decode-batches", default="1,8")
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--random",
        action="store_true",
        help="SmolLM2-135M shape with random weights (where the bundled GGUF is not installed)",
    )
    parser.add_argument(
        "--shape",
        default="smollm2-135m",
        choices=sorted(SHAPES),
        help="with --random: the model shape (tiny: bench_gpu.sh's CPU smoke run)",
    )
    parser.add_argument(
        "--logprob-lengths",
        default="256,1024,4096",
        help="T of the chunked log-prob memory table (comma list; empty: no table)",
    )
    return parser.parse_args(argv)


def build_model(args):
    """(model, tokenizer, title) of the bundled SmolLM2 or a random model of --shape."""
    if not args.random:
        model, tokenizer = load_pretrained("smollm2", dtype=args.dtype)
        return model, tokenizer, "SmolLM2-135M-Instruct"
    from jaxalign.models.loading import DTYPES, build, random_tensors

    cfg = shape_config(args.shape, rms_norm_eps=1e-5)  # SmolLM2-135M's own epsilon
    model = build(
        cfg, random_tensors(cfg), dtype=DTYPES[args.dtype], param_dtype=DTYPES[args.dtype]
    )
    name = "SmolLM2-135M-Instruct shape" if args.shape == "smollm2-135m" else f"{args.shape} shape"
    return model, None, f"{name} (random weights)"


def measure(args, model, tokenizer):
    """Workload rows (name, shape, jaxalign tok/s, transformers tok/s); transformers first."""
    vocab = model.config.vocab_size
    tokens = np.random.default_rng(0).integers(10, min(49_000, vocab), (args.batch, args.seq))
    n_tok = args.batch * args.seq
    with tempfile.TemporaryDirectory() as tmp:
        export_hf(model, tokenizer, Path(tmp) / "smol", dtype=args.dtype)
        t_fwd, t_bwd, hf_model = torch_side(Path(tmp) / "smol", tokens, args.repeats, args.dtype)
    j_fwd, j_bwd = jax_side(model, tokens, args.repeats)
    rows = [
        ("forward", f"{args.batch} x {args.seq}", n_tok / j_fwd, n_tok / t_fwd),
        ("forward + backward", f"{args.batch} x {args.seq}", n_tok / j_bwd, n_tok / t_bwd),
    ]
    for b in (int(x) for x in args.decode_batches.split(",")):
        ours, theirs = decode(model, tokenizer, hf_model, b, args.new_tokens)
        rows.append((f"greedy decode, batch {b}", f"{args.new_tokens} new tokens", ours, theirs))
    return rows


def roofline_line(model, rows) -> str:
    """Batch-1 decode against weight bytes per token / measured copy bandwidth."""
    weight_bytes = sum(
        int(np.prod(p.shape)) * p.dtype.itemsize for p in jax.tree.leaves(nnx.state(model))
    )
    bandwidth = copy_bandwidth()
    roofline = bandwidth / weight_bytes
    batch1 = next((r[2] for r in rows if r[0] == "greedy decode, batch 1"), None)
    if batch1 is None:
        return "No batch-1 decode in --decode-batches: no roofline comparison."
    line = (
        f"Batch-1 decode vs the memory roofline: weights {weight_bytes / 2**20:.0f} MiB read per token, "
        f"measured copy bandwidth {bandwidth / 1e9:.1f} GB/s -> roofline {roofline:,.0f} tok/s; "
        f"measured {batch1:,.1f} tok/s ({100 * batch1 / roofline:.0f}% of roofline)."
    )
    if jax.default_backend() == "cpu":
        line += (
            " On a CPU the copy kernel is not bandwidth-bound and part of the weights stay in cache, "
            "so this 'roofline' is not a bound; the figure is meaningful on a GPU."
        )
    return line


def section(args, title: str, rows, roof: str) -> str:
    """The markdown section."""
    lines = [
        f"## Model layer: {title}, {args.dtype}, {jax.devices()[0].device_kind}",
        "",
        f"Measured {datetime.date.today().isoformat()} at commit {commit()} with "
        f"`python scripts/bench_models.py {' '.join(sys.argv[1:])}` on {machine(LIBS)}; "
        f"jax backend {jax.default_backend()}.",
        "Same weights on both sides (transformers loads jaxalign's HF export of "
        f"{'the random weights' if args.random else 'the dequantized GGUF'}); "
        "median of repeated runs after a warm-up (compilation excluded).",
        "",
        "| workload | shape | jaxalign tok/s | transformers tok/s | ratio |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {shape} | {ours:,.0f} | {theirs:,.0f} | {ours / theirs:.2f}x |"
        for name, shape, ours, theirs in rows
    ]
    lines += ["", roof]
    lengths = [int(t) for t in args.logprob_lengths.split(",") if t.strip()]
    if lengths:
        lines += [
            "",
            "Chunked log-prob path (value and gradient, V=152,064, D=896, bf16, batch 1, chunk 256): "
            "compiled temporary memory, from XLA's memory analysis.",
            "",
            "| T | chunked | naive (full logits) |",
            "|---|---|---|",
        ]
        lines += [
            f"| {t} | {c / 2**20:,.0f} MiB | {n / 2**20:,.0f} MiB |"
            for t, c, n in logprob_memory(lengths)
        ]
    return "\n".join(lines)


def main() -> None:
    """Run everything, print markdown, optionally write a BENCHMARKS.md section."""
    args = parse_args()
    model, tokenizer, title = build_model(args)
    rows = measure(args, model, tokenizer)
    text = section(args, title, rows, roofline_line(model, rows))
    print(text)
    if args.write:
        write_section(args.write, args.section, text)


if __name__ == "__main__":
    main()

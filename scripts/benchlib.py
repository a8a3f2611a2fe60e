"""Helpers shared by the benchmark scripts: model shapes, machine description, BENCHMARKS.md
sections."""

from __future__ import annotations

import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

SHAPES = {  # the torch reference script's shapes: (hidden, layers, heads, kv_heads, ffn, vocab, tie)
    "smollm2-135m": (576, 30, 9, 3, 1536, 49152, True),
    "qwen2.5-0.5b-like": (896, 24, 14, 2, 4864, 151936, True),
    "llama-1b": (2048, 16, 32, 8, 8192, 128256, True),
    "llama-3b": (3072, 28, 24, 8, 8192, 128256, True),
    "tiny": (64, 2, 4, 2, 128, 512, True),  # bench_gpu.sh's CPU smoke run, not a benchmark
}


def shape_config(shape: str, rms_norm_eps: float = 1e-6):
    """A Llama ModelConfig of one of SHAPES (imported here: bench_survey stays free of jax)."""
    from jaxalign.models.config import ModelConfig

    d, layers, h, kv, ff, vocab, tie = SHAPES[shape]
    return ModelConfig(
        family="llama",
        vocab_size=vocab,
        hidden_size=d,
        intermediate_size=ff,
        num_layers=layers,
        num_heads=h,
        num_kv_heads=kv,
        head_dim=d // h,
        tie_word_embeddings=tie,
        rms_norm_eps=rms_norm_eps,
    )


def machine(libs: tuple[str, ...]) -> str:
    """CPU model, cores, memory, Python and library versions."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 2**20:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    versions = ", ".join(f"{p} {metadata.version(p)}" for p in libs)
    return f"{cpu}, {os.cpu_count()} cores{mem}; Python {platform.python_version()}; {versions}"


def commit() -> str:
    """$BENCH_COMMIT (set by bench_gpu.sh where the tree travels without .git), else git's."""
    if os.environ.get("BENCH_COMMIT"):
        return os.environ["BENCH_COMMIT"]
    root = Path(__file__).resolve().parent.parent
    try:
        done = subprocess.run(
            ["git", "describe", "--always", "--dirty"], capture_output=True, text=True, cwd=root
        )
    except OSError:
        return "unknown"
    return done.stdout.strip() or "unknown"


def read_section(path: Path, name: str) -> str | None:
    """The text between a section's markers (None if the file or the section is missing)."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = path.read_text() if path.exists() else ""
    if start not in text or end not in text:
        return None
    return text.split(start, 1)[1].split(end, 1)[0].strip("\n")


def write_section(path: Path, name: str, section: str) -> None:
    """Replace (or append) the `<!-- name:start -->`...`<!-- name:end -->` section of a markdown file."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    body = f"{start}\n{section.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if start in text and end in text:
        head, rest = text.split(start, 1)
        text = head + body + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + body + "\n"
    path.write_text(text)

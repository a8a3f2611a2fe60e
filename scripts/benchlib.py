"""Helpers shared by the benchmark scripts: machine description and BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path


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

"""The memory plan (`jaxalign train --dry-run`): compile a step on abstract shapes, count bytes.

An algorithm hands the planner a `StepSpec`: its jitted train step, abstract arguments
(`jax.ShapeDtypeStruct`s carrying their shardings on the configured mesh) and which argument
subtrees are parameters, optimizer state, reference and batch. The planner lowers and
compiles the step exactly as training would (no weights are read, no array is allocated)
and reports per-device bytes: the parts counted from their shardings, activations and
temporaries from XLA's memory analysis of the compiled step. Algorithms register in
`PLANNERS` (DPO now; GRPO adds its own entry).
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax

from jaxalign.errors import JaxalignError

GIB = 2**30
# train.algorithm -> "module:function" with function(config, mesh) -> StepSpec (GRPO: to add)
PLANNERS = {"dpo": "jaxalign.algos.dpo_plan:step_spec"}


@dataclass
class StepSpec:
    """What an algorithm gives the planner."""

    step: Callable  # a jax.jit-wrapped step
    args: tuple  # abstract arguments of `step`
    parts: dict[str, Any]  # label -> abstract subtree of `args` (bytes counted per device)
    shape: str = ""  # what one step processes, e.g. "16 rows x 1024 tokens"
    shared: Any = None  # arrays passed as two arguments (counted once: the same buffers)


@dataclass
class MemoryPlan:
    """Per-device bytes of one compiled train step and whether they fit the budget."""

    parts: dict[str, int]
    temporaries: int  # activations and other temporaries of the compiled step
    peak: int  # arguments + outputs not aliased to (donated) arguments + temporaries
    budget: int
    devices: int
    mesh: dict[str, int]
    shape: str = ""
    analysis: dict[str, int] = field(default_factory=dict)  # XLA's raw memory analysis

    @property
    def fits(self) -> bool:
        """Whether the step's peak fits the per-device budget."""
        return self.peak <= self.budget

    def lines(self) -> list[str]:
        """The report `--dry-run` prints."""
        mesh = " x ".join(f"{k} {v}" for k, v in self.mesh.items())
        out = [f"memory plan per device ({self.devices} devices, mesh {mesh}; {self.shape}):"]
        rows = {**self.parts, "activations and temporaries": self.temporaries}
        out += [f"  {name:<28} {gib(value):>9}" for name, value in rows.items()]
        verdict = "fits" if self.fits else "does NOT fit"
        out.append(
            f"  {'peak (compiled step)':<28} {gib(self.peak):>9}  {verdict} "
            f"train.device_memory_gib={self.budget / GIB:g}"
        )
        return out


def gib(n: int) -> str:
    """Bytes as GiB with two decimals."""
    return f"{n / GIB:.2f} GiB"


def device_bytes(tree) -> int:
    """Bytes one device holds of an abstract (or concrete) pytree, from each leaf's sharding."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        sharding = getattr(leaf, "sharding", None)
        shape = sharding.shard_shape(leaf.shape) if sharding is not None else leaf.shape
        total += math.prod(shape) * leaf.dtype.itemsize
    return total


def analysis_of(compiled) -> dict[str, int]:
    """The byte counts of XLA's memory analysis of a compiled executable."""
    stats = compiled.memory_analysis()
    names = ("argument", "output", "alias", "temp", "generated_code")
    return {n: int(getattr(stats, f"{n}_size_in_bytes", 0) or 0) for n in names}


def plan(spec: StepSpec, budget_gib: float, mesh, compiled=None) -> MemoryPlan:
    """Compile `spec.step` on its abstract arguments (unless given `compiled`) and account its
    per-device memory."""
    compiled = compiled or spec.step.lower(*spec.args).compile()
    stats = analysis_of(compiled)
    return MemoryPlan(
        parts={name: device_bytes(tree) for name, tree in spec.parts.items()},
        temporaries=stats["temp"],
        peak=stats["argument"]
        + stats["output"]
        - stats["alias"]
        + stats["temp"]
        - device_bytes(spec.shared),
        budget=int(budget_gib * GIB),
        devices=mesh.size,
        mesh=dict(mesh.shape),
        shape=spec.shape,
        analysis=stats,
    )


def needed_devices(train) -> int | None:
    """Devices the configured mesh needs (None: 'all devices', decided by the machine)."""
    if train.mesh_devices:
        return train.mesh_devices
    sizes = (train.mesh_data, train.mesh_fsdp, train.mesh_tensor)
    return None if -1 in sizes else math.prod(sizes)


def simulate_devices(count: int | None) -> None:
    """Ask for `count` CPU devices (simulated), so a dry run can build a mesh larger than this
    machine; only possible before jax starts its backends, otherwise a no-op."""
    from jax._src import xla_bridge

    if count and count > 1 and not xla_bridge.backends_are_initialized():
        jax.config.update("jax_num_cpu_devices", count)


def plan_devices(train) -> list:
    """The devices of the planned mesh: the machine's own if it has enough, else simulated CPU
    devices; a mesh larger than both is a one-line error."""
    count = needed_devices(train)
    devices = jax.devices()
    if count and len(devices) < count:
        cpus = jax.devices("cpu")
        devices = cpus if len(cpus) >= count else devices
    if count and len(devices) < count:
        raise JaxalignError(
            f"train.mesh_*: the mesh needs {count} devices but only {len(devices)} are available "
            f"(a dry run simulates CPU devices only when it starts jax itself)"
        )
    return devices[:count] if count else devices


def dry_run(cfg, algorithm: str | None = None) -> MemoryPlan:
    """Plan the memory of `algorithm`'s (default `train.algorithm`) train step; writes nothing."""
    from jaxalign.sharding import make_mesh

    algorithm = algorithm or getattr(cfg.train, "algorithm", "dpo")
    if algorithm not in PLANNERS:
        raise JaxalignError(
            f"train.algorithm={algorithm}: --dry-run has no memory planner for it yet "
            f"(planned: {', '.join(PLANNERS)})"
        )
    devices = plan_devices(cfg.train)
    t = cfg.train
    try:
        mesh = make_mesh(t.mesh_data, t.mesh_fsdp, t.mesh_tensor, devices)
    except ValueError as err:
        raise JaxalignError(f"train.mesh_*: {err}") from None
    module, name = PLANNERS[algorithm].split(":")
    spec = getattr(importlib.import_module(module), name)(cfg, mesh)
    return plan(spec, t.device_memory_gib, mesh)

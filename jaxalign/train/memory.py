"""The memory plan (`jaxalign train --dry-run`): compile a step on abstract shapes, count bytes.

An algorithm hands the planner a `StepSpec`: its jitted train step, abstract arguments
(`jax.ShapeDtypeStruct`s carrying their shardings on the configured mesh) and which argument
subtrees are parameters, optimizer state, reference and batch. The planner lowers and
compiles the step exactly as training would (no weights are read, no array is allocated)
and reports per-device bytes: the parts counted from their shardings, activations and
temporaries from XLA's memory analysis of the compiled step. Algorithms register in
`PLANNERS`; GRPO's step adds the rollout and log-prob programs as phases.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jax

from jaxalign.errors import ConfigError, JaxalignError

GIB = 2**30
# train.algorithm -> "module:function" with function(config, mesh) -> StepSpec
PLANNERS = {
    "dpo": "jaxalign.algos.dpo_plan:step_spec",
    "grpo": "jaxalign.algos.grpo_plan:step_spec",
}


@dataclass
class StepSpec:
    """What an algorithm gives the planner."""

    step: Callable  # a jax.jit-wrapped step
    args: tuple  # abstract arguments of `step`
    parts: dict[str, Any]  # label -> abstract subtree of `args` (bytes counted per device)
    shape: str = ""  # what one step processes, e.g. "16 rows x 1024 tokens"
    shared: Any = None  # arrays passed as two arguments (counted once: the same buffers)
    name: str = "compiled step"
    resident: Any = None  # arrays on the device meanwhile that are not arguments (counted)
    rows: dict[str, Any] = field(default_factory=dict)  # further report rows (not in the peak)
    # further programs of one step (GRPO: rollout, log-probs), each with its own peak
    phases: dict[str, StepSpec] = field(default_factory=dict)


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
    rows: dict[str, int] = field(default_factory=dict)  # shown after the temporaries
    phases: dict[str, int] = field(default_factory=dict)  # peak of each program of a step
    analyses: dict[str, dict[str, int]] = field(default_factory=dict)  # of each phase

    @property
    def fits(self) -> bool:
        """Whether the step's peak fits the per-device budget."""
        return self.peak <= self.budget

    def lines(self) -> list[str]:
        """The report `--dry-run` prints."""
        mesh = " x ".join(f"{k} {v}" for k, v in self.mesh.items())
        out = [f"memory plan per device ({self.devices} devices, mesh {mesh}; {self.shape}):"]
        rows = {**self.parts, "activations and temporaries": self.temporaries, **self.rows}
        out += [f"  {name:<28} {gib(value):>9}" for name, value in rows.items()]
        label = "peak (compiled step)"
        if len(self.phases) > 1:
            out += [f"  {f'peak ({k})':<28} {gib(v):>9}" for k, v in self.phases.items()]
            label = "peak (largest phase)"
        verdict = "fits" if self.fits else "does NOT fit"
        out.append(
            f"  {label:<28} {gib(self.peak):>9}  {verdict} "
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


def peak_of(spec: StepSpec, stats: dict[str, int]) -> int:
    """Per-device bytes while one compiled program runs: arguments + outputs not aliased to
    (donated) arguments + temporaries, plus what stays resident meanwhile."""
    held = stats["argument"] + stats["output"] - stats["alias"] + stats["temp"]
    return held - device_bytes(spec.shared) + device_bytes(spec.resident)


def plan(spec: StepSpec, budget_gib: float, mesh, compiled=None) -> MemoryPlan:
    """Compile `spec.step` (and its phases) on abstract arguments (unless given `compiled`)
    and account its per-device memory; the peak is the largest phase's."""
    compiled = compiled or spec.step.lower(*spec.args).compile()
    stats = analysis_of(compiled)
    analyses = {spec.name: stats}
    analyses |= {
        name: analysis_of(phase.step.lower(*phase.args).compile())
        for name, phase in spec.phases.items()
    }
    phases = {spec.name: peak_of(spec, stats)}
    phases |= {name: peak_of(p, analyses[name]) for name, p in spec.phases.items()}
    rows = {name: device_bytes(tree) for name, tree in spec.rows.items()}
    rows |= {f"{name} temporaries": analyses[name]["temp"] for name in spec.phases}
    return MemoryPlan(
        parts={name: device_bytes(tree) for name, tree in spec.parts.items()},
        temporaries=stats["temp"],
        peak=max(phases.values()),
        budget=int(budget_gib * GIB),
        devices=mesh.size,
        mesh=dict(mesh.shape),
        shape=spec.shape,
        analysis=stats,
        rows=rows,
        phases=phases,
        analyses=analyses,
    )


def needed_devices(train) -> int | None:
    """Devices the configured mesh needs (None: 'all devices', decided by the machine)."""
    if train.mesh_devices:
        return train.mesh_devices
    sizes = (train.mesh_data, train.mesh_fsdp, train.mesh_tensor)
    return None if -1 in sizes else math.prod(sizes)


# Measured on a 2-core CPU: 2048 simulated devices plan in ~30 s; 4096 fail inside XLA
# ("Multiprocess computations aren't implemented") and 16384 ran for minutes in 2.5 GB.
MAX_SIMULATED = 2048


def simulate_devices(count: int | None) -> None:
    """Ask for `count` CPU devices (simulated), so a dry run can build a mesh larger than this
    machine; only possible before jax starts its backends, otherwise a no-op."""
    from jax._src import xla_bridge

    if count and count > 1 and not xla_bridge.backends_are_initialized():
        if count > MAX_SIMULATED:
            raise JaxalignError(
                f"train.mesh_*: the mesh needs {count} devices; a dry run simulates at most "
                f"{MAX_SIMULATED}: plan a smaller mesh with the same per-device shards (fewer "
                "data-parallel replicas)"
            )
        jax.config.update("jax_num_cpu_devices", count)


def plan_devices(train) -> list:
    """The devices of the planned mesh: the machine's own if it has enough, else simulated CPU
    devices; a mesh larger than both is a one-line error."""
    count = needed_devices(train)
    devices = jax.devices()
    sizes = (train.mesh_data, train.mesh_fsdp, train.mesh_tensor)
    known = math.prod(s for s in sizes if s != -1)
    if count is None and len(devices) % known:  # a -1 axis takes "all devices": too few here
        raise JaxalignError(
            f"train.mesh_*: mesh data={sizes[0]} fsdp={sizes[1]} tensor={sizes[2]} needs a "
            f"multiple of {known} devices and this machine has {len(devices)}; to plan for a "
            f"larger mesh (simulated CPU devices), give its size: train.mesh_devices={known}"
        )
    if count and len(devices) < count:
        cpus = jax.devices("cpu")
        devices = cpus if len(cpus) >= count else devices
    if count and len(devices) < count:
        raise JaxalignError(
            f"train.mesh_*: the mesh needs {count} devices but only {len(devices)} are available "
            f"(a dry run simulates CPU devices only when it starts jax itself)"
        )
    return devices[:count] if count else devices


def head_counts(spec) -> tuple[int, int]:
    """(attention heads, key/value heads) of a model spec: its HF config, or `model.random`."""
    if spec.path:
        from jaxalign.models.loading import read_architecture, resolve

        arch = read_architecture(resolve(spec.path))
        return arch.num_heads, arch.num_kv_heads
    return spec.random.num_heads, spec.random.num_kv_heads


def check_heads(spec, tensor: int) -> None:
    """Refuse a tensor axis that does not split both the attention and the KV heads.

    `sharding.spec_for` would replicate every weight it cannot split, so such a mesh trains
    (and plans) as if the axis were not there while looking sharded. GQA models with fewer KV
    heads than the tensor axis are refused too: MaxText copies each KV head to its query
    group's devices, but here the KV projections and the rollout cache would be whole on every
    device. One check for `train --dry-run` (`dry_run`) and real training (algos/dpo.mesh_of).
    """
    if tensor <= 1:
        return
    heads, kv = head_counts(spec)
    if heads % tensor or kv % tensor:
        raise ConfigError(
            f"train.mesh_tensor={tensor}: the model's {heads} heads / {kv} KV heads are not "
            f"divisible by {tensor}; use a tensor axis that divides both (or train.mesh_tensor=1)"
        )


def dry_run(cfg, algorithm: str | None = None) -> MemoryPlan:
    """Plan the memory of `algorithm`'s (default `train.algorithm`) train step; writes nothing."""
    from jaxalign.sharding import make_mesh

    algorithm = algorithm or getattr(cfg.train, "algorithm", "dpo")
    if algorithm not in PLANNERS:
        raise JaxalignError(
            f"train.algorithm={algorithm}: --dry-run has no memory planner for it yet "
            f"(planned: {', '.join(PLANNERS)})"
        )
    t = cfg.train
    check_heads(cfg.model, t.mesh_tensor)  # the same check real training makes (mesh_of)
    devices = plan_devices(t)
    try:
        mesh = make_mesh(t.mesh_data, t.mesh_fsdp, t.mesh_tensor, devices)
    except ValueError as err:
        raise JaxalignError(f"train.mesh_*: {err}") from None
    module, name = PLANNERS[algorithm].split(":")
    spec = getattr(importlib.import_module(module), name)(cfg, mesh)
    return plan(spec, t.device_memory_gib, mesh)

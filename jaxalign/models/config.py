"""Decoder architecture config, read from a Hugging Face `config.json` (transformers 5 names)."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jaxalign.errors import DataError

# HF `architectures[0]` / `model_type` -> our family name.
ARCHITECTURES = {
    "LlamaForCausalLM": "llama",
    "MistralForCausalLM": "mistral",
    "Qwen2ForCausalLM": "qwen2",
    "Qwen3ForCausalLM": "qwen3",
}
MODEL_TYPES = {v: v for v in ARCHITECTURES.values()}


@dataclass(frozen=True)
class ModelConfig:
    """Everything the decoder needs; `from_hf` maps a config.json onto it."""

    family: str
    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-6
    rope_theta: float = 10000.0
    rope_scaling: tuple[tuple[str, Any], ...] = ()  # llama3 parameters, as sorted items
    max_position_embeddings: int = 4096
    tie_word_embeddings: bool = False
    attention_bias: bool = False  # q/k/v biases (always in Qwen2; `attention_bias` in Llama/Qwen3)
    o_bias: bool = False  # o_proj bias (`attention_bias` in Llama/Qwen3)
    mlp_bias: bool = False
    qk_norm: bool = False  # Qwen3
    sliding_window: int | None = None
    bos_token_id: int | None = None
    eos_token_id: tuple[int, ...] = ()
    pad_token_id: int | None = None

    @property
    def rope_scaling_dict(self) -> dict[str, Any]:
        """The RoPE scaling parameters as a dict."""
        return dict(self.rope_scaling)

    @classmethod
    def from_hf(cls, hf: dict[str, Any], source: str = "config.json") -> ModelConfig:
        """Map a Hugging Face config dict; unsupported architectures list the supported ones."""
        family = _family(hf, source)
        try:
            heads = int(hf["num_attention_heads"])
            hidden = int(hf["hidden_size"])
            theta, scaling_items = _rope(hf, source)
            eos = hf.get("eos_token_id")
            eos_ids = tuple(eos) if isinstance(eos, list) else (() if eos is None else (int(eos),))
            bias = bool(hf.get("attention_bias", False)) and family in ("llama", "qwen3")
            if family in ("qwen2", "qwen3") and hf.get("use_sliding_window"):
                raise DataError(f"{source}: use_sliding_window=true is not supported for {family}")
            return _checked(
                source,
                cls(
                    family=family,
                    vocab_size=int(hf["vocab_size"]),
                    hidden_size=hidden,
                    intermediate_size=int(hf["intermediate_size"]),
                    num_layers=int(hf["num_hidden_layers"]),
                    num_heads=heads,
                    num_kv_heads=int(hf.get("num_key_value_heads") or heads),
                    head_dim=int(hf.get("head_dim") or hidden // heads),
                    rms_norm_eps=float(hf.get("rms_norm_eps", 1e-6)),
                    rope_theta=theta,
                    rope_scaling=scaling_items,
                    max_position_embeddings=int(hf.get("max_position_embeddings", 4096)),
                    tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
                    attention_bias=bias or family == "qwen2",
                    o_bias=bias,
                    mlp_bias=bool(hf.get("mlp_bias", False)),
                    qk_norm=family == "qwen3",
                    sliding_window=(
                        int(hf["sliding_window"])
                        if family == "mistral" and hf.get("sliding_window")
                        else None
                    ),
                    bos_token_id=hf.get("bos_token_id"),
                    eos_token_id=eos_ids,
                    pad_token_id=hf.get("pad_token_id"),
                ),
            )
        except KeyError as err:
            raise DataError(f"{source}: missing field {err.args[0]!r}") from None
        except (TypeError, ValueError) as err:
            raise DataError(f"{source}: bad value: {err}") from None

    def to_hf(self) -> dict[str, Any]:
        """A transformers-5 config.json dict for this architecture."""
        arch = {v: k for k, v in ARCHITECTURES.items()}[self.family]
        rope: dict[str, Any] = {"rope_type": "default", "rope_theta": self.rope_theta}
        if self.rope_scaling:
            rope = {**rope, "rope_type": "llama3", **self.rope_scaling_dict}
            rope["original_max_position_embeddings"] = int(rope["original_max_position_embeddings"])
        out = {
            "architectures": [arch],
            "model_type": self.family,
            "vocab_size": self.vocab_size,
            "hidden_size": self.hidden_size,
            "intermediate_size": self.intermediate_size,
            "num_hidden_layers": self.num_layers,
            "num_attention_heads": self.num_heads,
            "num_key_value_heads": self.num_kv_heads,
            "head_dim": self.head_dim,
            "rms_norm_eps": self.rms_norm_eps,
            "rope_parameters": rope,
            "max_position_embeddings": self.max_position_embeddings,
            "tie_word_embeddings": self.tie_word_embeddings,
            "hidden_act": "silu",
            "bos_token_id": self.bos_token_id,
            "eos_token_id": list(self.eos_token_id)
            if len(self.eos_token_id) > 1
            else (self.eos_token_id or [None])[0],
            "pad_token_id": self.pad_token_id,
            "torch_dtype": "float32",
        }
        if self.family in ("llama", "qwen3"):
            out["attention_bias"] = self.o_bias
        if self.family == "llama":
            out["mlp_bias"] = self.mlp_bias
        if self.family == "mistral":
            out["sliding_window"] = self.sliding_window
        if self.family in ("qwen2", "qwen3"):
            out.update(use_sliding_window=False, sliding_window=None)
        return out

    def replace(self, **changes) -> ModelConfig:
        """A copy with some fields changed."""
        return dataclasses.replace(self, **changes)


# Far above any real model; a config beyond them would hang or exhaust memory when built.
LIMITS = {
    "vocab_size": 1 << 22,
    "hidden_size": 1 << 17,
    "intermediate_size": 1 << 19,
    "num_layers": 1024,
    "num_heads": 1024,
    "num_kv_heads": 1024,
    "head_dim": 1024,
    "max_position_embeddings": 1 << 24,
}
HF_KEYS = {"num_layers": "num_hidden_layers", "num_heads": "num_attention_heads"}


def _checked(source: str, cfg: ModelConfig) -> ModelConfig:
    """Refuse sizes that are zero, negative or absurdly large, naming the config key."""
    for name, limit in LIMITS.items():
        value = getattr(cfg, name)
        if not 1 <= value <= limit:
            key = HF_KEYS.get(name, name)
            raise DataError(f"{source}: {key}={value} is out of range; expected 1..{limit}")
    if cfg.num_heads % cfg.num_kv_heads:
        raise DataError(
            f"{source}: num_attention_heads={cfg.num_heads} is not a multiple of "
            f"num_key_value_heads={cfg.num_kv_heads}"
        )
    return cfg


def read_hf_config(path: Path) -> ModelConfig:
    """Read and map `path/config.json`."""
    file = path / "config.json"
    if not file.exists():
        raise DataError(f"{file}: config.json not found (expected a Hugging Face model directory)")
    try:
        hf = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(f"{file}: not valid JSON ({err})") from None
    return ModelConfig.from_hf(hf, str(file))


def _family(hf: dict[str, Any], source: str) -> str:
    """The decoder family of a HF config (by architecture, else model_type)."""
    arch = (hf.get("architectures") or [None])[0]
    family = ARCHITECTURES.get(arch) or MODEL_TYPES.get(hf.get("model_type", ""))
    if family is None:
        supported = ", ".join(ARCHITECTURES)
        raise DataError(
            f"{source}: unsupported architecture {arch or hf.get('model_type')!r}; supported: {supported}"
        )
    return family


def _rope(hf: dict[str, Any], source: str) -> tuple[float, tuple]:
    """(rope theta, sorted llama3 scaling items) from `rope_parameters` over `rope_scaling`."""
    rope = dict(hf.get("rope_parameters") or {})
    legacy = dict(hf.get("rope_scaling") or {})
    theta = float(rope.get("rope_theta", hf.get("rope_theta", 10000.0)))
    scaling = {**legacy, **rope}
    rope_type = scaling.get("rope_type", scaling.get("type", "default"))
    if rope_type not in ("default", "llama3"):
        raise DataError(
            f"{source}: rope type {rope_type!r} is not supported; supported: default, llama3"
        )
    if rope_type != "llama3":
        return theta, ()
    keys = ("factor", "low_freq_factor", "high_freq_factor", "original_max_position_embeddings")
    return theta, tuple(sorted((k, float(scaling[k])) for k in keys))

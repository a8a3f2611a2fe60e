"""GGUF (llama.cpp) files: dequantized tensors under HF names, and a HF config dict.

Only the Llama architecture is mapped (the default model, SmolLM2, is Llama). llama.cpp
stores q/k projections permuted for its RoPE layout; they are permuted back, as
transformers' GGUF loader does, so both sides see identical weights.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from jaxalign.errors import DataError

NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
BLOCK = {
    "attn_norm": "input_layernorm",
    "attn_q": "self_attn.q_proj",
    "attn_k": "self_attn.k_proj",
    "attn_v": "self_attn.v_proj",
    "attn_output": "self_attn.o_proj",
    "ffn_norm": "post_attention_layernorm",
    "ffn_gate": "mlp.gate_proj",
    "ffn_up": "mlp.up_proj",
    "ffn_down": "mlp.down_proj",
}


def _reader(path: Path):
    """A gguf.GGUFReader, with a clear error for a corrupt or non-GGUF file."""
    try:
        from gguf import GGUFReader
    except ImportError:  # pragma: no cover - gguf is a declared dependency
        raise DataError("reading .gguf files needs the 'gguf' package") from None
    try:
        return GGUFReader(str(path))
    except Exception as err:
        raise DataError(f"{path}: not a readable GGUF file ({type(err).__name__}: {err})") from None


def _field(reader, key, default=None):
    """A metadata value by key."""
    field = reader.fields.get(key)
    return default if field is None else field.contents()


def hf_name(gguf_name: str) -> str | None:
    """HF parameter name for a GGUF tensor name."""
    if gguf_name in NAMES:
        return NAMES[gguf_name]
    match = re.fullmatch(r"blk\.(\d+)\.(\w+)\.(weight|bias)", gguf_name)
    if match and match.group(2) in BLOCK:
        return f"model.layers.{match.group(1)}.{BLOCK[match.group(2)]}.{match.group(3)}"
    return None


def reverse_permute(weight: np.ndarray, heads: int) -> np.ndarray:
    """Undo llama.cpp's rotary permutation of a q/k projection [heads * Dh, D]."""
    dim = weight.shape[0] // heads // 2
    return weight.reshape(heads, dim, 2, *weight.shape[1:]).swapaxes(2, 1).reshape(weight.shape)


def gguf_config(reader, path: Path) -> dict:
    """The HF config dict of an opened GGUF file (metadata only, no tensor data)."""
    arch = _field(reader, "general.architecture")
    if arch != "llama":
        raise DataError(f"{path}: GGUF architecture {arch!r} is not supported; supported: llama")
    p = "llama."
    heads = int(_field(reader, p + "attention.head_count"))
    hidden = int(_field(reader, p + "embedding_length"))
    tokens = reader.fields.get("tokenizer.ggml.tokens")
    names = {t.name for t in reader.tensors}
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": int(_field(reader, p + "vocab_size", len(tokens.data) if tokens else 0)),
        "hidden_size": hidden,
        "intermediate_size": int(_field(reader, p + "feed_forward_length")),
        "num_hidden_layers": int(_field(reader, p + "block_count")),
        "num_attention_heads": heads,
        "num_key_value_heads": int(_field(reader, p + "attention.head_count_kv", heads)),
        "head_dim": int(_field(reader, p + "rope.dimension_count", hidden // heads)),
        "rms_norm_eps": float(_field(reader, p + "attention.layer_norm_rms_epsilon", 1e-5)),
        "rope_parameters": {
            "rope_type": "default",
            "rope_theta": float(_field(reader, p + "rope.freq_base", 10000.0)),
        },
        "max_position_embeddings": int(_field(reader, p + "context_length", 4096)),
        "tie_word_embeddings": "output.weight" not in names,
        "bos_token_id": _field(reader, "tokenizer.ggml.bos_token_id"),
        "eos_token_id": _field(reader, "tokenizer.ggml.eos_token_id"),
        "pad_token_id": _field(reader, "tokenizer.ggml.padding_token_id"),
    }


def gguf_summary(path: Path) -> tuple[dict, dict[str, tuple[int, ...]], list[str]]:
    """(HF config dict, tensor shapes by HF name, quantization type names) without dequantizing."""
    from gguf import GGMLQuantizationType

    reader = _reader(path)
    config = gguf_config(reader, path)
    shapes, qtypes = {}, set()
    for tensor in reader.tensors:
        name = hf_name(tensor.name)
        if name is not None:
            shapes[name] = tuple(int(n) for n in reversed(tensor.shape))
            qtypes.add(GGMLQuantizationType(tensor.tensor_type).name)
    return config, shapes, sorted(qtypes)


def read_gguf(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(HF config dict, fp32 tensors by HF name) from a GGUF file."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize

    from jaxalign.progress import bar

    reader = _reader(path)
    config = gguf_config(reader, path)
    heads, kv_heads = config["num_attention_heads"], config["num_key_value_heads"]
    tensors = {}
    with bar(reader.tensors, desc="dequantize", unit="tensor", leave=False, disable=None) as ticks:
        for tensor in ticks:
            name = hf_name(tensor.name)
            if name is None:
                continue
            try:
                qtype = GGMLQuantizationType(tensor.tensor_type)
                array = np.asarray(dequantize(tensor.data, qtype), dtype=np.float32)
            except Exception as err:
                raise DataError(
                    f"{path}: tensor {tensor.name}: cannot dequantize ({err})"
                ) from None
            array = array.reshape([int(n) for n in reversed(tensor.shape)])
            if name.endswith("q_proj.weight"):
                array = reverse_permute(array, heads)
            elif name.endswith("k_proj.weight"):
                array = reverse_permute(array, kv_heads)
            tensors[name] = array
    return config, tensors

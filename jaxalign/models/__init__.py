"""Decoder-only LLMs in Flax NNX: config mapping, weights (safetensors, GGUF), export, sampling."""

from jaxalign.models.config import ModelConfig
from jaxalign.models.decoder import Decoder, KVCache
from jaxalign.models.loading import export_hf, load_pretrained

__all__ = ["Decoder", "KVCache", "ModelConfig", "export_hf", "load_pretrained"]

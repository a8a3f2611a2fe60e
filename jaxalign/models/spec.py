"""A model from a config `ModelSpec`: pretrained weights, or a random init of a given shape."""

from __future__ import annotations

import jax

from jaxalign.config import ModelSpec
from jaxalign.data.chat import eos_ids
from jaxalign.errors import JaxalignError
from jaxalign.models.config import ModelConfig
from jaxalign.models.loading import (
    DTYPES,
    build,
    load_pretrained,
    load_tokenizer,
    random_tensors,
    resolve,
)


def build_model(spec: ModelSpec, mesh):
    """(model, tokenizer): pretrained from `spec.path`, or randomly initialised for `spec.tokenizer`."""
    if spec.path:
        model, tokenizer = load_pretrained(
            spec.path,
            dtype=spec.dtype,
            param_dtype=spec.param_dtype,
            mesh=mesh,
            remat=spec.remat,
            attention=spec.attention,
            scan_layers=spec.scan_layers,
            tokenizer=not spec.tokenizer,
        )
        if spec.tokenizer:
            tokenizer = load_tokenizer(resolve(spec.tokenizer))
        return model, tokenizer
    if not spec.tokenizer:
        raise JaxalignError("model.path is empty (random init) but model.tokenizer is not set")
    tokenizer = load_tokenizer(resolve(spec.tokenizer))
    cfg = random_config(spec, tokenizer)
    tensors = random_tensors(cfg, spec.random.seed)
    model = build(
        cfg,
        tensors,
        dtype=DTYPES[spec.dtype],
        param_dtype=DTYPES[spec.param_dtype],
        mesh=mesh,
        remat=spec.remat,
        attention=spec.attention,
        scan_layers=spec.scan_layers,
        source="random init",
    )
    return model, tokenizer


def random_config(spec: ModelSpec, tokenizer) -> ModelConfig:
    """The architecture of `model.random` with the tokenizer's vocabulary."""
    r = spec.random
    return ModelConfig(
        family=r.family,
        vocab_size=len(tokenizer),
        hidden_size=r.hidden_size,
        intermediate_size=r.intermediate_size,
        num_layers=r.num_layers,
        num_heads=r.num_heads,
        num_kv_heads=r.num_kv_heads,
        head_dim=r.hidden_size // r.num_heads,
        tie_word_embeddings=r.tie_word_embeddings,
        attention_bias=r.family == "qwen2",
        qk_norm=r.family == "qwen3",
        eos_token_id=eos_ids(tokenizer),
    )


def abstract_model(spec: ModelSpec, mesh):
    """The model `build_model` would give, as shapes with their shardings: only config.json
    (or a GGUF header, or the tokenizer of a random init) is read, no weights."""
    from flax import nnx

    from jaxalign.models.decoder import Decoder
    from jaxalign.models.loading import read_architecture
    from jaxalign.models.weights import param_table
    from jaxalign.sharding import named

    if spec.path:
        cfg = read_architecture(resolve(spec.path))
    elif not spec.tokenizer:
        raise JaxalignError("model.path is empty (random init) but model.tokenizer is not set")
    else:
        cfg = random_config(spec, load_tokenizer(resolve(spec.tokenizer)))
    model = nnx.eval_shape(
        lambda: Decoder(
            cfg,
            dtype=DTYPES[spec.dtype],
            param_dtype=DTYPES[spec.param_dtype],
            remat=spec.remat,
            attention=spec.attention,
            scan_layers=spec.scan_layers,
            mesh=mesh,
            rngs=nnx.Rngs(0),
        )
    )
    for _, param, _, axes in param_table(model):
        shape = param.get_value()
        sharding = named(mesh, axes, shape.shape)
        param.set_value(jax.ShapeDtypeStruct(shape.shape, shape.dtype, sharding=sharding))
    return model

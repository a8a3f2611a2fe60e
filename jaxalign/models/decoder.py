"""One Flax NNX decoder family: Llama (2, 3.x, SmolLM2), Mistral, Qwen2/2.5, Qwen3.

Shapes: B batch, T tokens, S cache slots, D width, H query heads, K kv heads, Dh head
width, F MLP width, V vocab. Kernels are stored [in, out] (the transpose of HF's
`nn.Linear.weight`). The model knows nothing about losses or data.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from flax import nnx

from jaxalign.models import cpu_attention
from jaxalign.models.config import ModelConfig
from jaxalign.models.dense import dense
from jaxalign.models.lora_context import scanned_layer

# `model.remat`: what a block's backward pass may keep from its forward pass (None: no remat;
# "full" keeps only the block's input; the others also keep matmul outputs).
REMAT_POLICIES = {
    "none": None,
    "full": jax.checkpoint_policies.nothing_saveable,
    "dots_saveable": jax.checkpoint_policies.dots_saveable,
    "dots_with_no_batch_dims_saveable": jax.checkpoint_policies.dots_with_no_batch_dims_saveable,
}


@jax.tree_util.register_dataclass
@dataclass
class KVCache:
    """Keys/values per layer [L, B, S, K, Dh], which slots hold tokens [B, S], and the next slot."""

    k: jax.Array
    v: jax.Array
    valid: jax.Array
    index: jax.Array  # int32 scalar: first free slot

    @classmethod
    def empty(cls, cfg: ModelConfig, batch: int, slots: int, dtype) -> KVCache:
        """An empty cache of `slots` positions."""
        shape = (cfg.num_layers, batch, slots, cfg.num_kv_heads, cfg.head_dim)
        return cls(
            jnp.zeros(shape, dtype),
            jnp.zeros(shape, dtype),
            jnp.zeros((batch, slots), bool),
            jnp.zeros((), jnp.int32),
        )


def rope_inv_freq(cfg: ModelConfig) -> jax.Array:
    """Inverse RoPE frequencies [Dh/2], with Llama 3 scaling when configured."""
    dim = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (jnp.arange(0, dim, 2, dtype=jnp.float32) / dim))
    if not cfg.rope_scaling:
        return inv
    p = cfg.rope_scaling_dict
    factor, low, high = p["factor"], p["low_freq_factor"], p["high_freq_factor"]
    old = p["original_max_position_embeddings"]
    wavelen = 2 * math.pi / inv
    scaled = jnp.where(wavelen > old / low, inv / factor, inv)
    smooth = (old / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = (wavelen >= old / high) & (wavelen <= old / low)
    return jnp.where(medium, smoothed, scaled)


def rope_tables(cfg: ModelConfig, positions: jax.Array, dtype) -> tuple[jax.Array, jax.Array]:
    """cos, sin [B, T, Dh] for integer positions [B, T] (computed in fp32, as HF does)."""
    freqs = positions.astype(jnp.float32)[..., None] * rope_inv_freq(cfg)
    emb = jnp.concatenate([freqs, freqs], axis=-1)
    return jnp.cos(emb).astype(dtype), jnp.sin(emb).astype(dtype)


def apply_rope(x: jax.Array, cos: jax.Array, sin: jax.Array) -> jax.Array:
    """Rotate [B, T, heads, Dh] by the half-split convention of HF Llama."""
    half = x.shape[-1] // 2
    rotated = jnp.concatenate([-x[..., half:], x[..., :half]], axis=-1)
    return x * cos[:, :, None, :] + rotated * sin[:, :, None, :]


def constrain(x: jax.Array, mesh, logical: tuple) -> jax.Array:
    """Pin an activation's sharding by logical axes (no-op without a mesh)."""
    if mesh is None:
        return x
    from jaxalign.sharding import named

    return jax.lax.with_sharding_constraint(x, named(mesh, logical, x.shape))


def _init(rngs: nnx.Rngs, shape, dtype, scale: float = 0.02):
    """Normal(0, scale) initialiser (real weights are loaded over it)."""
    return nnx.Param(scale * jax.random.normal(rngs.params(), shape, jnp.float32).astype(dtype))


class RMSNorm(nnx.Module):
    """RMS normalisation in fp32, scaled by a learned weight (HF Llama semantics)."""

    def __init__(self, dim: int, eps: float, dtype):
        self.weight = nnx.Param(jnp.ones((dim,), dtype))
        self.eps = eps

    def __call__(self, x: jax.Array) -> jax.Array:
        xf = x.astype(jnp.float32)
        y = xf * jax.lax.rsqrt(jnp.mean(xf * xf, axis=-1, keepdims=True) + self.eps)
        return self.weight.get_value().astype(x.dtype) * y.astype(x.dtype)


class Linear(nnx.Module):
    """x @ kernel (+ bias) (+ a LoRA adapter's output), kernel [in, out]."""

    def __init__(self, din: int, dout: int, bias: bool, dtype, rngs: nnx.Rngs):
        self.kernel = _init(rngs, (din, dout), dtype)
        self.bias = nnx.Param(jnp.zeros((dout,), dtype)) if bias else None
        self.lora = None  # set by `jaxalign.models.lora.apply_lora`

    def __call__(self, x: jax.Array) -> jax.Array:
        y = dense(x, self.kernel.get_value().astype(x.dtype))
        y = y + self.bias.get_value().astype(x.dtype) if self.bias is not None else y
        return y if self.lora is None else y + self.lora(x)


class Attention(nnx.Module):
    """Grouped-query attention with RoPE, optional q/k norm and a KV cache."""

    def __init__(self, cfg: ModelConfig, dtype, rngs: nnx.Rngs, mesh=None, implementation="xla"):
        self.mesh = mesh
        self.implementation = implementation
        self.window = cfg.sliding_window
        d, h, k, dh = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.q_proj = Linear(d, h * dh, cfg.attention_bias, dtype, rngs)
        self.k_proj = Linear(d, k * dh, cfg.attention_bias, dtype, rngs)
        self.v_proj = Linear(d, k * dh, cfg.attention_bias, dtype, rngs)
        self.o_proj = Linear(h * dh, d, cfg.o_bias, dtype, rngs)
        self.q_norm = RMSNorm(dh, cfg.rms_norm_eps, dtype) if cfg.qk_norm else None
        self.k_norm = RMSNorm(dh, cfg.rms_norm_eps, dtype) if cfg.qk_norm else None
        self.heads, self.kv_heads, self.head_dim = h, k, dh

    def __call__(self, x, cos, sin, mask, kv=None):
        """x [B, T, D]; mask [B, 1, T, S], or None for plain causal attention over the row;
        kv = (cache_k, cache_v, index) for one layer or None."""
        b, t, _ = x.shape
        q = self.q_proj(x).reshape(b, t, self.heads, self.head_dim)
        k = self.k_proj(x).reshape(b, t, self.kv_heads, self.head_dim)
        v = self.v_proj(x).reshape(b, t, self.kv_heads, self.head_dim)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        q = constrain(q, self.mesh, ("batch", None, "heads", None))
        new_kv = None
        if kv is not None:
            cache_k, cache_v, index = kv
            k = jax.lax.dynamic_update_slice_in_dim(cache_k, k.astype(cache_k.dtype), index, axis=1)
            v = jax.lax.dynamic_update_slice_in_dim(cache_v, v.astype(cache_v.dtype), index, axis=1)
            new_kv = (k, v)
        k, v = k.astype(q.dtype), v.astype(q.dtype)
        scale = 1.0 / math.sqrt(self.head_dim)
        # cuDNN's fused kernel (training rows only) is always causal: training rows are
        # index-causal (a run's prompt and reply come in order), so causal skipping is exact
        # and a mask adds the segment/branch rules on top. XLA is causal only without a mask.
        fused = self.implementation == "cudnn" and kv is None
        if kv is None and not fused and cpu_attention.applies(mask):
            out = cpu_attention.attention(q, k, v, mask, scale, self.window)
        else:
            out = jax.nn.dot_product_attention(
                q,
                k,
                v,
                mask=mask,
                scale=scale,
                is_causal=mask is None or fused,
                local_window_size=(self.window - 1, 0) if mask is None and self.window else None,
                implementation="cudnn" if fused else None,
            )
        return self.o_proj(out.reshape(b, t, self.heads * self.head_dim)), new_kv


class MLP(nnx.Module):
    """SwiGLU: down(silu(gate(x)) * up(x))."""

    def __init__(self, cfg: ModelConfig, dtype, rngs: nnx.Rngs, mesh=None):
        self.mesh = mesh
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = Linear(d, f, cfg.mlp_bias, dtype, rngs)
        self.up_proj = Linear(d, f, cfg.mlp_bias, dtype, rngs)
        self.down_proj = Linear(f, d, cfg.mlp_bias, dtype, rngs)

    def __call__(self, x):
        h = constrain(
            jax.nn.silu(self.gate_proj(x)) * self.up_proj(x), self.mesh, ("batch", None, "mlp")
        )
        return self.down_proj(h)


class Block(nnx.Module):
    """Pre-norm transformer block."""

    def __init__(self, cfg: ModelConfig, dtype, rngs: nnx.Rngs, mesh=None, attention="xla"):
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype)
        self.self_attn = Attention(cfg, dtype, rngs, mesh, attention)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, dtype)
        self.mlp = MLP(cfg, dtype, rngs, mesh)

    def __call__(self, x, cos, sin, mask, kv=None):
        attn, new_kv = self.self_attn(self.input_layernorm(x), cos, sin, mask, kv)
        x = x + attn
        return x + self.mlp(self.post_attention_layernorm(x)), new_kv


def stack_blocks(blocks: list[Block]) -> Block:
    """One Block whose every parameter is the per-layer parameters stacked on axis 0."""
    graphdef, _ = nnx.split(blocks[0])
    states = [nnx.split(b)[1] for b in blocks]
    return nnx.merge(graphdef, jax.tree.map(lambda *xs: jnp.stack(xs), *states))


def attention_mask(
    q_pos, q_seg, k_pos, k_seg, window: int | None, q_branch=None, k_branch=None
) -> jax.Array:
    """[B, 1, Tq, Tk] boolean: causal by position, same non-zero segment, optional sliding window.

    Branches let several continuations share one prefix in a row (prompt, chosen, rejected):
    a key in branch 0 (the shared prefix) is seen by every query of its segment, a key in
    branch b > 0 only by queries of branch b.
    """
    causal = k_pos[:, None, :] <= q_pos[:, :, None]
    same = (q_seg[:, :, None] == k_seg[:, None, :]) & (k_seg[:, None, :] != 0)
    mask = causal & same
    if q_branch is not None:
        kb = k_branch[:, None, :]
        mask &= (kb == 0) | (kb == q_branch[:, :, None])
    if window is not None:
        mask &= q_pos[:, :, None] - k_pos[:, None, :] < window
    return mask[:, None]


class Decoder(nnx.Module):
    """Decoder-only LM: `model(tokens, positions=, segment_ids=)` -> logits [B, T, V] (fp32)."""

    def __init__(
        self,
        cfg: ModelConfig,
        *,
        dtype=jnp.float32,
        param_dtype=jnp.float32,
        remat: str = "none",
        attention: str = "xla",
        scan_layers: bool = False,
        mesh=None,
        rngs: nnx.Rngs,
    ):
        if remat not in REMAT_POLICIES:
            raise ValueError(f"remat={remat!r}; expected one of {', '.join(REMAT_POLICIES)}")
        if attention not in ("xla", "cudnn"):
            raise ValueError(f"attention={attention!r}; expected 'xla' or 'cudnn'")
        if attention == "cudnn" and (
            jax.default_backend() != "gpu" or jnp.dtype(dtype) not in (jnp.bfloat16, jnp.float16)
        ):
            raise ValueError(
                "attention='cudnn' needs an NVIDIA GPU and dtype bf16 or fp16 "
                f"(backend {jax.default_backend()}, dtype {jnp.dtype(dtype).name})"
            )
        self.config = cfg
        self.dtype = dtype
        self.remat = remat
        self.scan_layers = scan_layers
        self.mesh = (
            mesh  # activations are pinned to logical shardings on this mesh (None: no constraints)
        )
        self.embed_tokens = _init(rngs, (cfg.vocab_size, cfg.hidden_size), param_dtype)
        blocks = [Block(cfg, param_dtype, rngs, mesh, attention) for _ in range(cfg.num_layers)]
        # scan_layers: one Block whose parameters carry a leading layer axis [L, ...], built
        # from the same per-layer initialisation as the unrolled list
        self.layers = stack_blocks(blocks) if scan_layers else nnx.List(blocks)
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, param_dtype)
        self.lm_head = (
            None
            if cfg.tie_word_embeddings
            else _init(rngs, (cfg.hidden_size, cfg.vocab_size), param_dtype)
        )

    def output_kernel(self) -> jax.Array:
        """[D, V] output projection (the embedding transposed when tied)."""
        return self.embed_tokens.get_value().T if self.lm_head is None else self.lm_head.get_value()

    def hidden(
        self,
        tokens,
        positions=None,
        segment_ids=None,
        cache: KVCache | None = None,
        *,
        branch=None,
        causal_only: bool = False,
    ):
        """Final-normed hidden states [B, T, D] (and the updated cache when one is given).

        `branch` [B, T] (optional) marks shared-prefix rows (see `attention_mask`).
        `causal_only=True` promises each row is one causal sequence, right-padded, with
        positions 0..T-1: attention then needs no mask (and `model.attention='cudnn'` runs the
        fused kernel); padding positions attend to earlier tokens but nothing reads them.
        """
        b, t = tokens.shape
        if positions is None:
            positions = jnp.broadcast_to(jnp.arange(t, dtype=jnp.int32), (b, t))
        if segment_ids is None:
            segment_ids = jnp.ones((b, t), jnp.int32)
        x = jnp.take(self.embed_tokens.get_value(), tokens, axis=0).astype(self.dtype)
        x = constrain(x, self.mesh, ("batch", None, None))
        cos, sin = rope_tables(self.config, positions, self.dtype)
        if cache is None and causal_only:
            mask = None
        elif cache is None:
            mask = attention_mask(
                positions,
                segment_ids,
                positions,
                segment_ids,
                self.config.sliding_window,
                branch,
                branch,
            )
        else:
            mask, cache = self._cache_mask(cache, positions, segment_ids)
        if self.scan_layers:
            x, new_kv = self._scanned(x, cos, sin, mask, cache)
        else:
            x, new_kv = self._unrolled(x, cos, sin, mask, cache)
        x = self.norm(x)
        if cache is None:
            return x
        return x, KVCache(new_kv[0], new_kv[1], cache.valid, cache.index + t)

    def _block_fn(self, training: bool):
        """fn(layer, x, cos, sin, mask, kv) of one block, rematerialised per `model.remat`."""
        call = lambda m, *a: m(*a)  # noqa: E731
        if self.remat == "none" or not training:
            return call
        return nnx.remat(call, policy=REMAT_POLICIES[self.remat])

    def _unrolled(self, x, cos, sin, mask, cache):
        """The blocks one after another: (x, (keys [L, ...], values [L, ...]) | None)."""
        step = self._block_fn(cache is None)
        new_k, new_v = [], []
        for i, layer in enumerate(self.layers):
            kv = None if cache is None else (cache.k[i], cache.v[i], cache.index)
            x, layer_kv = step(layer, x, cos, sin, mask, kv)
            x = constrain(x, self.mesh, ("batch", None, None))
            if layer_kv is not None:
                new_k.append(layer_kv[0])
                new_v.append(layer_kv[1])
        return x, (None if cache is None else (jnp.stack(new_k), jnp.stack(new_v)))

    def _scanned(self, x, cos, sin, mask, cache):
        """The stacked blocks in one `lax.scan` (one block compiled once, not L times)."""
        graphdef, stacked = nnx.split(self.layers)

        def body(h, xs):
            """One layer: its parameter slice (and cache slice) in, hidden state carried."""
            params, kv, layer = xs
            kv = None if kv is None else (kv[0], kv[1], cache.index)
            with scanned_layer(layer):  # LoRA dropout: each layer its own mask
                h, new = nnx.merge(graphdef, params)(h, cos, sin, mask, kv)
            return constrain(h, self.mesh, ("batch", None, None)), new

        if self.remat != "none" and cache is None:
            body = jax.checkpoint(body, policy=REMAT_POLICIES[self.remat], prevent_cse=False)
        kvs = None if cache is None else (cache.k, cache.v)
        depth = jax.tree.leaves(stacked)[0].shape[0]  # the stacked layer axis
        return jax.lax.scan(body, x, (stacked, kvs, jnp.arange(depth)))

    def _cache_mask(self, cache: KVCache, positions, segment_ids):
        """Mark the new slots valid and build the [B, 1, T, S] mask over cache slots."""
        t = positions.shape[1]
        slots = cache.valid.shape[1]
        valid = jax.lax.dynamic_update_slice_in_dim(
            cache.valid, segment_ids != 0, cache.index, axis=1
        )
        slot_ids = jnp.arange(slots, dtype=jnp.int32)
        q_slot = cache.index + jnp.arange(t, dtype=jnp.int32)
        causal = slot_ids[None, None, :] <= q_slot[None, :, None]
        mask = causal & valid[:, None, :]
        if self.config.sliding_window is not None:
            # Slot distance equals position distance between valid tokens of one row.
            mask &= q_slot[None, :, None] - slot_ids[None, None, :] < self.config.sliding_window
        return mask[:, None], KVCache(cache.k, cache.v, valid, cache.index)

    def logits(self, hidden: jax.Array) -> jax.Array:
        """Full logits [B, T, V] in fp32 from hidden states."""
        logits = (hidden @ self.output_kernel().astype(hidden.dtype)).astype(jnp.float32)
        return constrain(logits, self.mesh, ("batch", None, "vocab"))

    def __call__(self, tokens, positions=None, segment_ids=None):
        return self.logits(self.hidden(tokens, positions, segment_ids))

"""Attention for training rows on the CPU backend: the values of `jax.nn.dot_product_attention`
in a layout XLA:CPU runs faster.

jax.nn's XLA path keeps q [B, T, H, Dh] and the scores [B, K, G, T, S] in its own layouts, so
XLA:CPU adds transposes around every dot, takes a weight-style transposed-left product (Eigen,
not XNNPACK) for dK and dV, and spends the causal half of the scores on masked work. Here the
G query heads that share a kv head are stacked into one row axis, [B, K, T*G, Dh] (row t*G+g),
so each product is a batched matmul with leading batch dims; the backward pass is written out
(`custom_vjp`) with dK and dV computed transposed from small materialised operands; and causal
rows are cut into query blocks that skip the keys after the block (a quarter of the scores at
two blocks). Values equal the generic path's (tested to 1e-5 with every mask the model builds).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp

# jax.nn's filler for masked fp32 logits: finite, so a row with no allowed key is uniform as there
_MASKED = 0.7 * float(jnp.finfo(jnp.float32).min)


def applies(mask) -> bool:
    """Whether `attention` serves this call: CPU backend, a mask shared by all heads or none."""
    return jax.default_backend() == "cpu" and (mask is None or mask.shape[1] == 1)


def _rows(x: jax.Array, kv_heads: int) -> jax.Array:
    """[B, T, H, Dh] -> [B, K, T*G, Dh]: the G heads of a kv group stacked per token."""
    b, t, h, d = x.shape
    g = h // kv_heads
    return x.reshape(b, t, kv_heads, g, d).transpose(0, 2, 1, 3, 4).reshape(b, kv_heads, t * g, d)


def _unrows(x: jax.Array, t: int) -> jax.Array:
    """[B, K, T*G, Dh] -> [B, T, H, Dh] (the inverse of `_rows`)."""
    b, kv, r, d = x.shape
    return x.reshape(b, kv, t, r // t, d).transpose(0, 2, 1, 3, 4).reshape(b, t, r // t * kv, d)


def _spans(t: int, causal: bool) -> tuple:
    """Query-token blocks (t0, t1, keys): block rows see keys [0, keys). Causal rows get blocks
    of >= 64 tokens, each skipping the keys after it; masked rows one block over every key."""
    n = next((n for n in (4, 2) if t % n == 0 and t // n >= 64), 1) if causal else 1
    size = t // n
    return tuple((i * size, (i + 1) * size, (i + 1) * size if causal else t) for i in range(n))


def _allowed(span, g: int, window, mask):
    """[.., rows, keys] boolean of one block: the row mask's slice, or causal (+ window)."""
    t0, t1, keys = span
    if mask is not None:
        return mask[:, :, t0 * g : t1 * g, :keys]
    q = t0 + jnp.arange((t1 - t0) * g) // g
    k = jnp.arange(keys)
    ok = k[None, :] <= q[:, None]
    return ok if window is None else ok & (q[:, None] - k[None, :] < window)


def _probs(qs, kt, allowed, dtype):
    """Softmax over keys of the block's scores, in fp32, cast to the value dtype."""
    s = jnp.einsum("bkrd,bksd->bkrs", qs, kt, preferred_element_type=jnp.float32)
    s = jnp.where(allowed, s, _MASKED)
    e = jnp.exp(s - jnp.max(s, axis=-1, keepdims=True))
    return (e / jnp.sum(e, axis=-1, keepdims=True)).astype(dtype)


def _forward(spans, window, qs, kt, vt, mask):
    """(output [B, K, T*G, Dh], per-block probabilities)."""
    g = qs.shape[2] // kt.shape[2]
    probs, outs = [], []
    for span in spans:
        t0, t1, keys = span
        p = _probs(
            qs[:, :, t0 * g : t1 * g], kt[:, :, :keys], _allowed(span, g, window, mask), vt.dtype
        )
        probs.append(p)
        outs.append(jnp.einsum("bkrs,bksd->bkrd", p, vt[:, :, :keys]))
    return jnp.concatenate(outs, axis=2), probs


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _core(spans, window, qs, kt, vt, mask):
    """Attention of row-stacked queries qs (pre-scaled) over kt, vt [B, K, S, Dh]."""
    return _forward(spans, window, qs, kt, vt, mask)[0]


def _core_fwd(spans, window, qs, kt, vt, mask):
    """Forward pass: the output and what the backward pass reads."""
    out, probs = _forward(spans, window, qs, kt, vt, mask)
    return out, (qs, kt, vt, mask, probs, out)


def _core_bwd(spans, window, res, do):
    """dq = dS k; dk^T = q^T dS and dv^T = dO^T P from materialised q^T, dO^T (small), so every
    product is a plain batched matmul; dS is zeroed where masked (rows with no allowed key)."""
    qs, kt, vt, mask, probs, out = res
    g, s = qs.shape[2] // kt.shape[2], kt.shape[2]
    delta = jnp.sum(do.astype(jnp.float32) * out.astype(jnp.float32), axis=-1, keepdims=True)
    q_t = jax.lax.optimization_barrier(jnp.swapaxes(qs, -1, -2))
    do_t = jax.lax.optimization_barrier(jnp.swapaxes(do, -1, -2))
    dq, dk_t, dv_t = [], 0, 0
    for span, p in zip(spans, probs):
        t0, t1, keys = span
        r = slice(t0 * g, t1 * g)
        dp = jnp.einsum(
            "bkrd,bksd->bkrs", do[:, :, r], vt[:, :, :keys], preferred_element_type=jnp.float32
        )
        ds = p * (dp - delta[:, :, r])
        if mask is not None:
            ds = jnp.where(_allowed(span, g, window, mask), ds, 0.0)
        ds = ds.astype(qs.dtype)
        dq.append(jnp.einsum("bkrs,bksd->bkrd", ds, kt[:, :, :keys]))
        pad = ((0, 0), (0, 0), (0, 0), (0, s - keys))
        dk_t = dk_t + jnp.pad(jnp.einsum("bkdr,bkrs->bkds", q_t[..., r], ds), pad)
        dv_t = dv_t + jnp.pad(jnp.einsum("bkdr,bkrs->bkds", do_t[..., r], p), pad)
    dk, dv = jnp.swapaxes(dk_t, -1, -2), jnp.swapaxes(dv_t, -1, -2)
    return jnp.concatenate(dq, axis=2), dk.astype(kt.dtype), dv.astype(vt.dtype), None


_core.defvjp(_core_fwd, _core_bwd)


def attention(q, k, v, mask, scale: float, window: int | None) -> jax.Array:
    """jax.nn.dot_product_attention(q, k, v, mask, scale=scale) for q [B, T, H, Dh], k, v
    [B, S, K, Dh] (S == T): with `mask` [B, 1, T, S] as given, else causal with an optional
    sliding `window` (keys at most window - 1 tokens back)."""
    b, t, _, _ = q.shape
    kv_heads = k.shape[2]
    g = q.shape[2] // kv_heads
    rows = None
    if mask is not None:
        s = mask.shape[-1]
        rows = jnp.broadcast_to(mask[:, :, :, None, :], (b, 1, t, g, s)).reshape(b, 1, t * g, s)
    spans = _spans(t, mask is None)
    qs = _rows(q * jnp.asarray(scale, q.dtype), kv_heads)
    kt, vt = jnp.swapaxes(k, 1, 2), jnp.swapaxes(v, 1, 2)
    out = _core(spans, None if mask is not None else window, qs, kt, vt, rows)
    return _unrows(out, t)

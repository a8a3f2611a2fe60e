"""Per-token log-probabilities of target tokens without materialising [B, T, V] logits.

The sequence is processed in chunks of `chunk` tokens; each chunk's logits [B, chunk, V]
live only inside a rematerialised scan step, so forward and backward peak memory grow with
B * chunk * V, not B * T * V.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def _chunk_logprobs(hidden: jax.Array, kernel: jax.Array, targets: jax.Array) -> jax.Array:
    """log softmax(hidden @ kernel)[targets] for one chunk, in fp32: [B, C]."""
    logits = (hidden @ kernel.astype(hidden.dtype)).astype(jnp.float32)
    picked = jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return picked - jax.nn.logsumexp(logits, axis=-1)


def token_logprobs(
    hidden: jax.Array, kernel: jax.Array, targets: jax.Array, chunk: int = 256
) -> jax.Array:
    """[B, T] fp32 log p(targets | hidden) for hidden [B, T, D], output kernel [D, V], targets [B, T]."""
    b, t, d = hidden.shape
    chunk = max(1, min(chunk, t))
    pad = -t % chunk
    if pad:
        hidden = jnp.pad(hidden, ((0, 0), (0, pad), (0, 0)))
        targets = jnp.pad(targets, ((0, 0), (0, pad)))
    n = (t + pad) // chunk
    if n == 1:  # one chunk: nothing to save by recomputing its logits in the backward pass
        return _chunk_logprobs(hidden, kernel, targets)[:, :t]
    hs = hidden.reshape(b, n, chunk, d).swapaxes(0, 1)
    ts = targets.reshape(b, n, chunk).swapaxes(0, 1)
    step = jax.checkpoint(lambda args: _chunk_logprobs(args[0], kernel, args[1]))
    out = jax.lax.map(step, (hs, ts))  # [n, B, C]
    return out.swapaxes(0, 1).reshape(b, n * chunk)[:, :t]


def naive_token_logprobs(hidden: jax.Array, kernel: jax.Array, targets: jax.Array) -> jax.Array:
    """Reference: full logits then log-softmax (materialises [B, T, V])."""
    return _chunk_logprobs(hidden, kernel, targets)

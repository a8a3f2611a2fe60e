"""`dense`: x @ kernel for the model's linear layers, with a faster kernel gradient on CPU."""

from __future__ import annotations

import jax


@jax.custom_vjp
def _cpu_dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x @ kernel, whose kernel gradient is a plain [in, M] @ [M, out] product (see `dense`)."""
    return x @ kernel


def _cpu_dense_fwd(x, kernel):
    """Forward pass: the product and what the backward pass reads."""
    return x @ kernel, (x, kernel)


def _cpu_dense_bwd(res, dy):
    """dx = dy @ kernel^T; dkernel = x^T @ dy with x^T materialised (a barrier keeps XLA from
    folding the transpose back into the dot), so XLA:CPU hands the product to its XNNPACK
    (YNN) matmul instead of the slower Eigen one it uses for a transposed left operand."""
    x, kernel = res
    x2 = x.reshape(-1, x.shape[-1])
    dk = jax.lax.optimization_barrier(x2.T) @ dy.reshape(-1, dy.shape[-1])
    return dy @ kernel.T, dk.astype(kernel.dtype)


_cpu_dense.defvjp(_cpu_dense_fwd, _cpu_dense_bwd)


def dense(x: jax.Array, kernel: jax.Array) -> jax.Array:
    """x [..., in] @ kernel [in, out]: the same product everywhere; on the CPU backend its
    kernel gradient takes the faster matmul path (`_cpu_dense_bwd`)."""
    if jax.default_backend() == "cpu" and kernel.ndim == 2:
        return _cpu_dense(x, kernel)
    return x @ kernel

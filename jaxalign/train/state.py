"""Train state: a plain pytree {params, opt_state, step}, its shardings, and its abstract form."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxalign.sharding import pinned


def init_state(params, tx: optax.GradientTransformation, mesh):
    """(state, shardings): the optimizer state beside `params`, pinned to the params' layout."""
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    shardings = pinned(state, mesh)
    return jax.device_put(state, shardings), shardings


def abstract_state(params, tx: optax.GradientTransformation):
    """ShapeDtypeStructs of the state `init_state` would build, without allocating it."""
    return jax.eval_shape(
        lambda p: {"params": p, "opt_state": tx.init(p), "step": jnp.zeros((), jnp.int32)}, params
    )


@jax.jit
def all_finite(tree) -> jax.Array:
    """Whether every floating-point leaf of `tree` is finite (the guard before a checkpoint)."""
    leaves = [
        jnp.isfinite(x).all() for x in jax.tree.leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)
    ]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.array(True)

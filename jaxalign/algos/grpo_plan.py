"""The GRPO step on abstract shapes, for the memory plan (`jaxalign train --dry-run`).

A GRPO step runs up to three compiled programs, each while the others' arrays stay on the
device: the rollout (prefill of `P` prompts, KV cache tiled to `P x G` rows, decode up to
`grpo.max_completion_len` tokens), the old-policy / reference log-probs (only when μ or
`steps_per_rollout` > 1, or β > 0) and the learner step. Each is compiled as
`jaxalign.algos.grpo` builds it, on the widest rows the config allows (every prompt at
`grpo.max_prompt_len` tokens); the plan's peak is the largest of the three.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import nnx

from jaxalign.algos.dpo_plan import abstract, frozen_copy, like_params, plannable
from jaxalign.config import Config, GRPORun, project
from jaxalign.models.spec import abstract_model
from jaxalign.sharding import named
from jaxalign.train.grpo import make_grpo_rollout, make_learner_step, make_logps_fn
from jaxalign.train.memory import StepSpec
from jaxalign.train.optim import make_optimizer, update_count
from jaxalign.train.state import abstract_state

# Learner rows (jaxalign.algos.grpo_rollout.learner_rows): name -> (dtype, completion-wide)
ROWS = {
    "tokens": (jnp.int32, None),
    "segment_ids": (jnp.int32, None),
    "start": (jnp.int32, ()),
    "mask": (jnp.float32, "c"),
    "advantages": (jnp.float32, ()),
    "old_logps": (jnp.float32, "c"),
    "ref_logps": (jnp.float32, "c"),
}


def row_keys(cfg: GRPORun) -> list[str]:
    """The arrays one learner batch holds (old/reference log-probs only when they are used)."""
    g = cfg.grpo
    keys = ["tokens", "segment_ids", "start", "mask", "advantages"]
    if g.steps_per_rollout * g.num_iterations > 1:
        keys.append("old_logps")
    if g.beta > 0:
        keys.append("ref_logps")
    return keys


def abstract_rows(cfg: GRPORun, mesh, keys) -> dict:
    """One learner batch (`grpo.batch_size` rows of prompt + completion), split over the batch
    axes as `jaxalign.algos.dpo_eval._put` places it."""
    g = cfg.grpo
    b, c, width = g.batch_size, g.max_completion_len, g.max_prompt_len + g.max_completion_len
    out = {}
    for key in keys:
        dtype, kind = ROWS[key]
        shape = (b,) if kind == () else (b, c) if kind == "c" else (b, width)
        axes = ("batch",) + (None,) * (len(shape) - 1)
        out[key] = jax.ShapeDtypeStruct(shape, dtype, sharding=named(mesh, axes, shape))
    return out


def rollout_args(cfg: GRPORun, params) -> tuple:
    """The rollout's arguments: parameters, left-padded prompts and valid masks [P, W] (host
    arrays, placed by jit as numpy inputs are), the key, temperature and top-p."""
    g = cfg.grpo
    prompts = g.batch_size * g.steps_per_rollout // g.num_generations
    host = jax.ShapeDtypeStruct((prompts, g.max_prompt_len), jnp.int32)
    key = jax.eval_shape(lambda: jax.random.key(0))
    scalar = jax.ShapeDtypeStruct((), jnp.float32)
    return params, host, host, key, scalar, scalar


def kv_cache(cfg: GRPORun, config, dtype, mesh) -> jax.ShapeDtypeStruct:
    """The rollout's KV cache [layers, P x G rows, W + C slots, KV heads, head dim] (keys and
    values: both counted), in the batch / KV-head split its activations are pinned to."""
    g = cfg.grpo
    rows = g.batch_size * g.steps_per_rollout
    shape = (2 * config.num_layers, rows, g.max_prompt_len + g.max_completion_len)
    shape += (config.num_kv_heads, config.head_dim)
    sharding = named(mesh, (None, "batch", None, "kv_heads", None), shape)
    return jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)


def build(cfg: GRPORun, mesh, model):
    """(graphdef, params, state, learner, rollout, logps) as `jaxalign.algos.grpo.setup` has
    them, on abstract parameters."""
    g = cfg.grpo
    graphdef, concrete = nnx.split(model)
    params = abstract(concrete, mesh)
    tx = make_optimizer(cfg.optim, update_count(cfg.optim, cfg.train.steps))
    state = like_params(abstract_state(params, tx), params, mesh)
    state["params"] = params
    shardings = jax.tree.map(lambda a: a.sharding, state)
    learner = make_learner_step(graphdef, tx, g, shardings)
    eos = tuple(model.config.eos_token_id) or (0,)
    rollout = make_grpo_rollout(graphdef, g, eos, 0, model.dtype)
    return state, learner, rollout, make_logps_fn(graphdef, g)


def step_spec(config, mesh) -> StepSpec:
    """The learner step with the rollout and log-prob programs as further phases of one step."""
    from jaxalign.algos.grpo import check_rows, refuse_unsupported

    if isinstance(config, Config):
        refuse_unsupported(config)
    cfg = project(config, GRPORun) if isinstance(config, Config) else config
    check_rows(cfg, mesh)
    cfg, note = plannable(cfg, mesh)
    g = cfg.grpo
    model = abstract_model(cfg.model, mesh)
    state, learner, rollout, logps = build(cfg, mesh, model)
    params, opt = state["params"], state["opt_state"]
    ref = frozen_copy(params, model.dtype) if g.beta > 0 else None
    keys = row_keys(cfg)
    rows = abstract_rows(cfg, mesh, keys)
    spec = StepSpec(learner, (state, rows), {}, name="learner step", resident=ref)
    spec.parts = {"parameters": params, "optimizer state": opt, "reference": ref or {}}
    spec.parts["batch"] = rows
    cache = kv_cache(cfg, model.config, model.dtype, mesh)
    spec.rows = {"KV cache (rollout)": cache}
    spec.phases["rollout"] = StepSpec(rollout, rollout_args(cfg, params), {}, resident=(opt, ref))
    if len(keys) > 5:  # old or reference log-probs, one learner-sized batch at a time
        inputs = abstract_rows(cfg, mesh, keys[:4])
        spec.phases["log-probs"] = StepSpec(logps, (params, inputs), {}, resident=(opt, ref))
    prompts = g.batch_size * g.steps_per_rollout // g.num_generations
    width = g.max_prompt_len + g.max_completion_len
    spec.shape = (
        f"GRPO, learner {g.batch_size} rows x {width} tokens, rollout {prompts} prompts x "
        f"{g.num_generations} generations x ({g.max_prompt_len} + {g.max_completion_len}) "
        f"tokens, reference {'model' if ref is not None else 'none'}{note}"
    )
    return spec

"""The DPO step on abstract shapes, for the memory plan (`jaxalign train --dry-run`).

Same model, optimizer, reference and step as `jaxalign.algos.dpo.setup`, with every array
replaced by a `jax.ShapeDtypeStruct` in its training sharding; the batch is the largest the
config allows (every pair at `data.max_len` tokens with a `data.max_prompt_len` prompt).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxalign.algos.dpo_eval import row_options
from jaxalign.config import DPORun
from jaxalign.data.preferences import Encoded, collate, longest_run, row_width
from jaxalign.models.spec import abstract_model
from jaxalign.sharding import named
from jaxalign.train.dpo import make_train_step, reference_kind
from jaxalign.train.memory import StepSpec
from jaxalign.train.optim import make_optimizer, update_count
from jaxalign.train.state import abstract_state


def widest_pairs(cfg: DPORun) -> Encoded:
    """`data.batch_size` pairs as long as the config lets them be (token ids are irrelevant):
    `data.max_len` tokens with a `data.max_prompt_len` prompt, shortened to the largest row
    training accepts (the largest bucket, or `data.pack_len`); longer pairs are refused when
    the data is read."""
    d = cfg.data
    cap = d.pack_len or d.buckets[-1]
    prompt = min(d.max_prompt_len, d.max_len - 1)
    total = d.max_len
    if d.layout == "pairs":
        total = min(total, cap)
        prompt = min(prompt, total - 1)
    elif prompt + 2 * (total - prompt) > cap:  # one row holds the prompt and both responses
        reply = max((cap - prompt) // 2, 1)
        prompt = min(prompt, cap - 2 * reply)
        total = prompt + reply
    data = Encoded(groups=["all"])
    for _ in range(d.batch_size):
        data.chosen.append(np.ones(total, np.int32))
        data.rejected.append(np.ones(total, np.int32))
        data.prompt_len.append(prompt)
        data.weight.append(1.0)
        data.soft_label.append(1.0)
        data.group.append(0)
    return data


def abstract_batch(cfg: DPORun, mesh, cached_reference: bool) -> dict:
    """The shapes (and batch shardings) of the widest training batch (`widest_pairs`)."""
    data = widest_pairs(cfg)
    d = cfg.data
    width = row_width(longest_run(data, d.layout), d.pack_len, d.buckets)
    ref = np.zeros((len(data), 2), np.float32) if cached_reference else None
    options = {**row_options(cfg, mesh), "process_index": 0, "process_count": 1}
    host = collate(data, range(len(data)), (width,), 0, ref, **options)
    return {
        k: jax.ShapeDtypeStruct(
            v.shape, v.dtype, sharding=named(mesh, ("batch",) + (None,) * (v.ndim - 1), v.shape)
        )
        for k, v in host.items()
    }


def like_params(tree, params, mesh):
    """Abstract optimizer state placed as training places it: every subtree shaped like the
    parameters (Adam's moments, accumulated gradients) in the parameters' shardings, the rest
    (counters) replicated."""
    replicated = NamedSharding(mesh, PartitionSpec())
    structure = jax.tree.structure(params)
    is_params = lambda x: jax.tree.structure(x) == structure  # noqa: E731

    def place(sub):
        """One parameter-shaped subtree, or one other leaf."""
        if is_params(sub):
            return jax.tree.map(
                lambda a, p: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=p.sharding),
                sub,
                params,
            )
        return jax.ShapeDtypeStruct(sub.shape, sub.dtype, sharding=replicated)

    return jax.tree.map(place, tree, is_leaf=is_params)


def abstract(tree, mesh):
    """Abstract arrays of `tree` (concrete or abstract), replicated where they carry no
    NamedSharding (LoRA's adapters are created replicated)."""
    replicated = NamedSharding(mesh, PartitionSpec())
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(
            x.shape,
            x.dtype,
            sharding=x.sharding if isinstance(x.sharding, NamedSharding) else replicated,
        ),
        tree,
    )


def plannable(cfg, mesh):
    """(config, note): cuDNN attention planned as XLA's on a machine without a GPU."""
    if cfg.model.attention == "cudnn" and mesh.devices.flat[0].platform != "gpu":
        # cuDNN's kernel needs a GPU; XLA's attention holds the scores: an upper bound
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, attention="xla"))
        return cfg, "; model.attention=cudnn planned as xla (no GPU)"
    return cfg, ""


def step_spec(cfg: DPORun, mesh) -> StepSpec:
    """The DPO train step and its abstract arguments on `mesh` (full fine-tuning or LoRA)."""
    from jaxalign.algos.dpo import trainable

    cfg, note = plannable(cfg, mesh)
    model = abstract_model(cfg.model, mesh)
    parts = trainable(cfg, model)  # LoRA's adapters are small: created for real, then abstracted
    params = abstract(parts.params, mesh)
    tx = make_optimizer(cfg.optim, update_count(cfg.optim, cfg.train.steps))
    state = like_params(abstract_state(params, tx), params, mesh)
    state["params"] = params
    shardings = jax.tree.map(lambda a: a.sharding, state)
    kind = reference_kind(cfg.dpo)
    ref_params = None
    if kind == "model":  # LoRA: the frozen base itself; else a compute-dtype copy
        ref_params = parts.base if parts.adapters else frozen_copy(parts.base, model.dtype)
    batch = abstract_batch(cfg, mesh, kind == "cache")
    step = make_train_step(parts.graphdef, tx, cfg.dpo, cfg.data, shardings, parts.adapters)
    rows, width = batch["tokens"].shape
    spec = StepSpec(step, (state, ref_params, batch, parts.frozen), {})
    spec.parts["parameters"] = parts.frozen if parts.adapters else params
    if parts.adapters:
        spec.parts["adapters (trained)"] = params
    spec.parts["optimizer state"] = state["opt_state"]
    if parts.adapters and kind == "model":
        spec.parts["reference"] = {}  # the frozen base: the same buffers, passed twice
        spec.shared = ref_params
    else:
        spec.parts["reference"] = ref_params if kind == "model" else batch.get("ref_logps", {})
    spec.parts["batch"] = {k: v for k, v in batch.items() if k != "ref_logps"}
    lora = f", LoRA rank {cfg.lora.rank}" if parts.adapters else ""
    spec.shape = f"DPO{lora}, {rows} rows x {width} tokens, reference {kind}{note}"
    return spec


def frozen_copy(params, dtype):
    """The in-step reference's abstract weights: the parameters in the compute dtype."""
    return jax.tree.map(lambda p: jax.ShapeDtypeStruct(p.shape, dtype, sharding=p.sharding), params)

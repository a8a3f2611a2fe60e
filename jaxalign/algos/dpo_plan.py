"""The DPO step on abstract shapes, for the memory plan (`jaxalign train --dry-run`).

Same model, optimizer, reference and step as `jaxalign.algos.dpo.setup`, with every array
replaced by a `jax.ShapeDtypeStruct` in its training sharding; the batch is the largest the
config allows (every pair at `data.max_len` tokens with a `data.max_prompt_len` prompt).
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
from flax import nnx
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
    """`data.batch_size` pairs as long as the config lets them be (token ids are irrelevant)."""
    d = cfg.data
    prompt = min(d.max_prompt_len, d.max_len - 1)
    data = Encoded(groups=["all"])
    for _ in range(d.batch_size):
        data.chosen.append(np.ones(d.max_len, np.int32))
        data.rejected.append(np.ones(d.max_len, np.int32))
        data.prompt_len.append(prompt)
        data.weight.append(1.0)
        data.soft_label.append(1.0)
        data.group.append(0)
    return data


def abstract_batch(cfg: DPORun, mesh, cached_reference: bool) -> dict:
    """The shapes (and batch shardings) of the widest training batch."""
    data = widest_pairs(cfg)
    width = row_width(longest_run(data, cfg.data.layout), cfg.data.pack_len, cfg.data.buckets)
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


def step_spec(cfg: DPORun, mesh) -> StepSpec:
    """The DPO train step and its abstract arguments on `mesh`."""
    note = ""
    if cfg.model.attention == "cudnn" and mesh.devices.flat[0].platform != "gpu":
        # cuDNN's kernel needs a GPU; XLA's attention holds the scores: an upper bound
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, attention="xla"))
        note = "; model.attention=cudnn planned as xla (no GPU)"
    model = abstract_model(cfg.model, mesh)
    graphdef, params = nnx.split(model)
    tx = make_optimizer(cfg.optim, update_count(cfg.optim, cfg.train.steps))
    state = like_params(abstract_state(params, tx), params, mesh)
    state["params"] = params
    shardings = jax.tree.map(lambda a: a.sharding, state)
    kind = reference_kind(cfg.dpo)
    ref_params = (
        jax.tree.map(
            lambda p: jax.ShapeDtypeStruct(p.shape, model.dtype, sharding=p.sharding), params
        )
        if kind == "model"
        else None
    )
    batch = abstract_batch(cfg, mesh, kind == "cache")
    step = make_train_step(graphdef, tx, cfg.dpo, cfg.data, shardings)
    rows, width = batch["tokens"].shape
    parts = {"parameters": state["params"], "optimizer state": state["opt_state"]}
    parts["reference"] = ref_params if kind == "model" else batch.get("ref_logps", {})
    parts["batch"] = {k: v for k, v in batch.items() if k != "ref_logps"}
    shape = f"DPO, {rows} rows x {width} tokens, reference {kind}{note}"
    return StepSpec(step, (state, ref_params, batch), parts, shape)

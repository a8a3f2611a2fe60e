"""DPO data on devices: batch placement, all log-probs of a split, the reference cache,
held-out evaluation (overall and per rater group) and FLOPs per step.

The loop is `jaxalign.train.runner`; `jaxalign.algos.dpo` wires these into it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import jax
import numpy as np
from jax.experimental import multihost_utils

from jaxalign.config import Config, to_dict
from jaxalign.data.preferences import (
    Encoded,
    eval_batches,
)
from jaxalign.models.weights import param_table
from jaxalign.progress import bar
from jaxalign.sharding import named
from jaxalign.train.dpo import eval_rewards

log = logging.getLogger("jaxalign")


def _put(mesh, batch: dict) -> dict:
    """This process's share of a batch -> global device arrays sharded over the batch axis.

    Every array is split over its leading dimension (rows, or pair slots); with several
    processes each contributes its own rows (`collate(process_index=...)`).
    """
    out = {}
    for k, v in batch.items():
        sharding = named(mesh, ("batch",) + (None,) * (v.ndim - 1), v.shape)
        if jax.process_count() == 1:
            out[k] = jax.device_put(v, sharding)
        else:
            out[k] = jax.make_array_from_process_local_data(sharding, v)
    return out


def row_options(cfg: Config, mesh) -> dict:
    """`collate` options from the config, the mesh and this process."""
    return {
        "layout": cfg.data.layout,
        "pack_len": cfg.data.pack_len,
        "rows_multiple": int(mesh.shape["data"] * mesh.shape["fsdp"]) if mesh is not None else 1,
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
    }


def all_logps(params, data: Encoded, logps_fn, cfg: Config, mesh, pad_id: int, desc="log-probs"):
    """Summed response log-probs [N, 2] and response lengths [N, 2] of every pair in `data`."""
    logps = np.zeros((len(data), 2), np.float32)
    lengths = np.ones((len(data), 2), np.float32)
    batches = eval_batches(
        data,
        batch_size=cfg.data.eval_batch_size,
        buckets=cfg.data.buckets,
        pad_id=pad_id,
        **row_options(cfg, mesh),
    )
    with bar(batches, desc=desc, unit="batch", leave=False, disable=None) as ticks:
        for batch in ticks:
            lp, ln = _gather(logps_fn(params, _put(mesh, batch)))
            index, valid = _gather((batch["index"], batch["valid"] > 0))
            logps[index[valid]] = lp[valid]
            lengths[index[valid]] = ln[valid]
    return logps, lengths


def _gather(tree):
    """Numpy copies of global arrays (or of every process's host arrays, concatenated)."""
    if jax.process_count() > 1:
        tree = multihost_utils.process_allgather(tree, tiled=True)
    return jax.tree.map(np.asarray, jax.device_get(tree))


def reference_cache(
    cfg: Config, split: str, data: Encoded, params, logps_fn, mesh, pad_id: int
) -> np.ndarray:
    """Reference log-probs [N, 2] for every pair, cached beside the data file (keyed by model and data)."""
    key_src = json.dumps(
        {"model": to_dict(cfg.model), "data": data.fingerprint(), "chunk": cfg.dpo.logprob_chunk},
        sort_keys=True,
    )
    key = hashlib.sha256(key_src.encode()).hexdigest()[:16]
    prefs = Path(cfg.data.prefs)
    path = prefs.with_name(f"{prefs.stem}.ref-{split}-{key}.npy")
    if path.exists():
        cached = np.load(path)
        if cached.shape == (len(data), 2):
            return cached
    out, _ = all_logps(params, data, logps_fn, cfg, mesh, pad_id, f"reference {split}")
    tmp = path.with_name(path.name + ".tmp.npy")
    if jax.process_index() == 0:  # every process computed it; one writes (shared filesystem)
        np.save(tmp, out)
        tmp.replace(path)
    return out


def evaluate(
    params, data: Encoded, ref: np.ndarray | None, logps_fn, cfg: Config, mesh, pad_id: int
) -> dict:
    """Held-out preference accuracy and margins, overall and per rater group.

    Accuracies weight each record by its `weight` (so `preserve` records count by their share
    of rater comparisons) and count ties as half (an untrained policy scores 0.5).
    """
    if not len(data):
        return {}
    logps, lengths = all_logps(params, data, logps_fn, cfg, mesh, pad_id, "evaluate")
    rewards = eval_rewards(logps, lengths, ref, cfg.dpo)
    groups = np.asarray(data.group)
    weights = np.asarray(data.weight, np.float64)
    out = {}
    for name, rows in [("", np.ones(len(data), bool))] + [
        (f"/{g}", groups == i) for i, g in enumerate(data.groups)
    ]:
        if not rows.any() or (name and len(data.groups) < 2):
            continue
        r, lp, ln, w = rewards[rows], logps[rows], lengths[rows], weights[rows]
        out[f"eval/rewards/accuracies{name}"] = _agreement(r[:, 0], r[:, 1], w)
        out[f"eval/rewards/margins{name}"] = float(np.average(r[:, 0] - r[:, 1], weights=w))
        out[f"eval/logp_accuracy{name}"] = _agreement(lp[:, 0], lp[:, 1], w)
        out[f"eval/logp_accuracy_normalized{name}"] = _agreement(
            lp[:, 0] / ln[:, 0], lp[:, 1] / ln[:, 1], w
        )
    out["eval/pairs"] = float(len(data))
    return out


def _agreement(chosen: np.ndarray, rejected: np.ndarray, weights: np.ndarray) -> float:
    """Record-weighted share of pairs where chosen scores higher (ties count half)."""
    hits = (chosen > rejected) + 0.5 * (chosen == rejected)
    return float(np.average(hits, weights=weights))


def step_flops(
    model, rows: int, seq: int, reference_in_step: bool, frozen_base: bool = False
) -> dict[str, float]:
    """FLOPs of one DPO step on a batch of `rows` rows of `seq` tokens, by part.

    Policy forward + backward 6 N per token (4 N with a frozen LoRA base: no weight
    gradients; the adapters' own FLOPs are negligible), reference forward 2 N per token (when
    it runs in the step), causal attention 12 L d T^2 / 2 per row for forward + backward (a
    third of that for the reference forward). Padding tokens count: they are computed.
    """
    n = sum(int(np.prod(p.get_value().shape)) for _, p, _, _ in param_table(model))
    cfg = model.config
    tokens = rows * seq
    attention = 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * seq * seq / 2 * rows
    parts = {
        "policy": (4.0 if frozen_base else 6.0) * n * tokens,
        "attention": attention + (attention / 3 if reference_in_step else 0.0),
        "reference": 2.0 * n * tokens if reference_in_step else 0.0,
    }
    parts["total"] = sum(parts.values())
    return parts

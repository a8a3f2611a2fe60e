"""The DPO training loop: model + data + reference + optimizer + checkpoints + logs.

`train(cfg)` runs (or resumes) a run in `cfg.train.run_dir`. Metrics of step n are read
after step n+1 is dispatched; evaluation reports held-out preference accuracy and margins,
overall and per rater group.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from tqdm.auto import tqdm

from jaxalign import __version__
from jaxalign.checkpoint import Checkpoints, abstract, git_commit
from jaxalign.config import Config, ModelSpec, config_hash, dump, to_dict
from jaxalign.data.chat import eos_ids
from jaxalign.data.chat import pad_id as chat_pad_id
from jaxalign.data.preferences import (
    Encoded,
    encode,
    eval_batches,
    longest_run,
    row_width,
    train_dataset,
)
from jaxalign.data.records import read_split
from jaxalign.errors import JaxalignError
from jaxalign.logging import MetricsWriter
from jaxalign.models.config import ModelConfig
from jaxalign.models.loading import (
    DTYPES,
    build,
    load_pretrained,
    load_tokenizer,
    random_tensors,
    resolve,
)
from jaxalign.models.weights import param_table
from jaxalign.sharding import make_mesh, named, pinned
from jaxalign.train.dpo import (
    eval_rewards,
    frozen_reference,
    make_logps_fn,
    make_optimizer,
    make_train_step,
    reference_kind,
)

log = logging.getLogger("jaxalign")


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
            tokenizer=not spec.tokenizer,
        )
        if spec.tokenizer:
            tokenizer = load_tokenizer(resolve(spec.tokenizer))
        return model, tokenizer
    if not spec.tokenizer:
        raise JaxalignError("model.path is empty (random init) but model.tokenizer is not set")
    tokenizer = load_tokenizer(resolve(spec.tokenizer))
    r = spec.random
    cfg = ModelConfig(
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
    tensors = random_tensors(cfg, r.seed)
    model = build(
        cfg,
        tensors,
        dtype=DTYPES[spec.dtype],
        param_dtype=DTYPES[spec.param_dtype],
        mesh=mesh,
        remat=spec.remat,
        attention=spec.attention,
        source="random init",
    )
    return model, tokenizer


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
    for batch in tqdm(batches, desc=desc, unit="batch", leave=False, disable=None):
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


def step_flops(model, rows: int, seq: int, reference_in_step: bool) -> dict[str, float]:
    """FLOPs of one DPO step on a batch of `rows` rows of `seq` tokens, by part.

    Policy forward + backward 6 N per token, reference forward 2 N per token (when it runs in
    the step), causal attention 12 L d T^2 / 2 per row for forward + backward (a third of that
    for the reference forward). Padding tokens count: they are computed.
    """
    n = sum(int(np.prod(p.get_value().shape)) for _, p, _, _ in param_table(model))
    cfg = model.config
    tokens = rows * seq
    attention = 12 * cfg.num_layers * cfg.num_heads * cfg.head_dim * seq * seq / 2 * rows
    parts = {
        "policy": 6.0 * n * tokens,
        "attention": attention + (attention / 3 if reference_in_step else 0.0),
        "reference": 2.0 * n * tokens if reference_in_step else 0.0,
    }
    parts["total"] = sum(parts.values())
    return parts


def train(cfg: Config, progress: bool = True) -> dict:
    """Run or resume DPO training; returns the last logged metrics and evaluations."""
    if not cfg.data.prefs:
        raise JaxalignError(
            "data.prefs is not set: give a `prefs build` JSONL file or TRL-format data "
            "(data.prefs=PATH)"
        )
    run_dir = Path(cfg.train.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    primary = jax.process_index() == 0  # run-directory files are written by process 0
    if primary:
        (run_dir / "config.yaml").write_text(f"# run id {config_hash(cfg)}\n" + dump(cfg))
    devices = jax.devices()[: cfg.train.mesh_devices] if cfg.train.mesh_devices else None
    try:
        mesh = make_mesh(cfg.train.mesh_data, cfg.train.mesh_fsdp, cfg.train.mesh_tensor, devices)
    except ValueError as err:
        raise JaxalignError(f"train.mesh_*: {err}") from None
    model, tokenizer = build_model(cfg.model, mesh)
    pad_id = chat_pad_id(tokenizer)
    enc = {}
    for split in ("train", "validation"):
        records = read_split(cfg.data, split)
        enc[split] = encode(
            records,
            tokenizer,
            max_prompt_len=cfg.data.max_prompt_len,
            max_len=cfg.data.max_len,
            conditioning=cfg.data.conditioning,
            source=cfg.data.prefs,
        )
    if not len(enc["train"]):
        raise JaxalignError(f"{cfg.data.prefs}: no training pairs (split 'train' is empty)")
    data_stats = {f"data/{s}/{k}": float(v) for s, e in enc.items() for k, v in e.counts.items()}
    for split, e in enc.items():
        cut = {k: v for k, v in e.counts.items() if k != "pairs" and v}
        if cut:
            log.warning(
                "%s (%s), %d pairs: %s (data.max_prompt_len=%d, data.max_len=%d)",
                cfg.data.prefs,
                split,
                e.counts["pairs"] + e.counts["dropped_empty_response"],
                ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in cut.items()),
                cfg.data.max_prompt_len,
                cfg.data.max_len,
            )
    longest = max(longest_run(e, cfg.data.layout) for e in enc.values())
    # fails now, not in the middle of training
    row_width(longest, cfg.data.pack_len, cfg.data.buckets, cfg.data.prefs)
    graphdef, params = nnx.split(model)
    logps_fn = make_logps_fn(graphdef, cfg.dpo.logprob_chunk, cfg.data)
    ref_params, ref_cache = None, {"train": None, "validation": None}
    if reference_kind(cfg.dpo) == "model":
        ref_params = frozen_reference(params, model.dtype)
        # held-out rewards need the reference too (else base accuracy reads 0.0, not 0.5)
        ref_cache["validation"] = all_logps(
            ref_params, enc["validation"], logps_fn, cfg, mesh, pad_id, "reference validation"
        )[0]
    elif reference_kind(cfg.dpo) == "cache":
        ref_cache = {
            s: reference_cache(cfg, s, enc[s], params, logps_fn, mesh, pad_id) for s in enc
        }
    tx = make_optimizer(cfg.optim, max(cfg.train.steps // cfg.optim.grad_accum, 1))
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}
    shardings = pinned(state, mesh)
    state = jax.device_put(state, shardings)
    checkpoints = Checkpoints(
        run_dir, cfg.train.keep_checkpoints, cfg.train.best_metric, cfg.train.async_checkpoints
    )
    dataset = train_dataset(
        enc["train"],
        batch_size=cfg.data.batch_size,
        steps=cfg.train.steps,
        seed=cfg.data.seed,
        balance_groups=cfg.data.balance_groups,
        buckets=cfg.data.buckets,
        pad_id=pad_id,
        ref_logps=ref_cache["train"],
        **row_options(cfg, mesh),
    )
    iterator = iter(dataset.to_iter_dataset())
    start = 0
    restored = checkpoints.restore_latest(abstract(state))
    if restored is not None:
        start, state, data_state, _ = restored
        iterator.set_state(data_state["iterator"])
    step_fn = make_train_step(graphdef, tx, cfg.dpo, cfg.data, shardings)
    writer = MetricsWriter(run_dir)
    meta = {
        "jaxalign_version": __version__,
        "jax_version": jax.__version__,
        "git_commit": git_commit(),
        "mesh": dict(mesh.shape),
        "devices": jax.device_count(),
        "run_id": config_hash(cfg),
    }
    results: dict = dict(data_stats)
    if start == 0:
        base = evaluate(
            params, enc["validation"], ref_cache["validation"], logps_fn, cfg, mesh, pad_id
        )
        results.update({k.replace("eval/", "base/"): v for k, v in base.items()})
        writer.write(0, results)  # data counts and base evaluations
    # per batch shape, computed once (it walks every parameter)
    flops_of = functools.cache(
        lambda rows, seq: step_flops(model, rows, seq, reference_kind(cfg.dpo) == "model")
    )
    pending = None
    bar = tqdm(
        total=cfg.train.steps,
        initial=start,
        desc="train",
        unit="step",
        disable=None if progress else True,
    )
    try:
        for step in range(start, cfg.train.steps):
            host = next(iterator)
            tokens = float((host["segment_ids"] > 0).sum()) * jax.process_count()
            rows, seq = host["tokens"].shape
            flops = flops_of(rows * jax.process_count(), seq)
            t0 = time.perf_counter()
            state, metrics = step_fn(state, ref_params, _put(mesh, host))
            if pending is not None:
                results.update(_log(writer, *pending, bar, cfg))
            pending = (step + 1, metrics, t0, tokens, flops)
            last = step + 1 == cfg.train.steps
            if (
                (step + 1) % cfg.train.eval_every == 0
                or last
                or (step + 1) % cfg.train.checkpoint_every == 0
            ):
                results.update(_log(writer, *pending, bar, cfg))
                pending = None
                evals = {}
                if (step + 1) % cfg.train.eval_every == 0 or last:
                    evals = evaluate(
                        state["params"],
                        enc["validation"],
                        ref_cache["validation"],
                        logps_fn,
                        cfg,
                        mesh,
                        pad_id,
                    )
                    writer.write(step + 1, evals)
                    results.update(evals)
                if (step + 1) % cfg.train.checkpoint_every == 0 or last:
                    checkpoints.save(
                        step + 1,
                        state,
                        {"iterator": iterator.get_state()},
                        to_dict(cfg),
                        meta,
                        metrics=evals or None,
                    )
        if pending is not None:
            results.update(_log(writer, *pending, bar, cfg))
    finally:
        bar.close()
        writer.close()
        checkpoints.close()
    results["step"] = cfg.train.steps
    if primary:
        (run_dir / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return results


def _log(writer, step, metrics, t0, tokens, flops, bar, cfg: Config) -> dict:
    """Fetch one step's metrics (blocking), guard against NaN/Inf, write them."""
    values = {f"train/{k}": float(v) for k, v in jax.device_get(metrics).items()}
    seconds = time.perf_counter() - t0
    if not math.isfinite(values["train/loss"]):
        raise JaxalignError(
            f"loss became {values['train/loss']} at step {step}; stopped without saving this "
            f"state; the last good checkpoint stays in {Path(cfg.train.run_dir) / 'checkpoints'}"
        )
    values["perf/step_seconds"] = seconds
    values["perf/tokens_per_second"] = tokens / max(seconds, 1e-9)
    rate = flops["total"] / max(seconds, 1e-9)
    values["perf/tflops_per_second"] = rate / 1e12
    for part in ("policy", "reference", "attention"):
        values[f"perf/flops_{part}"] = flops[part]
    if cfg.train.peak_tflops > 0:
        values["perf/mfu"] = rate / (cfg.train.peak_tflops * 1e12 * jax.device_count())
    if step % cfg.train.log_every == 0 or step == cfg.train.steps:
        writer.write(step, values)
    bar.update(1)
    bar.set_postfix(
        loss=f"{values['train/loss']:.4f}", acc=f"{values['train/rewards/accuracies']:.2f}"
    )
    return values

"""DPO wiring: data, reference, jitted step and held-out evaluation for the shared runner.

Direct Preference Optimization (Rafailov et al., arXiv:2305.18290) and its variants; the
loss lives in `jaxalign.losses.dpo`, the step in `jaxalign.train.dpo`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import jax
from flax import nnx

from jaxalign import __version__
from jaxalign.algos import dpo_eval
from jaxalign.checkpoint import git_commit
from jaxalign.config import Config, DPORun, project
from jaxalign.data.chat import pad_id
from jaxalign.data.preferences import (
    Encoded,
    encode,
    epoch_order,
    longest_run,
    row_width,
    train_dataset,
)
from jaxalign.data.records import read_split
from jaxalign.errors import JaxalignError
from jaxalign.models.lora import adapter_count, apply_lora, split_lora
from jaxalign.models.spec import build_model
from jaxalign.sharding import make_mesh
from jaxalign.train.dpo import (
    Adapters,
    frozen_reference,
    make_logps_fn,
    make_train_step,
    reference_kind,
)
from jaxalign.train.memory import check_heads
from jaxalign.train.optim import make_optimizer, make_schedule, update_count
from jaxalign.train.run_dir import run_id
from jaxalign.train.runner import Algorithm
from jaxalign.train.session import fit
from jaxalign.train.state import init_state

log = logging.getLogger("jaxalign")
SPLITS = ("train", "validation")


def mesh_of(cfg: DPORun):
    """The training mesh from `train.mesh_*` (errors name the keys); refuses, before anything
    is written, a tensor axis that does not split the heads (the check the dry run makes)."""
    check_heads(cfg.model, cfg.train.mesh_tensor)
    devices = jax.devices()[: cfg.train.mesh_devices] if cfg.train.mesh_devices else None
    try:
        return make_mesh(cfg.train.mesh_data, cfg.train.mesh_fsdp, cfg.train.mesh_tensor, devices)
    except ValueError as err:
        raise JaxalignError(f"train.mesh_*: {err}") from None


def encode_splits(cfg: DPORun, tokenizer) -> dict:
    """Tokenized train and validation pairs; warns about truncation; checks row widths."""
    d = cfg.data
    enc = {
        s: encode(
            read_split(d, s),
            tokenizer,
            max_prompt_len=d.max_prompt_len,
            max_len=d.max_len,
            conditioning=d.conditioning,
            source=d.prefs,
        )
        for s in SPLITS
    }
    if not len(enc["train"]):
        raise JaxalignError(f"{d.prefs}: no training pairs (split 'train' is empty)")
    for split, e in enc.items():
        cut = {k: v for k, v in e.counts.items() if k != "pairs" and v}
        if cut:
            log.warning(
                "%s (%s), %d pairs: %s (data.max_prompt_len=%d, data.max_len=%d)",
                d.prefs,
                split,
                e.counts["pairs"] + e.counts["dropped_empty_response"],
                ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in cut.items()),
                d.max_prompt_len,
                d.max_len,
            )
    longest = max(longest_run(e, d.layout) for e in enc.values())
    row_width(longest, d.pack_len, d.buckets, d.prefs)  # fails now, not mid-training
    return enc


def references(cfg: DPORun, enc: dict, model, params, logps_fn, mesh, pad: int):
    """(reference params for the in-step reference | None, cached reference log-probs per split).

    `params` are the base model's (with LoRA: the frozen base itself, adapters off).
    """
    kind = reference_kind(cfg.dpo)
    if kind == "model":
        # LoRA never updates the base, so it is its own reference: no copy.
        ref_params = params if cfg.lora.enabled else frozen_reference(params, model.dtype)
        # held-out rewards need the reference too (else base accuracy reads 0.0, not 0.5)
        val = dpo_eval.all_logps(
            ref_params, enc["validation"], logps_fn, cfg, mesh, pad, "reference validation"
        )[0]
        return ref_params, {"train": None, "validation": val}
    if kind == "cache":
        return None, {
            s: dpo_eval.reference_cache(cfg, s, enc[s], params, logps_fn, mesh, pad) for s in enc
        }
    return None, dict.fromkeys(enc)


def batches(cfg: DPORun, train: Encoded, mesh, pad: int, ref_logps):
    """The resumable iterator over training batches (order: a pure function of seed and step)."""
    dataset = train_dataset(
        train,
        batch_size=cfg.data.batch_size,
        steps=cfg.train.steps,
        seed=cfg.data.seed,
        balance_groups=cfg.data.balance_groups,
        buckets=cfg.data.buckets,
        pad_id=pad,
        ref_logps=ref_logps,
        **dpo_eval.row_options(cfg, mesh),
    )
    return iter(dataset.to_iter_dataset())


def describer(cfg: DPORun, model):
    """batch -> its tokens and FLOPs (FLOPs per batch shape computed once: it walks every param)."""
    flops_of = functools.cache(
        lambda rows, seq: dpo_eval.step_flops(
            model, rows, seq, reference_kind(cfg.dpo) == "model", cfg.lora.enabled
        )
    )

    def describe(host: dict) -> dict:
        """Tokens and FLOPs of one global batch."""
        rows, seq = host["tokens"].shape
        tokens = float((host["segment_ids"] > 0).sum()) * jax.process_count()
        return {"tokens": tokens, "flops": flops_of(rows * jax.process_count(), seq)}

    return describe


def extras_of(cfg: DPORun, train: Encoded):
    """step -> the learning rate of that step's update and the epochs of data seen after it."""
    schedule = make_schedule(cfg.optim, update_count(cfg.optim, cfg.train.steps))
    per_epoch = len(epoch_order(train, 0, cfg.data.seed, cfg.data.balance_groups))
    return lambda step: {
        "learning_rate": float(schedule((step - 1) // cfg.optim.grad_accum)),
        "epoch": step * cfg.data.batch_size / per_epoch,
    }


@dataclass
class Parts:
    """What a run trains (`params` with `graphdef`) and what stays frozen.

    Full fine-tuning: everything is trained, nothing frozen. LoRA: the adapters are trained,
    `frozen` is the base (a step input, never donated), `base` is that same base.
    """

    graphdef: Any
    params: Any
    base_graphdef: Any
    base: Any
    frozen: Any = None
    adapters: Adapters | None = None


def trainable(cfg: DPORun, model) -> Parts:
    """Split `model` into trained and frozen parts, adding LoRA adapters when configured."""
    base_graphdef, base = nnx.split(model)
    if not apply_lora(model, cfg.lora):
        return Parts(base_graphdef, base, base_graphdef, base)
    graphdef, adapters, frozen = split_lora(model)
    log.info(
        "LoRA rank %d on %s: training %d adapter parameters; the base stays frozen",
        cfg.lora.rank,
        ",".join(cfg.lora.targets),
        adapter_count(adapters),
    )
    return Parts(
        graphdef,
        adapters,
        base_graphdef,
        frozen,
        frozen,
        Adapters(base_graphdef, cfg.lora.seed, cfg.lora.dropout),
    )


def setup(cfg: DPORun) -> Algorithm:
    """Everything a DPO run needs, validated, before anything is written to the run directory."""
    if not cfg.data.prefs:
        raise JaxalignError(
            "data.prefs is not set: give a `prefs build` JSONL file or TRL-format data "
            "(data.prefs=PATH)"
        )
    mesh = mesh_of(cfg)
    model, tokenizer = build_model(cfg.model, mesh)
    pad = pad_id(tokenizer)
    enc = encode_splits(cfg, tokenizer)
    parts = trainable(cfg, model)
    ref_logps_fn = make_logps_fn(parts.base_graphdef, cfg.dpo.logprob_chunk, cfg.data)
    ref_params, cache = references(cfg, enc, model, parts.base, ref_logps_fn, mesh, pad)
    logps_fn = (
        make_logps_fn(parts.graphdef, cfg.dpo.logprob_chunk, cfg.data, parts.frozen)
        if parts.adapters
        else ref_logps_fn
    )
    tx = make_optimizer(cfg.optim, update_count(cfg.optim, cfg.train.steps))
    state, shardings = init_state(parts.params, tx, mesh)
    step_fn = make_train_step(parts.graphdef, tx, cfg.dpo, cfg.data, shardings, parts.adapters)
    return Algorithm(
        state=state,
        step=lambda s, host: step_fn(s, ref_params, dpo_eval._put(mesh, host), parts.frozen),
        batches=batches(cfg, enc["train"], mesh, pad, cache["train"]),
        evaluate=lambda p: dpo_eval.evaluate(
            p, enc["validation"], cache["validation"], logps_fn, cfg, mesh, pad
        ),
        describe=describer(cfg, model),
        extras=extras_of(cfg, enc["train"]),
        progress={"loss": "train/loss", "acc": "train/rewards/accuracies"},
        stats={f"data/{s}/{k}": float(v) for s, e in enc.items() for k, v in e.counts.items()},
    )


def meta_of(cfg: DPORun) -> dict:
    """Provenance saved with every checkpoint."""
    return {
        "mesh": dict(mesh_of(cfg).shape),
        "jaxalign_version": __version__,
        "jax_version": jax.__version__,
        "git_commit": git_commit(),
        "devices": jax.device_count(),
        "run_id": run_id(cfg),
    }


def train(cfg: Config | DPORun, progress: bool = True, allow_changes=()) -> dict:
    """Run or resume DPO training; returns the last logged metrics and evaluations.

    `allow_changes`: config keys that may differ from the checkpoint being resumed.
    """
    run = project(cfg, DPORun) if isinstance(cfg, Config) else cfg
    algo = setup(run)
    return fit(run.train, run, algo, meta_of(run), allow_changes, progress)

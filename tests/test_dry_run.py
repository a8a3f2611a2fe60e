"""`jaxalign train --dry-run`: the memory plan agrees with a real compile and writes nothing."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from conftest import tiny_config, write_learnable_prefs

from jaxalign.algos.dpo import mesh_of, trainable
from jaxalign.algos.dpo_eval import _put
from jaxalign.algos.dpo_plan import widest_pairs
from jaxalign.cli import main
from jaxalign.data.preferences import collate, longest_run, row_width
from jaxalign.models.spec import build_model
from jaxalign.train.dpo import frozen_reference, make_train_step
from jaxalign.train.memory import analysis_of, dry_run
from jaxalign.train.optim import make_optimizer, update_count
from jaxalign.train.state import init_state


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    return write_learnable_prefs(tmp_path_factory.mktemp("prefs") / "learn.jsonl")


def real_compile(cfg):
    """(memory analysis, trained-parameter bytes, optimizer bytes per device) of the real step,
    built as `jaxalign.algos.dpo.setup` builds it."""
    mesh = mesh_of(cfg)
    model, _ = build_model(cfg.model, mesh)
    parts = trainable(cfg, model)
    tx = make_optimizer(cfg.optim, update_count(cfg.optim, cfg.train.steps))
    state, shardings = init_state(parts.params, tx, mesh)
    cache = cfg.dpo.reference == "cache"
    data = widest_pairs(cfg)
    width = row_width(longest_run(data, cfg.data.layout), cfg.data.pack_len, cfg.data.buckets)
    assert width == (64 if cfg.data.layout == "pairs" else 96)  # 2 x 64 - 40, bucketed
    ref = np.zeros((len(data), 2), np.float32) if cache else None
    rows = mesh.shape["fsdp"] * mesh.shape["data"]
    host = collate(
        data, range(len(data)), (width,), 0, ref, layout=cfg.data.layout, rows_multiple=rows
    )
    ref_params = None
    if not cache:
        ref_params = parts.base if parts.adapters else frozen_reference(parts.base, model.dtype)
    step = make_train_step(parts.graphdef, tx, cfg.dpo, cfg.data, shardings, parts.adapters)
    compiled = step.lower(state, ref_params, _put(mesh, host), parts.frozen).compile()
    shard_bytes = lambda tree: sum(  # noqa: E731
        x.addressable_shards[0].data.nbytes for x in jax.tree.leaves(tree)
    )
    return analysis_of(compiled), shard_bytes(state["params"]), shard_bytes(state["opt_state"])


@pytest.mark.parametrize(
    "extra",
    [
        ("train.mesh_devices=8", "train.mesh_fsdp=4", "train.mesh_data=2"),
        (
            "dpo.reference=model",
            "model.scan_layers=true",
            "model.remat=full",
            "data.layout=pairs",
            "train.mesh_devices=2",
            "train.device_memory_gib=0.001",
        ),
        ("lora.rank=4", "lora.alpha=8", "model.scan_layers=true", "dpo.reference=model"),
    ],
)
def test_dry_run_agrees_with_a_real_compile(tiny_tokenizer, prefs, tmp_path, extra):
    cfg = tiny_config(tiny_tokenizer, prefs, tmp_path / "run", *extra)
    planned = dry_run(cfg)
    analysis, params, opt = real_compile(cfg)
    assert planned.analysis == analysis
    trained = planned.parts.get("adapters (trained)", planned.parts["parameters"])
    assert trained == params > 0
    assert planned.parts["optimizer state"] == opt >= 2 * params
    assert planned.temporaries == analysis["temp"] > 0
    assert planned.devices == cfg.train.mesh_devices
    assert planned.fits == ("train.device_memory_gib=0.001" not in extra)
    total = analysis["argument"] + analysis["output"] - analysis["alias"] + analysis["temp"]
    if "lora.rank=4" in extra:  # the frozen base is also the reference: counted once
        assert planned.parts["reference"] == 0 < trained < planned.parts["parameters"] / 10
        assert planned.peak == total - planned.parts["parameters"]
    else:
        assert planned.peak == total
    if "dpo.reference=model" in extra and "lora.rank=4" not in extra:  # a compute-dtype copy
        assert planned.parts["reference"] == params
    assert not (tmp_path / "run").exists()


def test_dry_run_cli_prints_the_plan_and_writes_nothing(tiny_tokenizer, prefs, tmp_path, capsys):
    cfg_args = [
        f"model.tokenizer={tiny_tokenizer}",
        f"data.prefs={prefs}",
        f"train.run_dir={tmp_path / 'run'}",
        "data.max_len=64",
        "data.max_prompt_len=32",
        "data.buckets=[64,128]",
        "data.batch_size=2",
        "train.mesh_devices=1",
    ]
    assert main(["train", "--config", "configs/train/tiny_cpu.yaml", "--dry-run", *cfg_args]) == 0
    out = capsys.readouterr().out
    assert "memory plan per device (1 devices" in out and "DPO, 2 rows x 128 tokens" in out
    assert "fits train.device_memory_gib=80" in out
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "mesh",
    [
        ["train.mesh_devices=16"],
        ["train.mesh_data=8", "train.mesh_fsdp=1", "train.mesh_tensor=2"],
        ["train.mesh_devices=8", "train.mesh_data=8", "train.mesh_tensor=2"],
    ],
)
def test_dry_run_mesh_larger_than_the_devices_is_one_line(tmp_path, capsys, mesh):
    args = [
        "train",
        "--config",
        "configs/train/tiny_cpu.yaml",
        "--dry-run",
        f"train.run_dir={tmp_path / 'run'}",
        "data.prefs=unused.jsonl",
        *mesh,
    ]
    # jax has started (8 devices): nothing more can be simulated in this process
    assert jax.device_count() == 8
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxalign: error: train.mesh_") and "\n" not in err, err
    assert "16 devices" in err or "does not fit 8 devices" in err
    assert not (tmp_path / "run").exists()


def test_dry_run_of_an_algorithm_without_a_planner_is_one_line(tmp_path, capsys, monkeypatch):
    from jaxalign.train import memory

    monkeypatch.setattr(memory, "PLANNERS", {"dpo": memory.PLANNERS["dpo"]})  # a future one
    args = ["train", "--config", "configs/train/tiny_cpu.yaml", "--dry-run"]
    assert main([*args, f"train.run_dir={tmp_path / 'run'}", "train.algorithm=grpo"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxalign: error: train.algorithm=grpo: --dry-run has no memory")
    assert "\n" not in err and not (tmp_path / "run").exists()


def test_dry_run_of_a_mesh_too_large_to_simulate_is_one_line(tmp_path):
    import subprocess
    import sys

    # A fresh process simulates devices; 100,000 ran for minutes and 4096 crashed inside XLA.
    args = ["--config", "configs/train/tiny_cpu.yaml", "--dry-run", "train.mesh_devices=100000"]
    done = subprocess.run(
        [sys.executable, "-m", "jaxalign", "train", *args, f"train.run_dir={tmp_path / 'run'}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1, done.stderr
    assert done.stderr.count("\n") == 1 and "simulates at most 2048" in done.stderr
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "mesh",
    [
        ["train.mesh_tensor=7", "train.mesh_fsdp=1"],  # 7 devices exist here: it used to plan
        ["train.mesh_tensor=4", "train.mesh_fsdp=1"],  # 4 heads split, 2 KV heads do not
    ],
)
def test_dry_run_tensor_axis_that_does_not_split_the_heads_is_one_line(tmp_path, capsys, mesh):
    args = ["train", "--config", "configs/train/tiny_cpu.yaml", "--dry-run", *mesh]
    assert main([*args, f"train.run_dir={tmp_path / 'run'}", "data.prefs=unused.jsonl"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("jaxalign: error: train.mesh_tensor=") and "\n" not in err, err
    assert "4 heads / 2 KV heads are not divisible by" in err
    assert not (tmp_path / "run").exists()


def test_dry_run_fixed_axis_beyond_the_devices_names_mesh_devices(tmp_path, capsys):
    # train.mesh_fsdp=-1 (default) takes "all devices"; 16 data replicas do not fit 8
    args = ["train", "--config", "configs/train/tiny_cpu.yaml", "--dry-run", "train.mesh_data=16"]
    assert main([*args, f"train.run_dir={tmp_path / 'run'}", "data.prefs=unused.jsonl"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "needs a multiple of 16 devices and this machine has 8" in err
    assert err.endswith("train.mesh_devices=16"), err
    assert not (tmp_path / "run").exists()

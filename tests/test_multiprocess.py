"""Two processes (jax.distributed on CPU, gloo) train like one process with the same devices."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import write_learnable_prefs

from jaxalign.algos.dpo import train
from jaxalign.config import load_config

HERE = Path(__file__).resolve().parent
CONFIG = HERE.parent / "configs" / "train" / "tiny_cpu.yaml"


def losses(run_dir: Path) -> list[float]:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r["train/loss"] for r in rows if "train/loss" in r]


@pytest.mark.slow
def test_two_processes_match_one(tiny_tokenizer, tmp_path):
    prefs = write_learnable_prefs(tmp_path / "p.jsonl")
    common = [
        f"model.tokenizer={tiny_tokenizer}",
        f"data.prefs={prefs}",
        "data.buckets=[32,64,96,128]",
        "data.max_prompt_len=40",
        "data.max_len=64",
        "train.steps=4",
        "train.eval_every=4",
        "train.checkpoint_every=2",
        "train.async_checkpoints=false",
        "train.mesh_fsdp=2",
        "train.mesh_data=2",
    ]
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                str(HERE / "multiprocess_worker.py"),
                str(i),
                str(port),
                str(CONFIG),
                *common,
                f"train.run_dir={tmp_path / 'multi'}",
            ],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for p, out in zip(procs, outs):
        assert p.returncode == 0, out[-3000:]
    one = train(
        load_config(CONFIG, [*common, "train.mesh_devices=4", f"train.run_dir={tmp_path / 'one'}"]),
        progress=False,
    )
    multi = json.loads((tmp_path / "multi" / "results.json").read_text())
    np.testing.assert_allclose(losses(tmp_path / "multi"), losses(tmp_path / "one"), atol=1e-5)
    assert multi["eval/rewards/accuracies"] == pytest.approx(one["eval/rewards/accuracies"])
    assert sorted(
        p.name for p in (tmp_path / "multi" / "checkpoints").iterdir() if p.name.isdigit()
    ) == ["2", "4"]

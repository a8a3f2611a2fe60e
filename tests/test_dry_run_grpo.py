"""`jaxalign train --dry-run` for GRPO: rollout, log-probs and learner step planned on abstract
shapes agree with the real compiles of `jaxalign.algos.grpo`, and nothing is written."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from grpo_worker import grpo_config

from jaxalign.algos.dpo_eval import _put
from jaxalign.algos.grpo import build_parts
from jaxalign.algos.grpo_plan import row_keys
from jaxalign.algos.grpo_rollout import left_padded
from jaxalign.cli import main
from jaxalign.config import GRPORun, project
from jaxalign.train.grpo import make_learner_step
from jaxalign.train.memory import analysis_of, dry_run
from jaxalign.train.optim import make_optimizer, update_count
from jaxalign.train.state import init_state


def real_compiles(cfg):
    """(memory analysis per phase, parameter bytes, optimizer bytes per device) of the
    programs `jaxalign.algos.grpo.setup` builds, at the widest prompt width."""
    run = project(cfg, GRPORun)
    g = run.grpo
    parts, graphdef, params, _ = build_parts(run)
    tx = make_optimizer(run.optim, update_count(run.optim, run.train.steps))
    state, shardings = init_state(params, tx, parts.mesh)
    learner = make_learner_step(graphdef, tx, g, shardings)
    prompts = g.batch_size * g.steps_per_rollout // g.num_generations
    width, c = g.max_prompt_len, g.max_completion_len
    ptoks, pvalid = left_padded([[1] * width] * prompts, width, parts.pad)
    key = jax.random.fold_in(jax.random.key(g.seed), 0)
    scalar = jnp.float32(1.0)
    out = {"rollout": parts.rollout_fn.lower(params, ptoks, pvalid, key, scalar, scalar)}
    b = g.batch_size
    rows = {
        "tokens": np.ones((b, width + c), np.int32),
        "segment_ids": np.ones((b, width + c), np.int32),
        "start": np.full(b, width, np.int32),
        "mask": np.ones((b, c), np.float32),
    }
    out["log-probs"] = parts.logps_fn.lower(params, _put(parts.mesh, rows))
    rows |= {"advantages": np.zeros(b, np.float32), "old_logps": np.zeros((b, c), np.float32)}
    rows["ref_logps"] = rows["old_logps"]
    rows = {k: rows[k] for k in row_keys(run)}  # old/reference log-probs only when used
    out["learner step"] = learner.lower(state, _put(parts.mesh, rows))
    shard = lambda t: sum(x.addressable_shards[0].data.nbytes for x in jax.tree.leaves(t))  # noqa: E731
    analyses = {k: analysis_of(v.compile()) for k, v in out.items()}
    return analyses, shard(state["params"]), shard(state["opt_state"])


EXTRA = (  # every planned part present: reference, old log-probs, scanned layers, 2 devices
    "grpo.beta=0.04",
    "grpo.num_iterations=2",
    "grpo.top_k=5",
    "model.scan_layers=true",
    "train.mesh_devices=2",
    "train.device_memory_gib=0.001",
)


@pytest.mark.parametrize("extra", [EXTRA])
def test_grpo_dry_run_agrees_with_the_real_compiles(tiny_tokenizer, tmp_path, extra):
    cfg = grpo_config(tiny_tokenizer, tmp_path / "run", *extra)
    planned = dry_run(cfg)
    analyses, params, opt = real_compiles(cfg)
    beta = "grpo.beta=0.04" in extra
    expected = {"learner step", "rollout"} | ({"log-probs"} if beta else set())
    assert set(planned.analyses) == expected
    for name in expected:
        assert planned.analyses[name] == analyses[name], name
    assert planned.parts["parameters"] == params > 0
    assert planned.parts["optimizer state"] == opt >= 2 * params
    g = cfg.grpo
    # a copy of the policy in the compute dtype (fp32 here) only when beta > 0
    assert planned.parts["reference"] == (params if beta else 0)
    # KV cache: keys and values of 2 layers x 8 rows x (48 + 16) slots x 2 KV heads x 16 dims
    rows = g.batch_size * g.steps_per_rollout
    kv = 2 * 2 * rows * (g.max_prompt_len + g.max_completion_len) * 2 * 16 * 4
    devices = cfg.train.mesh_devices
    assert planned.rows["KV cache (rollout)"] == kv // devices
    assert 0 < planned.rows["KV cache (rollout)"] <= planned.rows["rollout temporaries"]
    learner = analyses["learner step"]
    assert planned.temporaries == learner["temp"] > 0
    held = learner["argument"] + learner["output"] - learner["alias"] + learner["temp"]
    assert planned.phases["learner step"] == held + (params if beta else 0)
    out = analyses["rollout"]
    rollout = out["argument"] + out["output"] - out["alias"] + out["temp"]
    assert planned.phases["rollout"] == rollout + opt + (params if beta else 0)
    assert planned.peak == max(planned.phases.values())
    assert planned.devices == devices
    assert planned.fits == (not beta)
    assert not (tmp_path / "run").exists()


def test_grpo_dry_run_cli_prints_its_phases_and_writes_nothing(tiny_tokenizer, tmp_path, capsys):
    from grpo_worker import overrides

    args = ["train", "--config", "configs/train/tiny_grpo.yaml", "--dry-run"]
    assert main([*args, *overrides(tiny_tokenizer, tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert "memory plan per device (1 devices" in out
    assert "GRPO, learner 8 rows x 64 tokens, rollout 2 prompts x 4 generations" in out
    assert "reference none" in out and "log-probs" not in out  # beta 0, one pass: neither
    for row in ("KV cache (rollout)", "rollout temporaries", "peak (rollout)", "peak (learner"):
        assert row in out, row
    assert "peak (largest phase)" in out and "fits train.device_memory_gib=80" in out
    assert not (tmp_path / "run").exists()

"""LoRA: only adapters train, the reference is the base, adapters-only checkpoints, exports."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config, write_learnable_prefs
from flax import nnx

from jaxalign.algos.dpo import references, train, trainable
from jaxalign.cli import main
from jaxalign.config import load_config
from jaxalign.errors import ConfigError
from jaxalign.models import lora
from jaxalign.models.spec import build_model
from jaxalign.models.weights import read_safetensors
from jaxalign.train.dpo import make_logps_fn

RANK = 4
BASE = [f"lora.rank={RANK}", "dpo.reference=model", "train.checkpoint_every=3"]
BASE += ["train.steps=6", "train.keep_checkpoints=3", "train.eval_every=6"]
# Non-default alpha, dropout and targets; the cached reference; resumed below.
OTHER = ["lora.rank=2", "lora.alpha=4", "lora.dropout=0.25", "lora.targets=[q,v,down]"]
OTHER += ["lora.seed=3", "train.steps=4", "train.checkpoint_every=2", "train.keep_checkpoints=3"]
OTHER += ["train.eval_every=4"]


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    return write_learnable_prefs(tmp_path_factory.mktemp("prefs") / "learn.jsonl")


@pytest.fixture(scope="module")
def lora_run(tiny_tokenizer, prefs, tmp_path_factory):
    """A finished 6-step LoRA run (rank 4, in-step reference) and its config."""
    run = tmp_path_factory.mktemp("lora") / "run"
    cfg = tiny_config(tiny_tokenizer, prefs, run, *BASE)
    train(cfg, progress=False)
    return cfg


def checkpoint_leaves(run_dir, step=None) -> dict:
    """{path: array} of the `params` a checkpoint step holds (the newest by default)."""
    import orbax.checkpoint as ocp

    root = Path(run_dir).absolute() / "checkpoints"
    step = step or max(int(p.name) for p in root.iterdir() if p.name.isdigit())
    state = ocp.StandardCheckpointer().restore(root / str(step) / "state")
    return {jax.tree_util.keystr(k): np.asarray(v) for k, v in _leaves(state["params"])}


def _leaves(tree):
    """(path, leaf) pairs of a pytree."""
    return jax.tree_util.tree_leaves_with_path(tree)


def expected_count(model_cfg, rank: int, targets) -> int:
    """Adapter parameters of `targets` over every layer: rank x (in + out) each."""
    d, f = model_cfg.hidden_size, model_cfg.intermediate_size
    q, kv = model_cfg.num_heads * model_cfg.head_dim, model_cfg.num_kv_heads * model_cfg.head_dim
    sides = {"q": (d, q), "k": (d, kv), "v": (d, kv), "o": (q, d), "gate": (d, f)}
    sides |= {"up": (d, f), "down": (f, d)}
    return model_cfg.num_layers * sum(rank * sum(sides[t]) for t in targets)


def restored(cfg):
    """The run's newest checkpoint put onto its base model (eval's and export's path)."""
    from jaxalign.eval.generations import restore_run
    from jaxalign.sharding import make_mesh

    base, _ = build_model(cfg.model, make_mesh(devices=jax.devices()[:1]))
    return restore_run(cfg, base)[0]


def test_trains_only_adapters_and_keeps_the_base_bitwise(lora_run):
    leaves = checkpoint_leaves(lora_run.train.run_dir)
    assert leaves and all("lora" in k for k in leaves), list(leaves)[:3]
    fresh, _ = build_model(lora_run.model, None)
    count = expected_count(fresh.config, RANK, lora_run.lora.targets)
    assert sum(v.size for v in leaves.values()) == count
    assert all(np.abs(v).max() > 0 for k, v in leaves.items() if k.endswith("['b']"))
    model = restored(lora_run)
    _, adapters, base = lora.split_lora(model)
    assert lora.adapter_count(adapters) == count
    plain = dict(_leaves(nnx.split(fresh)[1]))
    kept = dict(_leaves(base))
    assert plain.keys() == kept.keys()
    assert all(np.array_equal(plain[k], kept[k]) for k in plain)


def test_reference_is_the_base_model_itself(lora_run, tiny_tokenizer):
    from jaxalign.algos.dpo import encode_splits, mesh_of
    from jaxalign.algos.dpo_eval import all_logps
    from jaxalign.config import DPORun, project
    from jaxalign.data.chat import pad_id

    cfg = project(lora_run, DPORun)
    mesh = mesh_of(cfg)
    model, tokenizer = build_model(cfg.model, mesh)
    plain_graphdef, plain = nnx.split(nnx.clone(model))
    parts = trainable(cfg, model)
    # adapters with a non-zero B: the policy differs from the reference from here on
    parts.params = jax.tree.map(lambda x: x + 0.05, parts.params)
    enc = encode_splits(cfg, tokenizer)
    fn = make_logps_fn(parts.base_graphdef, cfg.dpo.logprob_chunk, cfg.data)
    ref_params, cache = references(cfg, enc, model, parts.base, fn, mesh, pad_id(tokenizer))
    assert ref_params is parts.base  # no second copy of the weights
    plain_fn = make_logps_fn(plain_graphdef, cfg.dpo.logprob_chunk, cfg.data)
    want, _ = all_logps(plain, enc["validation"], plain_fn, cfg, mesh, pad_id(tokenizer))
    assert np.array_equal(cache["validation"], want)
    policy = make_logps_fn(parts.graphdef, cfg.dpo.logprob_chunk, cfg.data, parts.frozen)
    tuned, _ = all_logps(parts.params, enc["validation"], policy, cfg, mesh, pad_id(tokenizer))
    assert not np.allclose(tuned, want)


def test_merged_export_equals_the_adapted_model(lora_run, tmp_path):
    from jaxalign.models import load_pretrained

    config = tmp_path / "run.yaml"
    config.write_text(dump_config(lora_run))
    out = tmp_path / "merged"
    assert (
        main(["model", "export", "--run-config", str(config), "--merge-lora", "--out", str(out)])
        == 0
    )
    tokens = jnp.arange(40, dtype=jnp.int32).reshape(2, 20) % 300
    want = restored(lora_run)(tokens)
    merged, _ = load_pretrained(str(out))
    assert float(jnp.abs(merged(tokens) - want).max()) <= 1e-5
    assert not lora.has_lora(merged)


def dump_config(cfg) -> str:
    """A config file that reproduces `cfg`."""
    from jaxalign.config import dump

    return dump(cfg)


def export_adapter_dirs(lora_run, tmp_path):
    """(HF directory of the base model, the run's PEFT adapter directory)."""
    from jaxalign.models import export_hf

    config = tmp_path / "run.yaml"
    config.write_text(dump_config(lora_run))
    out = tmp_path / "adapter"
    assert (
        main(["model", "export", "--run-config", str(config), "--adapter", "--out", str(out)]) == 0
    )
    base, tokenizer = build_model(lora_run.model, None)
    return export_hf(base, tokenizer, tmp_path / "base"), out


def test_adapter_export_has_the_peft_format_and_math(lora_run, tmp_path):
    base_dir, out = export_adapter_dirs(lora_run, tmp_path)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == "LORA" and config["task_type"] == "CAUSAL_LM"
    assert config["r"] == RANK and config["lora_alpha"] == 16.0 and config["bias"] == "none"
    assert sorted(config["target_modules"]) == sorted(lora.HF_MODULES.values())
    tensors = read_safetensors(out / "adapter_model.safetensors")
    a = tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight"]
    b = tensors["base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight"]
    hf_base = read_safetensors(base_dir / "model.safetensors")
    w = hf_base["model.layers.1.self_attn.q_proj.weight"]  # [out, in]
    assert a.shape == (RANK, w.shape[1]) and b.shape == (w.shape[0], RANK)
    assert len(tensors) == 2 * 7 * 2  # lora_A and lora_B of 7 targets in 2 layers
    # PEFT's forward: W x + (lora_alpha / r) B A x, i.e. the merged weight below
    merged = tmp_path / "merged"
    config_file = tmp_path / "run.yaml"
    main(
        ["model", "export", "--run-config", str(config_file), "--merge-lora", "--out", str(merged)]
    )
    want = read_safetensors(merged / "model.safetensors")["model.layers.1.self_attn.q_proj.weight"]
    assert np.allclose(w + config["lora_alpha"] / config["r"] * (b @ a), want, atol=1e-6)


@pytest.mark.skipif(
    importlib.util.find_spec("peft") is None or importlib.util.find_spec("torch") is None,
    reason="peft (optional; with torch) is not installed",
)
def test_peft_loads_the_adapter_onto_the_hf_base(lora_run, tmp_path):
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base_dir, out = export_adapter_dirs(lora_run, tmp_path)
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), out)
    tokens = np.arange(40).reshape(2, 20) % 300
    with torch.no_grad():
        got = model(torch.tensor(tokens)).logits.numpy()
        with model.disable_adapter():
            plain = model(torch.tensor(tokens)).logits.numpy()
    want = np.asarray(restored(lora_run)(jnp.asarray(tokens, jnp.int32)))
    assert np.abs(got - want).max() <= 1e-4 < np.abs(plain - want).max()


@pytest.mark.slow
def test_non_default_settings_resume_exactly(tiny_tokenizer, prefs, tmp_path):
    cfg = tiny_config(tiny_tokenizer, prefs, tmp_path / "whole", *OTHER)
    train(cfg, progress=False)
    leaves = checkpoint_leaves(cfg.train.run_dir)
    assert {re.search(r"'(\w+_proj)'", k).group(1) for k in leaves} == {
        "q_proj",
        "v_proj",
        "down_proj",
    }
    assert sum(v.size for v in leaves.values()) == expected_count(
        build_model(cfg.model, None)[0].config, 2, ("q", "v", "down")
    )
    cut = tmp_path / "cut"
    shutil.copytree(tmp_path / "whole", cut)
    shutil.rmtree(cut / "checkpoints" / "4")
    train(tiny_config(tiny_tokenizer, prefs, cut, *OTHER), progress=False)
    again = checkpoint_leaves(cut)
    assert all(np.array_equal(leaves[k], again[k]) for k in leaves)
    # dropout is live: without it the same run ends elsewhere
    cfg = tiny_config(tiny_tokenizer, prefs, tmp_path / "nodrop", *OTHER, "lora.dropout=0")
    train(cfg, progress=False)
    nodrop = checkpoint_leaves(cfg.train.run_dir)
    assert not all(np.array_equal(leaves[k], nodrop[k]) for k in leaves)


def test_resume_with_changed_lora_settings_is_refused(lora_run, tiny_tokenizer, prefs):
    run = lora_run.train.run_dir
    changed = tiny_config(tiny_tokenizer, prefs, run, *BASE, "lora.rank=8")
    with pytest.raises(ConfigError, match=r"lora\.rank: 4 -> 8.*new train\.run_dir"):
        train(changed, progress=False, allow_changes=("lora.rank",))
    changed = tiny_config(tiny_tokenizer, prefs, run, *BASE, "lora.alpha=32")
    with pytest.raises(ConfigError, match=r"lora\.alpha: 16\.0 -> 32\.0"):
        train(changed, progress=False)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lora.rank=-1", r"lora\.rank: -1 is out of range"),
        ("lora.alpha=0", r"lora\.alpha: 0(\.0)? is out of range"),
        ("lora.targets=[qkv]", r"lora\.targets: .*qkv.* is not allowed"),
        ("lora.targets=[]", r"lora: targets: at least one"),
        ("lora.alpha=8", r"lora: rank: 0 turns LoRA off, but lora\.alpha is set"),
    ],
)
def test_bad_settings_are_one_line_config_errors(override, message):
    with pytest.raises(ConfigError, match=message) as err:
        load_config(None, [override])
    assert "\n" not in str(err.value)


def test_a_target_or_rank_the_model_cannot_take_is_refused(tiny_tokenizer, monkeypatch):
    from jaxalign.config import LoRAConfig

    cfg = load_config(None, ["model.path=", f"model.tokenizer={tiny_tokenizer}"])
    model, _ = build_model(cfg.model, None)
    with pytest.raises(ConfigError, match=r"lora\.rank: 100 exceeds .* of model\.layers\.0"):
        lora.apply_lora(nnx.clone(model), LoRAConfig(rank=100))
    monkeypatch.setitem(lora.HF_MODULES, "gate", "w_gate")
    with pytest.raises(ConfigError, match=r"lora\.targets: 'gate' matches no layer"):
        lora.apply_lora(model, LoRAConfig(rank=2))


def test_export_flags_are_checked_against_the_run(lora_run, tmp_path, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(dump_config(lora_run))
    plain = tmp_path / "plain.yaml"
    plain.write_text(dump_config(load_config(None, [f"train.run_dir={tmp_path / 'x'}"])))
    cases = [
        (["--run-config", str(config)], 1, "a LoRA run (lora.rank=4) checkpoints adapters only"),
        (["--run-config", str(plain), "--merge-lora"], 1, "is not a LoRA run"),
        (["--adapter"], 1, "--adapter exports a LoRA training run: give --run-config"),
        (["--run-config", str(config), "--adapter", "--merge-lora"], 2, "not allowed with"),
    ]
    for extra, code, message in cases:
        with pytest.raises(SystemExit) if code == 2 else _nothing():
            assert main(["model", "export", *extra, "--out", str(tmp_path / "o")]) == code
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
        assert not (tmp_path / "o").exists()


def _nothing():
    """A context manager that does nothing."""
    import contextlib

    return contextlib.nullcontext()


def test_a_stacked_layer_axis_gets_one_adapter_per_layer():
    from jaxalign.config import LoRAConfig

    adapter = lora.LoRA((3, 8, 6), LoRAConfig(rank=2, alpha=4.0), index=0)
    a, b = adapter.a.get_value(), adapter.b.get_value()
    assert a.shape == (3, 8, 2) and b.shape == (3, 2, 6) and not np.any(b)
    adapter.b.set_value(b + 1.0)
    assert np.allclose(lora._delta(adapter)[1], 2.0 * (a[1] @ (b[1] + 1.0)), atol=1e-6)

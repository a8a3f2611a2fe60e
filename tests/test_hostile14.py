"""Hostile inputs to issue 14's surface: lora.*, model.scan_layers / remat, train --dry-run,
model export --merge-lora / --adapter, eval of LoRA and scanned runs (one line, nothing written)."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import QWEN3_BIASED, TINY_CPU
from flax import nnx

from jaxalign.cli import main
from jaxalign.config import DPORun, LoRAConfig, dump, load_config, project
from jaxalign.errors import ConfigError
from jaxalign.models import lora, lora_context
from jaxalign.models.loading import build, export_hf, random_tensors
from jaxalign.models.weights import read_safetensors

TINY = str(TINY_CPU)


@pytest.mark.parametrize(
    ("overrides", "key"),
    [
        (["lora.rank=-1"], "lora.rank"),
        (["lora.rank=two"], "lora.rank"),
        (["lora.rank=4", "lora.alpha=0"], "lora.alpha"),
        (["lora.rank=4", "lora.alpha=-2"], "lora.alpha"),
        (["lora.rank=4", "lora.alpha=big"], "lora.alpha"),
        (["lora.rank=4", "lora.alpha=.nan"], "lora.alpha"),
        (["lora.rank=4", "lora.dropout=1"], "lora.dropout"),
        (["lora.rank=4", "lora.dropout=-0.1"], "lora.dropout"),
        (["lora.rank=4", "lora.targets=[q,v,q]"], "targets"),
        (["lora.rank=4", "lora.targets=[q,qkv]"], "lora.targets"),
        (["lora.rank=4", "lora.targets=q"], "lora.targets"),  # a string, not a list
        (["lora.rank=4", "lora.targets=[q_proj]"], "lora.targets"),
        (["model.scan_layers='yes'"], "model.scan_layers"),
        (["model.remat=ful"], "model.remat"),
        (["model.remat=true"], "model.remat"),
        (["train.device_memory_gib=0"], "train.device_memory_gib"),
        (["train.device_memory_gib=-8"], "train.device_memory_gib"),
        (["train.device_memory_gib=lots"], "train.device_memory_gib"),
        (["train.device_memory_gib=1e999"], "train.device_memory_gib"),
        (["train.mesh_fsdp=0"], "mesh_fsdp"),  # was a ZeroDivisionError in the mesh
        (["lora.rank=4", "lora.seed=9223372036854775808"], "lora.seed"),  # was OverflowError
    ],
)
def test_bad_settings_are_one_line_naming_the_key(overrides, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        load_config(None, overrides)
    assert "\n" not in str(err.value)


def test_exponent_floats_are_numbers(tmp_path):
    # PyYAML reads 1e-5 as a string (YAML 1.1); every TRL config writes learning rates so
    cfg = load_config(None, ["optim.learning_rate=1e-5", "train.device_memory_gib=8E1"])
    assert cfg.optim.learning_rate == 1e-5 and cfg.train.device_memory_gib == 80.0
    file = tmp_path / "c.yaml"
    file.write_text("optim:\n  learning_rate: 3e-4\nlora:\n  rank: 4\n  alpha: 1.6e1\n")
    cfg = load_config(file)
    assert cfg.optim.learning_rate == 3e-4 and cfg.lora.alpha == 16.0
    with pytest.raises(ConfigError, match=r"optim\.steps|optim\.warmup_steps"):
        load_config(None, ["optim.warmup_steps=1e2"])  # an int stays an int


def dry(tmp_path, *extra, config=TINY):
    """`jaxalign train --dry-run` arguments on a config, with its run dir under tmp_path."""
    args = ["train", "--config", config, "--dry-run", f"train.run_dir={tmp_path / 'run'}"]
    return [*args, "data.prefs=unused.jsonl", *extra]


def test_dry_run_with_allow_change_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as done:
        main([*dry(tmp_path), "--allow-change", "train.steps"])
    assert done.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "--allow-change: not allowed with argument --dry-run" in err and "\n" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("config", [TINY, "configs/train/tiny_grpo.yaml"])
def test_dry_run_that_does_not_fit_fails(tmp_path, capsys, config):
    assert main(dry(tmp_path, "train.device_memory_gib=0.0001", config=config)) == 1
    out, err = capsys.readouterr()
    assert "does NOT fit train.device_memory_gib" in out  # the plan is still printed
    assert err.startswith("jaxalign: error: train.device_memory_gib=0.0001: the planned peak")
    assert err.count("\n") == 1 and not (tmp_path / "run").exists()


def write_run(tmp_path, *overrides):
    """A run directory as training leaves it for the preferences evaluator: config.yaml
    and results.json; returns the config file that describes it."""
    run = tmp_path / "run"
    cfg = load_config(TINY, [f"train.run_dir={run}", *overrides])
    run.mkdir()
    (run / "config.yaml").write_text("# run id 0\n" + dump(project(cfg, DPORun)))
    results = {f"{w}/rewards/accuracies": v for w, v in (("base", 0.5), ("eval", 0.75))}
    (run / "results.json").write_text(json.dumps(results))
    file = tmp_path / "run.yaml"
    file.write_text(dump(cfg))
    return file


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["train.run_dir=elsewhere"], "elsewhere/results.json: not found (train the run first)"),
        (["model.scan_layers=true"], "saved with model.scan_layers=false, this config has true"),
        (["lora.alpha=4"], "trained with another model (lora.alpha: 16.0 -> 4.0)"),
    ],
)
def test_eval_preferences_checks_the_run(tmp_path, capsys, monkeypatch, extra, message):
    monkeypatch.chdir(tmp_path)
    file = write_run(tmp_path, "lora.rank=2")
    args = ["eval", "--config", str(file), "eval.evaluators=[preferences]"]
    assert main(args) == 0 and "base 0.500  tuned 0.750" in capsys.readouterr().out
    assert main([*args, *extra]) == 1  # used to print an empty table, or another run's
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err


@pytest.mark.parametrize(
    ("flags", "code", "message"),
    [
        (["--merge-lora"], 1, "is not a LoRA run (lora.rank is 0)"),
        (["--adapter"], 1, "is not a LoRA run (lora.rank is 0)"),
        (["--adapter", "lora.rank=2", "--out", "afile"], 1, "afile: is a file"),
        (["--adapter", "lora.rank=2", "--out", "full"], 1, "full: directory is not empty"),
        (["--adapter", "lora.rank=2", "--out", "run/x"], 1, "which this export reads"),
        (["--adapter", "lora.rank=2", "--out", "locked/x"], 1, "is not a writable directory"),
        (["--adapter", "--merge-lora", "lora.rank=2"], 2, "not allowed with argument"),
    ],
)
def test_export_refusals_write_nothing(tmp_path, capsys, monkeypatch, flags, code, message):
    import os

    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("mine")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    (tmp_path / "locked").mkdir()
    access = os.access  # the tests run as root, for whom every directory is writable
    monkeypatch.setattr(os, "access", lambda p, m: "locked" not in str(p) and access(p, m))
    file = tmp_path / "run.yaml"
    file.write_text(f"train: {{run_dir: {tmp_path / 'run'}}}\n")
    args = ["model", "export", "--run-config", str(file), *flags]
    args += [] if "--out" in flags else ["--out", "new"]
    if code == 2:
        with pytest.raises(SystemExit) as done:
            main(args)
        assert done.value.code == 2
    else:
        assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile", "full", "locked", "run.yaml"]
    assert os.listdir(tmp_path / "full") == ["keep.txt"]


CFG = QWEN3_BIASED  # q/k/v/o biases and q/k norms beside the adapted layers, untied head
TOKENS = np.random.default_rng(0).integers(2, 97, (2, 11))


def adapted(scan: bool, dropout: float = 0.0):
    """A random qwen3-like model (scanned or not) with trained-looking adapters on q, o, up:
    fresh A (the same in both layouts), B set alike in both."""
    tensors = random_tensors(CFG, seed=3)
    model = build(CFG, tensors, scan_layers=scan)
    cfg = LoRAConfig(rank=2, alpha=6.0, dropout=dropout, targets=("q", "o", "up"))
    lora.apply_lora(model, cfg)
    for name, lin in lora.linears(model, ("q", "o", "up")):
        b = lin.lora.b.get_value()
        rng = np.random.default_rng(len(name.rsplit(".", 1)[1]))  # per target, all layers
        trained = 0.2 * rng.normal(size=(CFG.num_layers, *b.shape[-2:]))
        layer = name.split(".")[2]  # unscanned: each layer its slice
        lin.lora.b.set_value(jnp.asarray(trained if scan else trained[int(layer)], b.dtype))
    return model


@pytest.mark.parametrize("scan", [False, True])
def test_scanned_or_biased_lora_adapter_loads_in_peft(tmp_path, scan):
    pytest.importorskip("torch")
    pytest.importorskip("peft")
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = adapted(scan)
    want = np.asarray(model(jnp.asarray(TOKENS, jnp.int32)))
    cfg = LoRAConfig(rank=2, alpha=6.0, targets=("q", "o", "up"))
    out = tmp_path / "adapter"
    lora.export_adapter(model, cfg, str(tmp_path / "base"), out)
    unscanned = tmp_path / "flat"
    lora.export_adapter(adapted(False), cfg, "", unscanned)
    files = [read_safetensors(d / "adapter_model.safetensors") for d in (out, unscanned)]
    assert files[0].keys() == files[1].keys() and len(files[0]) == 2 * 3 * 3
    assert all(np.array_equal(files[0][k], files[1][k]) for k in files[0])
    base = nnx.clone(model)
    for _, lin in lora.linears(base, ("q", "o", "up")):
        lin.lora = None
    export_hf(base, None, tmp_path / "base")
    config = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == str((tmp_path / "base").resolve())
    hf = AutoModelForCausalLM.from_pretrained(tmp_path / "base")
    peft = PeftModel.from_pretrained(hf, tmp_path / "adapter")
    with torch.no_grad():
        got = peft(torch.tensor(TOKENS)).logits.numpy()
    assert np.abs(got - want).max() <= 1e-4
    merged = np.asarray(lora.merge_lora(model)(jnp.asarray(TOKENS, jnp.int32)))
    assert np.abs(merged - want).max() <= 1e-5 and not lora.has_lora(model)


@pytest.mark.parametrize("lora_flags", [[], ["--adapter", "lora.rank=2"]])
def test_export_without_a_checkpoint_refuses_before_loading(
    tmp_path, capsys, monkeypatch, lora_flags
):
    from jaxalign.models import spec

    def no_load(*args, **kwargs):
        raise AssertionError("the base model was loaded")

    monkeypatch.setattr(spec, "build_model", no_load)
    (tmp_path / "run" / "checkpoints" / "3.orbax-checkpoint-tmp").mkdir(parents=True)
    file = tmp_path / "run.yaml"
    file.write_text(f"train: {{run_dir: {tmp_path / 'run'}}}\n")
    args = ["model", "export", "--run-config", str(file), "--out", str(tmp_path / "o")]
    assert main([*args, *lora_flags]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("run/checkpoints: no restorable checkpoint (train the run first)"), err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("evaluator", ["generations", "behaviour"])
def test_eval_without_a_checkpoint_refuses_before_loading(tmp_path, capsys, monkeypatch, evaluator):
    from jaxalign.models import spec

    def no_load(*args, **kwargs):
        raise AssertionError("the base model was loaded")

    monkeypatch.setattr(spec, "build_model", no_load)
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    file = tmp_path / "run.yaml"
    file.write_text(
        f"train: {{run_dir: {tmp_path / 'run'}}}\neval: {{evaluators: [{evaluator}]}}\n"
    )
    assert main(["eval", "--config", str(file)]) == 1
    err = capsys.readouterr().err.strip()
    assert err.endswith("run/checkpoints: no restorable checkpoint (train the run first)"), err
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["checkpoints"]


def adapter_grads(model, key=None) -> tuple[np.ndarray, dict]:
    """(logits, gradient of a logit loss per unscanned adapter name) of an adapted model;
    with `key`, adapter inputs are dropped as in a training step."""
    graphdef, adapters, base = lora.split_lora(model)
    tokens = jnp.asarray(TOKENS, jnp.int32)

    def loss(a):
        with lora_context.dropout_key(key):
            logits = nnx.merge(graphdef, a, base)(tokens)
        return jnp.mean(jax.nn.log_softmax(logits)[..., 5] * jnp.arange(11.0)), logits

    grads, logits = jax.grad(loss, has_aux=True)(adapters)
    out = {}
    for path, value in jax.tree_util.tree_leaves_with_path(grads):
        name = ".".join(str(getattr(k, "key", k)) for k in path)
        value = np.asarray(value)
        if value.ndim == 2:
            out[name] = value
        else:  # stacked: one entry per layer, named as unscanned
            out.update({name.replace("layers.", f"layers.{i}.", 1): v for i, v in enumerate(value)})
    return np.asarray(logits), out


@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_scanned_lora_matches_unscanned_logits_and_adapter_gradients(dropout):
    key = jax.random.key(7) if dropout else None  # with dropout: each layer its own masks
    flat_logits, flat = adapter_grads(adapted(False, dropout), key)
    scan_logits, scanned = adapter_grads(adapted(True, dropout), key)
    if dropout:  # the masks bite: logits differ from the same model without dropout
        assert np.abs(flat_logits - adapter_grads(adapted(False))[0]).max() > 1e-3
    assert np.abs(flat_logits - scan_logits).max() <= 1e-5
    assert flat.keys() == scanned.keys() and len(flat) == 2 * 3 * 3
    assert all(np.abs(flat[k] - scanned[k]).max() <= 1e-5 for k in flat)


@pytest.mark.parametrize(
    "command",
    [
        ["model", "info", "ADAPTER"],
        ["generate", "--model", "ADAPTER", "--prompt", "hi"],
        ["train", "--config", TINY, "--dry-run", "model.path=ADAPTER", "train.mesh_devices=1"],
    ],
)
def test_an_adapter_directory_as_a_model_names_what_it_is(tmp_path, capsys, command):
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"peft_type": "LORA"}')
    (adapter / "adapter_model.safetensors").write_bytes(b"")
    args = [a.replace("ADAPTER", str(adapter)) for a in command]
    assert main([*args, f"train.run_dir={tmp_path / 'run'}"] if "train" in args else args) == 1
    err = capsys.readouterr().err.strip()
    assert "holds LoRA adapter files only" in err and "\n" not in err, err
    assert not (tmp_path / "run").exists()

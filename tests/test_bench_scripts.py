"""scripts/bench_dpo.py and scripts/profile_dpo.py: options reach the model; no timing asserted."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest

from jaxalign.models.config import ModelConfig
from jaxalign.models.decoder import REMAT_POLICIES

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
TINY = ModelConfig(
    family="llama",
    vocab_size=128,
    hidden_size=32,
    intermediate_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    tie_word_embeddings=True,
)


def load(name: str):
    """Import scripts/<name>.py as a module."""
    spec = importlib.util.spec_from_file_location(name, SCRIPTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def bench():
    """scripts/bench_dpo.py."""
    return load("bench_dpo")


@pytest.mark.parametrize("policy", sorted(REMAT_POLICIES))
def test_bench_dpo_accepts_every_remat_policy(bench, policy):
    a = bench.parse_args(["--torch-ref", "x.py", "--remat", policy, "--scan-layers"])
    assert (a.remat, a.scan_layers) == (policy, True)
    assert bench.parse_args(["--torch-ref", "x.py"]).scan_layers is False


def test_bench_dpo_refuses_an_unknown_remat_policy(bench, capsys):
    with pytest.raises(SystemExit) as err:
        bench.parse_args(["--torch-ref", "x.py", "--remat", "everything"])
    assert err.value.code == 2
    assert "dots_saveable" in capsys.readouterr().err  # the choices are listed


def test_bench_dpo_builds_the_model_it_is_asked_for(bench, monkeypatch):
    monkeypatch.setattr(bench, "shape_config", lambda shape: TINY)
    model, cfg = bench.random_model("smollm2-135m", "fp32", "dots_saveable", None, scan_layers=True)
    assert (model.remat, model.scan_layers, cfg) == ("dots_saveable", True, TINY)
    # scanned: one stacked block with a leading layer axis
    assert model.layers.mlp.up_proj.kernel.get_value().shape == (2, 32, 64)


@pytest.mark.slow
def test_profile_dpo_reports_every_part(monkeypatch, capsys, tmp_path):
    # end to end on a tiny model: every row present, the step's seconds and FLOPs positive
    load("bench_dpo")
    profile = load("profile_dpo")
    monkeypatch.setattr(sys.modules["bench_dpo"], "shape_config", lambda shape: TINY)
    out = tmp_path / "B.md"
    argv = ["--pairs", "1", "--seq", "16", "--prompt", "4", "--repeats", "1"]
    monkeypatch.setattr(sys, "argv", ["profile_dpo.py", *argv, "--remat", "full"])
    monkeypatch.setattr(sys, "argv", [*sys.argv, "--scan-layers", "--write", str(out)])
    profile.main()
    text = out.read_text()
    assert "remat full, scanned layers" in text and "<!-- profile_dpo_cpu:start -->" in text
    for part in ("step", *profile.CATEGORIES, "other (step - parts)"):
        assert f"| {part} |" in text
    step = next(line for line in text.splitlines() if line.startswith("| step |"))
    assert float(step.split("|")[2]) > 0 and float(step.split("|")[4].replace(",", "")) > 0


def test_bench_dpo_torch_timeout_keeps_the_jaxalign_rows(bench, monkeypatch, tmp_path):
    # a torch run over --torch-timeout is reported in its row; the jaxalign rows are measured
    slow_ref = tmp_path / "slow_ref.py"
    slow_ref.write_text("import time\ntime.sleep(60)\n")
    monkeypatch.setattr(bench, "shape_config", lambda shape: TINY)
    out = tmp_path / "B.md"
    argv = ["--torch-ref", str(slow_ref), "--pairs", "1", "--seq", "16", "--prompt", "4"]
    argv += ["--steps", "1", "--layouts", "pairs", "--references", "model", "--torch-timeout", "1"]
    monkeypatch.setattr(sys, "argv", ["bench_dpo.py", *argv, "--write", str(out)])
    bench.main()
    text = out.read_text()
    assert "| torch+transformers (timed out after 1 s) | - |" in text
    assert re.search(
        r"\| jaxalign pairs \(in-step reference, xla attention\), rows 2 x 16 \| [0-9.]+ \|", text
    )


def test_bench_models_options():
    models = load("bench_models")
    a = models.parse_args(["--random", "--shape", "tiny", "--logprob-lengths", ""])
    assert (a.random, a.shape, a.logprob_lengths) == (True, "tiny", "")
    assert models.parse_args([]).logprob_lengths == "256,1024,4096"

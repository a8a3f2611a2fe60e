"""The run directory: retention, resume rules, results across resumes, lock, NaN guard, logs."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tracemalloc
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from conftest import tiny_config, write_learnable_prefs

from jaxalign.algos.dpo import train
from jaxalign.checkpoint import Checkpoints
from jaxalign.config import dump, load_config
from jaxalign.errors import ConfigError, JaxalignError


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    return write_learnable_prefs(tmp_path_factory.mktemp("prefs") / "learn.jsonl")


@pytest.fixture(scope="module")
def finished(tiny_tokenizer, prefs, tmp_path_factory):
    """A finished 4-step run (checkpoints at 2 and 4, evaluations at 2 and 4)."""
    run = tmp_path_factory.mktemp("finished") / "run"
    cfg = tiny_config(tiny_tokenizer, prefs, run, *FOUR)
    train(cfg, progress=False)
    return run


FOUR = (
    "train.steps=4",
    "train.checkpoint_every=2",
    "train.eval_every=2",
    "train.keep_checkpoints=3",
)


def rows(run: Path) -> list[dict]:
    """metrics.jsonl rows."""
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def snapshot(run: Path) -> dict:
    """Every file's bytes under a directory."""
    return {str(p.relative_to(run)): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_retention_keeps_newest_and_best(tmp_path):
    # keep=2, saves every 2, evaluations at 4/8/12: old Orbax retention left [2,4,6,8,10]
    ckpts = Checkpoints(tmp_path, 2, "eval/acc", False)
    state = {"w": jnp.ones(3)}
    scores = {4: 0.5, 8: 0.9, 12: 0.7}
    seen = []
    for step in range(2, 14, 2):
        metrics = {"eval/acc": scores[step]} if step in scores else None
        ckpts.save(step, state, {"i": step}, {}, {}, metrics=metrics)
        seen.append(ckpts.steps())
        assert step in ckpts.steps() and len(ckpts.steps()) <= 3  # newest kept; keep + best
    ckpts.close()
    assert seen[-1] == [8, 10, 12]  # the best (8) in addition to the newest two
    assert seen[3] == [6, 8]  # after step 8: newest two, 8 is also the best


def test_rerun_and_resume_keep_results_and_rows(finished, tiny_tokenizer, prefs, tmp_path):
    rerun = tmp_path / "rerun"
    shutil.copytree(finished, rerun)
    before = json.loads((rerun / "results.json").read_text())
    results = train(tiny_config(tiny_tokenizer, prefs, rerun, *FOUR), progress=False)
    assert {k: results[k] for k in before if k.startswith(("base/", "eval/"))} == {
        k: v for k, v in before.items() if k.startswith(("base/", "eval/"))
    }
    # A crash after step 4 was logged but before its checkpoint: resume from 2, no duplicates.
    resumed = tmp_path / "resumed"
    shutil.copytree(finished, resumed)
    shutil.rmtree(resumed / "checkpoints" / "4")
    (resumed / "results.json").unlink()
    results = train(tiny_config(tiny_tokenizer, prefs, resumed, *FOUR), progress=False)
    assert "base/rewards/accuracies" in results and "eval/rewards/accuracies" in results
    train_steps = [r["step"] for r in rows(resumed) if "train/loss" in r]
    assert train_steps == [1, 2, 3, 4]
    eval_steps = [r["step"] for r in rows(resumed) if "eval/pairs" in r]
    assert eval_steps == [2, 4]
    resumed_losses = [r["train/loss"] for r in rows(resumed) if "train/loss" in r]
    assert resumed_losses == [r["train/loss"] for r in rows(finished) if "train/loss" in r]
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(resumed / "tensorboard"))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3, 4]
    row = next(r for r in rows(resumed) if r["step"] == 3)
    assert row["train/learning_rate"] > 0 and row["train/epoch"] == pytest.approx(3 * 8 / 36)


def test_eval_after_resume(finished, tiny_tokenizer, prefs, tmp_path, capsys):
    from conftest import TINY_CPU

    from jaxalign.cli import main

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / "results.json").unlink()  # as left by a run killed before it finished
    shutil.rmtree(run / "checkpoints" / "4")
    train(tiny_config(tiny_tokenizer, prefs, run, *FOUR), progress=False)
    args = [f"model.tokenizer={tiny_tokenizer}", f"data.prefs={prefs}", f"train.run_dir={run}"]
    args.append("eval.evaluators=[preferences,generations]")  # no judge here (test_eval_behaviour)
    code = main(
        ["eval", "--config", str(TINY_CPU), "--max-new-tokens", "2", "--prompts", "1", *args]
    )
    assert code == 0 and "rewards/accuracies" in capsys.readouterr().out


def test_resume_with_changed_config_is_refused_untouched(finished, tiny_tokenizer, prefs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    for change, key in (
        ("optim.grad_accum=2", "optim.grad_accum"),
        ("data.batch_size=4", "data.batch_size"),
        ("train.steps=6", "train.steps"),
    ):
        cfg = tiny_config(tiny_tokenizer, prefs, run, *FOUR, change)
        with pytest.raises(ConfigError) as err:
            train(cfg, progress=False)
        assert key in str(err.value) and "\n" not in str(err.value)
        assert snapshot(run) == before  # nothing touched, config.yaml included
    with pytest.raises(ConfigError, match=r"optim\.grad_accum"):  # structural: never allowed
        train(
            tiny_config(tiny_tokenizer, prefs, run, *FOUR, "optim.grad_accum=2"),
            progress=False,
            allow_changes=("optim.grad_accum",),
        )
    with pytest.raises(ConfigError, match="fewer than the 4 steps"):
        train(
            tiny_config(tiny_tokenizer, prefs, run, *FOUR, "train.steps=3"),
            progress=False,
            allow_changes=("train.steps",),
        )
    # Extending train.steps is allowed explicitly, and really resumes (no restart from 0).
    train(
        tiny_config(tiny_tokenizer, prefs, run, *FOUR, "train.steps=6"),
        progress=False,
        allow_changes=("train.steps",),
    )
    assert [r["step"] for r in rows(run) if "train/loss" in r] == [1, 2, 3, 4, 5, 6]
    assert "steps: 6" in (run / "config.yaml").read_text()


def test_only_unreadable_checkpoints_fall_back(tmp_path, monkeypatch):
    from jaxalign.train.restore import restore_latest

    ckpts = Checkpoints(tmp_path, 3, None, False)
    state = {"w": jnp.ones(3)}
    for step in (1, 2):
        ckpts.save(step, state, {"i": step}, {"c": 1}, {})
    target = {"w": jnp.zeros(3)}
    assert restore_latest(ckpts, target, lambda old: None)[0] == 2

    def mismatch(step, abstract):
        raise ValueError("Requested shape: (4,) is not compatible with the stored shape: (3,)")

    monkeypatch.setattr(ckpts, "restore", mismatch)
    with pytest.raises(ValueError, match="not compatible"):
        restore_latest(ckpts, target, lambda old: None)
    ckpts.close()


def test_nan_parameters_are_never_saved(tiny_tokenizer, prefs, tmp_path):
    run = tmp_path / "run"
    cfg = tiny_config(
        tiny_tokenizer,
        prefs,
        run,
        "train.steps=1",
        "train.checkpoint_every=1",
        "optim.learning_rate=1.0e+39",  # inf in float32: the update makes every weight non-finite
        "optim.schedule=constant",
        "optim.warmup_steps=0",
    )
    with pytest.raises(JaxalignError, match="NaN/Inf at step 1"):
        train(cfg, progress=False)
    assert not (run / "checkpoints" / "1").exists()


def test_train_seed_is_gone():
    with pytest.raises(ConfigError, match=r"train\.seed: unknown key"):
        load_config(None, ["train.seed=1"])


def test_lock_refuses_a_second_process_and_breaks_stale_locks(tmp_path):
    from jaxalign.train.run_dir import locked

    with (
        locked(tmp_path),
        pytest.raises(JaxalignError, match=rf"in use by another train process \(pid {os.getpid()}"),
        locked(tmp_path),
    ):
        pass
    assert not (tmp_path / ".lock").exists()
    dead = {"pid": 2**22 + 12345, "host": socket.gethostname(), "since": 0}  # beyond pid_max
    (tmp_path / ".lock").write_text(json.dumps(dead))
    with locked(tmp_path):  # stale: reclaimed
        assert json.loads((tmp_path / ".lock").read_text())["pid"] == os.getpid()
    other = {"pid": 1, "host": "elsewhere.example", "since": 0}  # another host: cannot tell
    (tmp_path / ".lock").write_text(json.dumps(other))
    with pytest.raises(JaxalignError, match=r"elsewhere\.example"), locked(tmp_path):
        pass


def test_train_refuses_a_locked_run_dir(finished, tiny_tokenizer, prefs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    (run / ".lock").write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "since": 0})
    )
    before = snapshot(run)
    with pytest.raises(JaxalignError, match="in use by another train process"):
        train(tiny_config(tiny_tokenizer, prefs, run, *FOUR), progress=False)
    assert snapshot(run) == before


def test_failing_train_writes_nothing(finished, tiny_tokenizer, prefs, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    before = snapshot(run)
    missing = tmp_path / "missing.jsonl"
    with pytest.raises(JaxalignError, match=r"missing\.jsonl"):
        train(tiny_config(tiny_tokenizer, missing, run, *FOUR), progress=False)
    assert snapshot(run) == before
    with pytest.raises(JaxalignError, match=r"missing\.jsonl"):
        train(tiny_config(tiny_tokenizer, missing, tmp_path / "fresh"), progress=False)
    assert not (tmp_path / "fresh").exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ConfigError, match="is a file"):
        train(tiny_config(tiny_tokenizer, prefs, tmp_path / "afile"), progress=False)


def test_eval_against_another_model_names_the_keys(finished, tiny_tokenizer, prefs):
    from jaxalign.eval.generations import restore_run
    from jaxalign.models.spec import build_model

    cfg = tiny_config(tiny_tokenizer, prefs, finished, "model.random.hidden_size=32")
    with pytest.raises(ConfigError, match=r"another model \(model\.random\.hidden_size: 64 -> 32"):
        restore_run(cfg, build_model(cfg.model, None)[0])


@pytest.mark.parametrize("buckets", ["[]", "[64,32]", "[0,32]"])
def test_bad_buckets(buckets):
    with pytest.raises(ConfigError, match="buckets"):
        load_config(None, [f"data.buckets={buckets}"])


def test_huge_step_count_needs_no_index_list(prefs, tiny_tokenizer):
    from transformers import AutoTokenizer

    from jaxalign.data.preferences import encode, read_records, train_dataset

    tok = AutoTokenizer.from_pretrained(tiny_tokenizer)
    enc = encode(
        read_records(prefs, "train"),
        tok,
        max_prompt_len=40,
        max_len=64,
        conditioning="none",
        source=prefs,
    )
    tracemalloc.start()
    ds = train_dataset(
        enc,
        batch_size=8,
        steps=10**6,
        seed=0,
        balance_groups=False,
        buckets=(32, 64, 96, 128),
        pad_id=0,
    )
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(ds) == 10**6 and peak < 20 * 2**20
    assert ds[10**6 - 1]["tokens"].shape[0] >= 8


def test_metrics_rows_are_on_disk_when_written(tmp_path):
    from jaxalign.logging import MetricsWriter

    writer = MetricsWriter(tmp_path)
    writer.write(1, {"train/loss": 0.5})
    assert json.loads((tmp_path / "metrics.jsonl").read_text()) == {"step": 1, "train/loss": 0.5}
    writer.close()
    assert np.isfinite(0.5)


def test_export_and_eval_share_the_resume_restore_path(
    finished, tiny_tokenizer, prefs, tmp_path, monkeypatch, capsys
):
    from conftest import TINY_CPU

    import jaxalign.train.restore as restore
    from jaxalign.cli import main

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    for file in (run / "checkpoints" / "4" / "state").rglob("*"):
        if file.is_file():
            file.write_bytes(b"garbage")  # damaged newest step: falls back to step 2
    calls = []
    real = restore.restore_latest
    monkeypatch.setattr(restore, "restore_latest", lambda *a: calls.append(1) or real(*a))
    args = [f"model.tokenizer={tiny_tokenizer}", f"data.prefs={prefs}", f"train.run_dir={run}"]
    out = tmp_path / "hf"
    assert main(["model", "export", "--run-config", str(TINY_CPU), "--out", str(out), *args]) == 0
    assert "restored step 2" in capsys.readouterr().out and calls == [1]
    assert oct((run / "results.json").stat().st_mode & 0o777) == oct(0o666 & ~_umask())


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def test_cli_resume_refusal_and_allow_change(finished, tiny_tokenizer, prefs, tmp_path, capsys):
    from conftest import TINY_CPU

    from jaxalign.cli import main

    run = tmp_path / "run"
    shutil.copytree(finished, run)
    args = [
        f"model.tokenizer={tiny_tokenizer}",
        f"data.prefs={prefs}",
        f"train.run_dir={run}",
        "data.buckets=[32,64,96,128]",
        "data.max_prompt_len=40",
        "data.max_len=64",
        "train.mesh_devices=1",
        *FOUR,
        "train.steps=5",
    ]
    assert main(["train", "--config", str(TINY_CPU), *args]) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if not line.startswith("jaxalign: warning:")]
    assert len(lines) == 1 and "train.steps: 4 -> 5" in lines[0]  # truncation warnings aside
    allow = ["--allow-change", "train.steps"]
    assert main(["train", "--config", str(TINY_CPU), *allow, *args]) == 0
    assert [r["step"] for r in rows(run) if "train/loss" in r] == [1, 2, 3, 4, 5]
    # The summary is a table of base vs tuned held-out metrics, not a raw dict.
    out, err = capsys.readouterr()
    assert err.count("resuming with train.steps changed (allowed by --allow-change)") == 1, err
    assert "trained 5 steps" in out and "{" not in out
    table = {line.split()[0]: line for line in out.splitlines()[1:] if line.strip()}
    assert "base " in table["rewards/accuracies"] and "tuned " in table["rewards/accuracies"]


# Keys and sections added after the first runs were saved (an old run's config lacks them).
NEWER = ("lora", "model.scan_layers", "model.remat", "model.attention", "train.algorithm")


def as_old_version(run: Path) -> None:
    """Rewrite a run's saved configs as a version without the `NEWER` keys wrote them."""

    def strip(config: dict) -> dict:
        for key in NEWER:
            section, _, name = key.rpartition(".")
            (config[section] if section else config).pop(name)
        return config

    for path in (run / "checkpoints").glob("*/config/metadata"):
        path.write_text(json.dumps(strip(json.loads(path.read_text()))))
    text = (run / "config.yaml").read_text().splitlines(keepends=True)
    (run / "config.yaml").write_text(text[0] + dump(strip(yaml.safe_load("".join(text[1:])))))


def test_resume_of_a_run_saved_before_newer_keys(finished, tiny_tokenizer, prefs, tmp_path):
    from jaxalign.config import DPORun, project, to_dict
    from jaxalign.train.run_dir import run_id

    run = tmp_path / "old"
    shutil.copytree(finished, run)
    shutil.rmtree(run / "checkpoints" / "4")  # stopped after step 2's checkpoint
    as_old_version(run)
    assert "lora" not in (run / "config.yaml").read_text()
    # mark the rows of steps 1-2: a resume keeps them, a restart would write them again
    marked = [{**r, "marker": 1} if r["step"] <= 2 else r for r in rows(run)]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in marked))
    before = snapshot(run)
    for change in ("lora.rank=4", "model.remat=full"):
        with pytest.raises(ConfigError, match=change.split("=")[0].replace(".", r"\.")) as err:
            train(tiny_config(tiny_tokenizer, prefs, run, *FOUR, change), progress=False)
        assert "\n" not in str(err.value) and "cannot resume" in str(err.value)
        assert snapshot(run) == before
    # the same config, newer keys at their defaults: resumed at step 3, exactly
    cfg = tiny_config(tiny_tokenizer, prefs, run, *FOUR)
    train(cfg, progress=False)
    got = [r for r in rows(run) if "train/loss" in r]
    assert [(r["step"], r.get("marker")) for r in got] == [(1, 1), (2, 1), (3, None), (4, None)]
    assert [r["train/loss"] for r in got] == [
        r["train/loss"] for r in rows(finished) if "train/loss" in r
    ]
    # ... under the run id it had: keys at their defaults do not enter the id
    stripped = to_dict(project(cfg, DPORun))
    for key in NEWER:
        section, _, name = key.rpartition(".")
        (stripped[section] if section else stripped).pop(name)
    assert run_id(stripped) == run_id(project(cfg, DPORun))
    assert (run / "config.yaml").read_text().startswith(f"# run id {run_id(stripped)}\n")
    changed = project(load_config(None, ["lora.rank=4"]), DPORun)
    assert run_id(changed) != run_id(project(load_config(None), DPORun))

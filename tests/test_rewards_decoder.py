"""Decoder-kind rating models on the tiny CPU backbone: learning, reproducibility, jit, errors."""

from __future__ import annotations

import json

import jax
import numpy as np
import pandas as pd
import pytest
from conftest import TINY_CPU

from jaxalign import rewards
from jaxalign.cli import main

OVERRIDES = [
    "reward.decoder.steps=30",
    "reward.decoder.learning_rate=0.003",
    "reward.decoder.max_len=64",
]


def _train(survey_dir, tokenizer, out, *extra) -> int:
    """`reward train --kind decoder` on the tiny backbone and test tokenizer (options first)."""
    options = [
        x
        for i, x in enumerate(extra)
        if x.startswith("--") or (i and extra[i - 1].startswith("--"))
    ]
    overrides = [x for x in extra if x not in options]
    args = ["reward", "train", "--ratings", str(survey_dir / "ratings.parquet"), "--out", str(out)]
    args += ["--kind", "decoder", "--config", str(TINY_CPU), *options]
    return main([*args, *OVERRIDES, f"model.tokenizer={tokenizer}", *overrides])


@pytest.fixture(scope="module")
def bt_model(survey_dir, tiny_tokenizer, tmp_path_factory):
    """Bradley-Terry toxicity head for all raters, with its held-out evaluation."""
    out = tmp_path_factory.mktemp("decoder") / "bt"
    assert _train(survey_dir, tiny_tokenizer, out, "--dimensions", "toxicity") == 0
    return out


@pytest.fixture(scope="module")
def texts(survey_dir):
    """Twelve (prompt, response) pairs of the bank, as raters saw them."""
    frame = pd.read_parquet(survey_dir / "ratings.parquet", columns=["prompt", "response"])
    bank = frame.drop_duplicates("response").head(12)
    return bank["prompt"].tolist(), bank["response"].tolist()


@pytest.mark.slow
def test_learns_held_out_pairs_and_reports_trl_metrics(bt_model):
    report = json.loads((bt_model / "report.json").read_text())
    head = report["heads"]["toxicity[all]"]
    ridge_fields = {"dimension", "group", "spearman", "spearman_by_direction", "ceiling", "valid"}
    assert ridge_fields | {"raters", "ratings", "responses", "questions"} <= set(head)
    # held out: other raters (half 1) on other questions (fold 0); chance is 0.5
    assert head["pairs"] >= 50 and head["accuracy"] > 0.65 and head["spearman"] > 0.5
    trl = {"accuracy", "margin", "min_reward", "mean_reward", "max_reward"}
    assert trl <= set(report["eval"]) and trl | {"loss", "step"} <= set(report["train"][-1])
    assert report["kind"] == "decoder" and report["loss"] == "bradley_terry"


@pytest.mark.slow
def test_same_seed_same_scores_and_batch_equals_one_at_a_time(
    bt_model, survey_dir, tiny_tokenizer, tmp_path, texts
):
    # without the held-out model: the model written does not depend on it
    again = tmp_path / "again"
    assert _train(survey_dir, tiny_tokenizer, again, "--dimensions", "toxicity",
                  "reward.decoder.evaluate=false") == 0  # fmt: skip
    first, second = rewards.load(bt_model), rewards.load(again)
    a, b = first.score(*texts), second.score(*texts)
    assert np.array_equal(a["toxicity[all]"], b["toxicity[all]"])
    assert ((a["toxicity[all]"] >= 1) & (a["toxicity[all]"] <= 5)).all()
    for i in range(len(texts[0])):
        one = first.score([texts[0][i]], [texts[1][i]])["toxicity[all]"]
        assert one[0] == a["toxicity[all]"][i]  # bitwise


@pytest.mark.slow
def test_score_fn_is_jittable_with_traced_params(bt_model, texts):
    model = rewards.load(bt_model)
    tokens, mask = model.encode(*texts)

    traces = []

    @jax.jit
    def rollout_reward(params, tokens, mask):
        traces.append(1)  # runs only while tracing
        return model.score_fn(params, tokens, mask)[:, 0] * 2.0

    out = np.asarray(rollout_reward(model.params, tokens, mask))
    np.testing.assert_allclose(out / 2.0, model.score(*texts)["toxicity[all]"], atol=1e-5)
    shifted = jax.tree.map(lambda x: x, model.params)
    shifted["calib"] = {**shifted["calib"], "shift": shifted["calib"]["shift"] + 0.25}
    # new parameter values, no retrace: the scores move by the shift (inside the clip)
    moved = np.asarray(rollout_reward(shifted, tokens, mask)) / 2.0
    inside = (out / 2.0 > 1.0) & (out / 2.0 < 4.75)
    np.testing.assert_allclose(moved[inside], out[inside] / 2.0 + 0.25, atol=1e-5)
    assert len(traces) == 1
    # on a training mesh: rows split over the data axis, parameters replicated
    from jax.sharding import NamedSharding, PartitionSpec

    from jaxalign.sharding import make_mesh

    devices = jax.devices()[:2]
    mesh = make_mesh(data=len(devices), fsdp=1, devices=devices)
    rows = NamedSharding(mesh, PartitionSpec("data"))
    placed = jax.device_put(model.params, NamedSharding(mesh, PartitionSpec()))
    sharded = rollout_reward(placed, jax.device_put(tokens, rows), jax.device_put(mask, rows))
    np.testing.assert_allclose(np.asarray(sharded), out, atol=1e-5)


@pytest.mark.slow
def test_ordinal_loss_two_groups_cli_score_and_eval(survey_dir, tiny_tokenizer, tmp_path, capsys):
    out = tmp_path / "ord"
    extra = ["--dimensions", "toxicity", "--group", "all", "--group", "gender=male"]
    extra += ["reward.decoder.loss=ordinal", "reward.decoder.batch_size=8"]
    assert _train(survey_dir, tiny_tokenizer, out, *extra) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["config"]["decoder"]["loss"] == "ordinal"
    assert meta["heads"] == ["toxicity[all]", "toxicity[gender=male]"]
    report = json.loads((out / "report.json").read_text())
    assert report["heads"]["toxicity[all]"]["accuracy"] > 0.6
    assert main(["reward", "eval", "--model", str(out)]) == 0  # retrains the held-out model
    assert json.loads((out / "report.json").read_text()) == report
    records = tmp_path / "in.jsonl"
    records.write_text(
        json.dumps({"prompt": "Can men be nurses?", "response": "Seriously? Stop whining."}) + "\n"
    )
    scored = tmp_path / "s.jsonl"
    args = ["reward", "score", "--model", str(out), "--input", str(records), "--out", str(scored)]
    assert main(args) == 0
    rec = json.loads(scored.read_text())
    assert set(rec["scores"]) == set(meta["heads"]) and rec["out_of_distribution"] in (True, False)
    assert all(1.0 <= v <= 5.0 for v in rec["scores"].values())
    capsys.readouterr()


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--group", "gender=robot"], "'robot' is not a value of gender"),
        (["--dimensions", "rudeness"], "'rudeness' is not allowed"),
        (["--group", "age_band=60+"], "fewer than reward.min_raters=200"),
        (["reward.decoder.loss=pairwise"], "reward.decoder.loss"),
    ],
)
def test_train_bad_inputs_exit_1_and_write_nothing(
    survey_dir, tiny_tokenizer, tmp_path, capsys, extra, needle
):
    out = tmp_path / "m"
    assert _train(survey_dir, tiny_tokenizer, out, *extra, "reward.min_raters=200") == 1
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err and not out.exists()


@pytest.mark.slow
def test_score_bad_inputs_exit_1_and_write_nothing(bt_model, tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "response": 3}) + "\n")
    out = tmp_path / "out.jsonl"
    for extra, needle in (
        (["--input", str(bad)], "row 1: 'response' must be a string"),
        (["--input", str(good), "--heads", "toxicity[gender=male]"], "no head"),
    ):
        assert main(["reward", "score", "--model", str(bt_model), "--out", str(out), *extra]) == 1
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err and not out.exists()
    (bt_model / "head.safetensors").rename(tmp_path / "head")
    try:
        args = ["reward", "score", "--model", str(bt_model), "--input", str(good)]
        assert main([*args, "--out", str(out)]) == 1
        assert "missing head.safetensors" in capsys.readouterr().err and not out.exists()
    finally:
        (tmp_path / "head").rename(bt_model / "head.safetensors")


def test_ridge_path_does_not_import_jax():
    import subprocess
    import sys

    code = (
        "import sys, jaxalign.rewards.run, jaxalign.rewards.model, jaxalign.rewards.cli; "
        "assert 'jax' not in sys.modules and 'flax' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

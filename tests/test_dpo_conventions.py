"""DPO conventions through the trainer's loss (`jaxalign.train.dpo._loss`, what the jitted step
differentiates): smoothing with soft labels, IPO/SimPO length averaging, the RPO NLL, ties,
held-out rewards and TRL's logits/* metrics. Expected values are computed here from the
model's own log-probs and logits, independently of `jaxalign.losses`."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config, write_learnable_prefs
from flax import nnx
from test_data import SMALL, random_pairs

from jaxalign.config import DataConfig, DPOConfig
from jaxalign.data.preferences import collate
from jaxalign.models import ModelConfig
from jaxalign.models.loading import build, random_tensors
from jaxalign.train.dpo import _loss, pair_logps
from jaxalign.train.loop import train

BUCKETS = (16, 32, 48, 64)
INDICES = [0, 1, 2, 3, -1, 4, 5, -1]  # two filler slots
LOSS = jax.jit(_loss, static_argnums=(1, 4, 5))  # as the step calls it (one compile per config)
LOGPS = jax.jit(lambda p, g, b: pair_logps(nnx.merge(g, p), b, chunk=8), static_argnums=1)
LOGITS = jax.jit(lambda p, g, tokens: nnx.merge(g, p)(tokens), static_argnums=1)


def logsig(x):
    """log sigmoid in float64."""
    return -np.logaddexp(0.0, -np.asarray(x, np.float64))


@pytest.fixture(scope="module")
def setup():
    """A tiny random model, its parameters, and a reference's log-probs per batch slot."""
    cfg = ModelConfig(**SMALL)
    model = build(cfg, random_tensors(cfg, seed=3, scale=0.3))
    graphdef, params = nnx.split(model)
    ref = np.random.default_rng(0).uniform(-30, -5, (len(INDICES), 2)).astype(np.float32)
    return model, graphdef, params, ref


def make_batch(soft: float, swap: bool = False):
    """Six random pairs with soft label `soft` (chosen and rejected swapped if `swap`)."""
    data = random_pairs(6)
    data.soft_label = [soft] * len(data.soft_label)
    if swap:
        data.chosen, data.rejected = data.rejected, data.chosen
    return jax.tree.map(jnp.asarray, collate(data, INDICES, BUCKETS, 0, None))


def run(setup, batch, dpo: DPOConfig, data: DataConfig | None = None, swap: bool = False):
    """The step's loss and metrics for `batch` (reference swapped with the pair if `swap`)."""
    _, graphdef, params, ref = setup
    data = data or DataConfig()
    ref = ref[:, ::-1] if swap else ref
    ref_logps = None if dpo.reference == "none" else jnp.asarray(np.ascontiguousarray(ref))
    loss, metrics = LOSS(params, graphdef, batch, ref_logps, dpo, data)
    return float(loss), {k: float(v) for k, v in metrics.items()}


def pieces(setup, batch):
    """Policy sums and lengths [B, 2], reference [B, 2], valid and weights [B] as float64."""
    _, graphdef, params, ref = setup
    logps, lengths = LOGPS(params, graphdef, batch)
    valid = np.asarray(batch["valid"], np.float64)
    return (
        np.asarray(logps, np.float64),
        np.asarray(lengths, np.float64),
        ref.astype(np.float64),
        valid,
        np.asarray(batch["weights"], np.float64) * valid,
    )


def test_label_smoothing_applies_to_hard_records_by_default(setup):
    """Item 1: soft_label 1.0 on every record (default data config) keeps cDPO/robust smoothing."""
    batch = make_batch(1.0)
    lp, _, ref, valid, w = pieces(setup, batch)
    h = (lp[:, 0] - ref[:, 0]) - (lp[:, 1] - ref[:, 1])
    beta, e = 0.5, 0.2
    cdpo = -(1 - e) * logsig(beta * h) - e * logsig(-beta * h)
    robust = (-(1 - e) * logsig(beta * h) + e * logsig(-beta * h)) / (1 - 2 * e)
    for loss_type, per_pair in (("sigmoid", cdpo), ("robust", robust)):
        loss, _ = run(setup, batch, DPOConfig(loss_type=loss_type, beta=beta, label_smoothing=e))
        assert loss == pytest.approx((w * per_pair).sum() / valid.sum(), rel=1e-5), loss_type


def test_ipo_gets_length_averaged_log_ratios(setup):
    """Item 2: IPO's margin divides each log-ratio by its response length (TRL 1.16)."""
    batch = make_batch(1.0)
    lp, n, ref, valid, w = pieces(setup, batch)
    n = np.maximum(n, 1)
    h = (lp[:, 0] - ref[:, 0]) / n[:, 0] - (lp[:, 1] - ref[:, 1]) / n[:, 1]
    loss, _ = run(setup, batch, DPOConfig(loss_type="ipo", beta=0.1))
    assert loss == pytest.approx((w * (h - 5.0) ** 2).sum() / valid.sum(), rel=1e-5)


def test_rpo_nll_is_one_token_mean_over_the_batch(setup):
    """Item 3: the NLL term is -sum(chosen log-probs) / sum(chosen tokens), not a mean of means."""
    batch = make_batch(1.0)
    lp, n, ref, valid, _ = pieces(setup, batch)
    h = (lp[:, 0] - ref[:, 0]) - (lp[:, 1] - ref[:, 1])
    dpo = -logsig(0.1 * h)
    nll = -(valid * lp[:, 0]).sum() / (valid * n[:, 0]).sum()
    loss, metrics = run(setup, batch, DPOConfig(rpo_alpha=0.5), DataConfig(use_weights=False))
    assert loss == pytest.approx((valid * dpo).sum() / valid.sum() + 0.5 * nll, rel=1e-5)
    assert metrics["nll_loss"] == pytest.approx(nll, rel=1e-5)


def test_simpo_rewards_and_smoothing(setup):
    """Item 4: SimPO rewards are beta x mean log-prob (no reference); smoothing as TRL's CPO."""
    batch = make_batch(1.0)
    lp, n, _, valid, w = pieces(setup, batch)
    avg = lp / np.maximum(n, 1)
    beta, gamma, e = 2.0, 0.3, 0.1
    z = beta * (avg[:, 0] - avg[:, 1]) - gamma
    per_pair = -(1 - e) * logsig(z) - e * logsig(-z)
    dpo = DPOConfig(loss_type="simpo", beta=beta, simpo_gamma=gamma, label_smoothing=e)
    loss, metrics = run(setup, batch, dpo)  # a reference is passed: SimPO must ignore it
    assert loss == pytest.approx((w * per_pair).sum() / valid.sum(), rel=1e-5)
    mean = lambda x: (valid * x).sum() / valid.sum()  # noqa: E731
    assert metrics["rewards/chosen"] == pytest.approx(beta * mean(avg[:, 0]), rel=1e-5)
    assert metrics["rewards/rejected"] == pytest.approx(beta * mean(avg[:, 1]), rel=1e-5)
    assert metrics["logps/chosen"] == pytest.approx(mean(avg[:, 0]), rel=1e-5)


@pytest.mark.parametrize("use_soft_labels", [True, False])
@pytest.mark.parametrize("loss_type", ["sigmoid", "robust", "ipo", "hinge", "simpo"])
def test_a_tie_never_trains_as_a_win(setup, loss_type, use_soft_labels):
    """Item 5: soft label 0.5 gives a finite loss that is the same with chosen/rejected swapped."""
    dpo = DPOConfig(loss_type=loss_type, beta=0.5, label_smoothing=0.1 * (loss_type != "ipo"))
    data = DataConfig(use_soft_labels=use_soft_labels)
    a, _ = run(setup, make_batch(0.5), dpo, data)
    b, _ = run(setup, make_batch(0.5, swap=True), dpo, data, swap=True)
    assert math.isfinite(a) and a == pytest.approx(b, rel=1e-5)
    hard, _ = run(setup, make_batch(1.0), dpo, data)
    assert hard != pytest.approx(a, rel=1e-3)  # the label is used


def test_logits_metrics_are_token_means_of_the_mean_logit(setup):
    """Item 7: logits/chosen (rejected): mean over the batch's response tokens of mean_v logit."""
    _, graphdef, params, _ = setup
    data = random_pairs(6)
    batch = jax.tree.map(jnp.asarray, collate(data, INDICES, BUCKETS, 0, None))
    _, metrics = run(setup, batch, DPOConfig())
    for side, seqs in (("chosen", data.chosen), ("rejected", data.rejected)):
        width = max(len(s) for s in seqs)
        rows = jnp.asarray(np.stack([np.pad(s, (0, width - len(s))) for s in seqs]))
        logits = np.asarray(
            LOGITS(params, graphdef, rows), np.float64
        )  # right padding: causal rows unaffected
        total, count = 0.0, 0
        for i, seq in enumerate(seqs):
            p = data.prompt_len[i]
            total += logits[i, p - 1 : len(seq) - 1].mean(-1).sum()  # positions predicting replies
            count += len(seq) - p
        assert metrics[f"logits/{side}"] == pytest.approx(total / count, rel=1e-4, abs=1e-5)


@pytest.fixture(scope="module")
def prefs(tmp_path_factory):
    return write_learnable_prefs(tmp_path_factory.mktemp("prefs") / "learn.jsonl")


ONE_STEP = ("train.steps=1", "train.eval_every=1", "train.checkpoint_every=1")


@pytest.mark.slow
def test_held_out_rewards_use_the_in_step_reference(tiny_tokenizer, prefs, tmp_path):
    """Item 6: with dpo.reference=model the untrained policy scores 0.5, margin 0."""
    cfg = tiny_config(tiny_tokenizer, prefs, tmp_path, "dpo.reference=model", *ONE_STEP)
    results = train(cfg, progress=False)
    assert results["base/rewards/accuracies"] == 0.5 and results["base/rewards/margins"] == 0.0


@pytest.mark.slow
def test_simpo_held_out_rewards_have_no_reference(tiny_tokenizer, prefs, tmp_path):
    """Item 4: SimPO's held-out rewards are beta x mean log-prob, no DPO reference subtracted."""
    cfg = tiny_config(tiny_tokenizer, prefs, tmp_path, "dpo.loss_type=simpo", *ONE_STEP)
    results = train(cfg, progress=False)
    assert results["base/rewards/accuracies"] == results["base/logp_accuracy_normalized"]
    assert results["base/rewards/margins"] != 0.0
    assert {"train/logits/chosen", "train/logits/rejected"} <= set(results)
    assert not list(prefs.parent.glob("*.ref-*.npy"))  # no reference pass for SimPO


def test_use_soft_labels_false_keeps_ties_and_rounds_the_rest():
    """`data.use_soft_labels: false` rounds p to 0/1 but leaves a tie at 0.5."""
    from jaxalign.train.dpo import labels_for_loss

    p = jnp.array([1.0, 0.75, 0.5, 0.3])
    assert labels_for_loss(p, False).tolist() == [1.0, 1.0, 0.5, 0.0]
    assert labels_for_loss(p, True).tolist() == p.tolist()

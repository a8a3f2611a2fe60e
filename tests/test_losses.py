"""DPO-family losses: TRL goldens (tests/golden/dpo_trl.json) and closed forms for the rest."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxalign.losses import dpo_loss

GOLDEN = json.loads((Path(__file__).parent / "golden" / "dpo_trl.json").read_text())
INPUTS = GOLDEN["inputs"]


def _arrays():
    keys = (
        "policy_chosen_logps",
        "policy_rejected_logps",
        "ref_chosen_logps",
        "ref_rejected_logps",
    )
    pc, pr, rc, rr = (jnp.asarray(INPUTS[k], jnp.float64) for k in keys)
    lc = jnp.asarray(INPUTS["chosen_lengths"], jnp.float64)
    lr = jnp.asarray(INPUTS["rejected_lengths"], jnp.float64)
    return pc, pr, rc, rr, lc, lr


def _ours(name: str, variant: dict):
    pc, pr, rc, rr, lc, lr = _arrays()
    beta, eps = variant["beta"], variant["label_smoothing"]
    if name in ("sigmoid", "sigmoid_beta05"):
        return dpo_loss(pc, pr, rc, rr, beta=beta)
    if name == "robust":
        return dpo_loss(pc, pr, rc, rr, loss_type="robust", beta=beta, label_smoothing=eps)
    if name == "hinge":
        return dpo_loss(pc, pr, rc, rr, loss_type="hinge", beta=beta)
    if name == "ipo":  # TRL length-normalises IPO's log-ratios; pass length-averaged log-probs
        return dpo_loss(pc / lc, pr / lr, rc / lc, rr / lr, loss_type="ipo", beta=beta)
    if name == "sigmoid_norm":
        return dpo_loss(pc / lc, pr / lr, rc / lc, rr / lr, beta=beta)
    if name == "rpo":  # TRL: sigmoid + weight * SFT (mean NLL per chosen token)
        return dpo_loss(
            pc, pr, rc, rr, beta=beta, chosen_nll=-pc / lc, rpo_alpha=variant["loss_weights"][1]
        )
    raise AssertionError(name)


@pytest.mark.parametrize("name", list(GOLDEN["variants"]))
def test_matches_trl_goldens(name):
    variant = GOLDEN["variants"][name]
    with jax.enable_x64(True):
        losses, metrics = _ours(name, variant)
        assert losses.dtype == jnp.float64
        assert np.abs(np.asarray(losses) - np.asarray(variant["losses"])).max() <= 1e-6
        if name in ("sigmoid", "sigmoid_beta05", "robust", "hinge", "rpo"):
            for key in (
                "rewards/chosen",
                "rewards/rejected",
                "rewards/margins",
                "rewards/accuracies",
                "logps/chosen",
                "logps/rejected",
            ):
                expected = np.mean([m[key] for m in variant["metrics"]])
                assert abs(float(metrics[key]) - expected) <= 1e-6, key


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_label_smoothing_and_soft_labels_closed_form():
    pc, pr, rc, rr = (jnp.array([v]) for v in (-10.0, -14.0, -12.0, -13.0))
    h = (-10 + 14) - (-12 + 13)  # 3
    beta, eps = 0.5, 0.2
    expected = -(1 - eps) * math.log(_sig(beta * h)) - eps * math.log(_sig(-beta * h))
    smoothed, _ = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=eps)
    soft, _ = dpo_loss(pc, pr, rc, rr, beta=beta, soft_labels=jnp.array([1 - eps]))
    assert float(smoothed[0]) == pytest.approx(expected, abs=1e-6)
    assert float(soft[0]) == pytest.approx(expected, abs=1e-6)
    half, _ = dpo_loss(pc, pr, rc, rr, beta=beta, soft_labels=jnp.array([0.5]))
    grad = jax.grad(
        lambda x: dpo_loss(x, pr, rc, rr, beta=beta, soft_labels=jnp.array([0.5]))[0].sum()
    )(pc)
    assert float(half[0]) == pytest.approx(
        -0.5 * math.log(_sig(1.5)) - 0.5 * math.log(_sig(-1.5)), abs=1e-6
    )
    assert float(grad[0]) == pytest.approx(
        beta * (_sig(beta * h) - 0.5), abs=1e-6
    )  # pulls the margin to 0


def test_weights_reference_free_and_simpo():
    pc, pr = jnp.array([-10.0, -20.0]), jnp.array([-12.0, -18.0])
    rc, rr = jnp.array([-11.0, -19.0]), jnp.array([-11.0, -19.0])
    base, _ = dpo_loss(pc, pr, rc, rr, beta=0.1)
    weighted, _ = dpo_loss(pc, pr, rc, rr, beta=0.1, weights=jnp.array([0.25, 2.0]))
    assert np.allclose(np.asarray(weighted), np.asarray(base) * [0.25, 2.0], atol=1e-7)
    free, metrics = dpo_loss(pc, pr, jnp.zeros(2), jnp.zeros(2), beta=0.1, reference_free=True)
    assert np.allclose(np.asarray(free), [-math.log(_sig(0.2)), -math.log(_sig(-0.2))], atol=1e-6)
    assert float(metrics["rewards/chosen"]) == pytest.approx(0.1 * -15.0)
    lc, lr = jnp.array([5.0, 10.0]), jnp.array([4.0, 6.0])
    simpo, _ = dpo_loss(
        pc,
        pr,
        rc,
        rr,
        loss_type="simpo",
        beta=2.0,
        simpo_gamma=0.5,
        chosen_lengths=lc,
        rejected_lengths=lr,
    )
    expected = [
        -math.log(_sig(2.0 * (-10 / 5 + 12 / 4) - 0.5)),
        -math.log(_sig(2.0 * (-20 / 10 + 18 / 6) - 0.5)),
    ]
    assert np.allclose(np.asarray(simpo), expected, atol=1e-6)


def test_metrics_and_errors():
    pc, pr = jnp.array([-1.0, -5.0]), jnp.array([-3.0, -2.0])
    _, m = dpo_loss(pc, pr, jnp.array([-2.0, -2.0]), jnp.array([-2.0, -2.0]), beta=1.0)
    assert float(m["rewards/accuracies"]) == 0.5
    assert float(m["rewards/margins"]) == pytest.approx(((1 - -1) + (-3 - 0)) / 2)
    with pytest.raises(ValueError, match="loss_type='nope'"):
        dpo_loss(pc, pr, pc, pr, loss_type="nope")
    with pytest.raises(ValueError, match="simpo"):
        dpo_loss(pc, pr, pc, pr, loss_type="simpo")
    with pytest.raises(ValueError, match="chosen_nll"):
        dpo_loss(pc, pr, pc, pr, rpo_alpha=0.5)


def test_losses_package_imports_no_model_code():
    import subprocess
    import sys

    code = "import sys, jaxalign.losses; bad=[m for m in sys.modules if m.startswith(('flax','jaxalign.models','jaxalign.survey'))]; assert not bad, bad"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

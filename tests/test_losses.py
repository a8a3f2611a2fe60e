"""DPO-family losses: TRL goldens (tests/golden/dpo_trl.json) through the step's loss function,
and closed forms for the rest."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxalign.config import DataConfig, DPOConfig
from jaxalign.losses import dpo_loss, pair_losses
from jaxalign.train.dpo import batch_loss

GOLDEN = json.loads((Path(__file__).parent / "golden" / "dpo_trl.json").read_text())
BATCH = GOLDEN["batch"]


def _configs(variant: dict) -> tuple[DPOConfig, DataConfig]:
    """Our config for a golden variant (TRL's settings plus the composed extras)."""
    trl, extras = variant["trl"], variant["extras"]
    if variant["trainer"] == "CPOTrainer":
        dpo = DPOConfig(
            loss_type="simpo",
            beta=trl["beta"],
            simpo_gamma=trl.get("simpo_gamma", 0.5),
            label_smoothing=trl.get("label_smoothing", 0.0),
            rpo_alpha=trl.get("cpo_alpha", 0.0),
        )
    else:
        types, weights = trl["loss_type"], trl.get("loss_weights", [1.0])
        dpo = DPOConfig(
            loss_type=types[0],
            beta=trl["beta"],
            label_smoothing=trl.get("label_smoothing", extras.get("smoothing", 0.0)),
            rpo_alpha=weights[types.index("sft")] if "sft" in types else 0.0,
            reference=extras.get("ref", "cache"),
        )
    return dpo, DataConfig(use_soft_labels=True, use_weights=True)


def _golden_inputs(variant: dict, filler: int = 2):
    """Stats and batch as the step sees them: the golden pairs plus `filler` empty slots."""
    extras = variant["extras"]
    n = len(BATCH["weights"])

    def pad(x, value=0.0):
        x = jnp.asarray(x, jnp.float64)
        return jnp.concatenate([x, jnp.full((filler, *x.shape[1:]), value, jnp.float64)])

    stats = {k: pad(BATCH["policy"][k]) for k in ("logps", "lengths", "logits")}
    batch = {
        "valid": pad(np.ones(n)),
        "weights": pad(BATCH["weights"] if extras.get("weights") else np.ones(n)),
        "soft_labels": pad(BATCH["soft_labels"] if extras.get("soft") else np.ones(n), 1.0),
    }
    ref = None if extras.get("ref") == "none" else pad(BATCH["ref_logps"])
    return stats, batch, ref


@pytest.mark.parametrize("name", list(GOLDEN["variants"]))
def test_trl_goldens_through_the_step_loss(name):
    """The function the jitted step calls reproduces TRL's batch loss and metrics (x64, 1e-6)."""
    variant = GOLDEN["variants"][name]
    dpo, data = _configs(variant)
    with jax.enable_x64(True):
        stats, batch, ref = _golden_inputs(variant)
        loss, metrics = jax.jit(batch_loss, static_argnums=(3, 4))(stats, batch, ref, dpo, data)
        assert loss.dtype == jnp.float64
        assert float(loss) == pytest.approx(variant["loss"], abs=1e-6, rel=1e-9)
        expected = variant["metrics"]
        keys = [k for k in expected if k.startswith(("rewards/", "logps/"))]
        if variant["trainer"] == "DPOTrainer":
            keys += ["logits/chosen", "logits/rejected"]  # CPO averages every position instead
        if dpo.rpo_alpha and variant["trainer"] == "CPOTrainer":
            keys.append("nll_loss")
        for key in keys:
            assert float(metrics[key]) == pytest.approx(expected[key], abs=1e-6, rel=1e-9), key


def test_goldens_record_trl_and_cover_the_batch_shape():
    assert GOLDEN["trl_version"].startswith("1.16")
    lengths = np.asarray(BATCH["policy"]["lengths"])
    assert len(lengths) >= 4 and len(set(lengths.ravel())) > 2  # unequal lengths
    assert 0.5 in BATCH["soft_labels"] and len(set(BATCH["weights"])) > 1
    names = set(GOLDEN["variants"])
    assert {"sigmoid", "robust", "ipo", "hinge", "simpo", "rpo", "simpo_nll"} <= names


def _sig(x):
    return 1 / (1 + math.exp(-x))


def test_label_smoothing_and_soft_labels_closed_form():
    pc, pr, rc, rr = (jnp.array([v]) for v in (-10.0, -14.0, -12.0, -13.0))
    h = (-10 + 14) - (-12 + 13)  # 3
    beta, eps = 0.5, 0.2
    expected = -(1 - eps) * math.log(_sig(beta * h)) - eps * math.log(_sig(-beta * h))
    smoothed, _ = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=eps)
    soft, _ = dpo_loss(pc, pr, rc, rr, beta=beta, soft_labels=jnp.array([1 - eps]))
    assert float(smoothed) == pytest.approx(expected, abs=1e-6)
    assert float(soft) == pytest.approx(expected, abs=1e-6)
    # both together: effective target q = e + p (1 - 2e)
    both, _ = dpo_loss(pc, pr, rc, rr, beta=beta, label_smoothing=0.1, soft_labels=jnp.array([0.8]))
    q = 0.1 + 0.8 * (1 - 0.2)
    assert float(both) == pytest.approx(
        -q * math.log(_sig(beta * h)) - (1 - q) * math.log(_sig(-beta * h)), abs=1e-6
    )
    grad = jax.grad(lambda x: dpo_loss(x, pr, rc, rr, beta=beta, soft_labels=jnp.array([0.5]))[0])(
        pc
    )
    assert float(grad[0]) == pytest.approx(beta * (_sig(beta * h) - 0.5), abs=1e-6)  # margin -> 0


@pytest.mark.parametrize("loss_type", ["sigmoid", "robust", "ipo", "hinge", "simpo"])
def test_a_tie_is_symmetric_for_every_loss_type(loss_type):
    """p = 0.5: swapping chosen and rejected changes nothing, and the loss is finite."""
    h = jnp.array([-2.0, -0.3, 0.0, 0.7, 3.0])
    kw = dict(loss_type=loss_type, beta=0.5, label_smoothing=0.1, simpo_gamma=0.5)
    tie = jnp.full(5, 0.5)
    a, b = pair_losses(h, tie, **kw), pair_losses(-h, tie, **kw)
    assert np.all(np.isfinite(np.asarray(a)))
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
    grad0 = jax.grad(lambda x: pair_losses(x, tie[:1], **kw).sum())(jnp.zeros(1))
    assert abs(float(grad0[0])) < 1e-6  # no push towards either side at h = 0


def test_weights_reference_free_and_simpo():
    pc, pr = jnp.array([-10.0, -20.0]), jnp.array([-12.0, -18.0])
    rc, rr = jnp.array([-11.0, -19.0]), jnp.array([-11.0, -19.0])
    base = pair_losses(pc - rc - (pr - rr), loss_type="sigmoid", beta=0.1)
    weighted, _ = dpo_loss(pc, pr, rc, rr, beta=0.1, weights=jnp.array([0.25, 2.0]))
    assert float(weighted) == pytest.approx(float((base * jnp.array([0.25, 2.0])).mean()))
    free, metrics = dpo_loss(pc, pr, jnp.zeros(2), jnp.zeros(2), beta=0.1, reference_free=True)
    assert float(free) == pytest.approx((-math.log(_sig(0.2)) - math.log(_sig(-0.2))) / 2, abs=1e-6)
    assert float(metrics["rewards/chosen"]) == pytest.approx(0.1 * -15.0)
    lc, lr = jnp.array([5.0, 10.0]), jnp.array([4.0, 6.0])
    simpo, m = dpo_loss(
        pc, pr, rc, rr, loss_type="simpo", beta=2.0, chosen_lengths=lc, rejected_lengths=lr
    )
    expected = [
        -math.log(_sig(2.0 * (-10 / 5 + 12 / 4) - 0.5)),
        -math.log(_sig(2.0 * (-20 / 10 + 18 / 6) - 0.5)),
    ]
    assert float(simpo) == pytest.approx(np.mean(expected), abs=1e-6)
    assert float(m["rewards/chosen"]) == pytest.approx(2.0 * (-2.0 + -2.0) / 2)


def test_metrics_mask_filler_slots_and_errors():
    pc, pr = jnp.array([-1.0, -5.0, 0.0]), jnp.array([-3.0, -2.0, 0.0])
    ref = jnp.array([-2.0, -2.0, 0.0])
    _, m = dpo_loss(pc, pr, ref, ref, beta=1.0, valid=jnp.array([1.0, 1.0, 0.0]))
    assert float(m["rewards/accuracies"]) == 0.5
    assert float(m["rewards/margins"]) == pytest.approx(((1 - -1) + (-3 - 0)) / 2)
    with pytest.raises(ValueError, match="loss_type='nope'"):
        dpo_loss(pc, pr, pc, pr, loss_type="nope")
    with pytest.raises(ValueError, match="simpo"):
        dpo_loss(pc, pr, pc, pr, loss_type="simpo")
    with pytest.raises(ValueError, match="chosen_lengths"):
        dpo_loss(pc, pr, pc, pr, rpo_alpha=0.5)


def test_losses_package_imports_no_model_code():
    import subprocess
    import sys

    code = "import sys, jaxalign.losses; bad=[m for m in sys.modules if m.startswith(('flax','jaxalign.models','jaxalign.survey'))]; assert not bad, bad"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0

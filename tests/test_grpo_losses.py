"""GRPO losses: TRL 1.16 goldens (tests/golden/grpo_trl.json, no TRL needed here), closed forms
for group_advantages (NaN rows, MaxMin), jit and name checks."""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxalign.errors import ConfigError
from jaxalign.losses import GRPO_LOSSES, check_grpo_names, group_advantages, grpo_loss

GOLDEN = json.loads((Path(__file__).parent / "golden" / "grpo_trl.json").read_text())
BATCH = GOLDEN["batch"]


def _kwargs(v: dict) -> dict:
    """Our keyword arguments for a golden variant's TRL settings."""
    s = v["settings"]
    kw = dict(
        loss_type=v["loss_type"],
        beta=v["beta"],
        importance_sampling_level=v["level"],
        max_completion_len=GOLDEN["max_completion_length"],
        epsilon_high=s.get("epsilon_high"),
        delta=s.get("delta"),
        bias_correction_kl=s.get("use_bias_correction_kl", True),
        sapo_temperatures=(s.get("sapo_temperature_pos", 1.0), 1.05),
        grad_accum=s.get("grad_accum", 1),
        num_items=s.get("num_items"),
    )
    return kw


def _golden_loss(v: dict, jit: bool = False):
    """(loss, grad w.r.t. logps, metrics) of our grpo_loss on the golden batch, in float64
    (eagerly by default: 72 compiles would cost more than the whole file)."""
    b = {k: jnp.asarray(x, jnp.float64) for k, x in BATCH.items()}
    old = b["old"] if v["old"] else None
    ref = b["ref"] if v["beta"] else None
    kw = _kwargs(v)

    def f(lp):
        return grpo_loss(lp, old, ref, b["adv"], b["mask"], entropies=b["entropies"], **kw)

    fn = jax.value_and_grad(f, has_aux=True)
    (loss, metrics), grad = (jax.jit(fn) if jit else fn)(b["logps"])
    return loss, grad, metrics


@pytest.mark.parametrize("name", list(GOLDEN["losses"]))
def test_trl_goldens_loss_grad_and_metrics(name):
    """Loss, gradient and every TRL metric match TRL's `_compute_loss` within 1e-6 (x64)."""
    v = GOLDEN["losses"][name]
    with jax.enable_x64(True):
        loss, grad, metrics = _golden_loss(v)
        assert loss.dtype == jnp.float64
        assert float(loss) == pytest.approx(v["loss"], abs=1e-6, rel=1e-9)
        np.testing.assert_allclose(np.asarray(grad), np.asarray(v["grad"]), atol=1e-6, rtol=1e-9)
        assert set(v["metrics"]) <= set(metrics), set(v["metrics"]) - set(metrics)
        for key, want in v["metrics"].items():
            got = float(metrics[key])
            assert (math.isnan(got) and math.isnan(want)) or got == pytest.approx(want, abs=1e-6)


def test_goldens_cover_every_loss_type_level_beta_and_old():
    """TRL 1.16's eight loss types x levels x beta x old, on a padded batch with a truncated row."""
    assert GOLDEN["trl_version"].startswith("1.16")
    got = {(v["loss_type"], v["level"], v["beta"], v["old"]) for v in GOLDEN["losses"].values()}
    for lt in GRPO_LOSSES:
        for level in ("token", "sequence"):
            assert {(lt, level, b, o) for b in (0.0, 0.04) for o in (True, False)} <= got
    lengths = np.asarray(BATCH["mask"]).sum(1)
    assert 0 in lengths and len(set(lengths)) > 3 and max(lengths) == len(BATCH["mask"][0])
    # the clip paths really are exercised
    assert GOLDEN["losses"]["dapo-token-b0.04-old"]["metrics"]["clip_ratio/region_mean"] > 0


def _nan(rows):
    """JSON null -> NaN."""
    return np.array([[np.nan if x is None else x for x in r] for r in rows], np.float64)


@pytest.mark.parametrize("name", list(GOLDEN["advantages"]))
def test_trl_advantage_goldens(name):
    """group_advantages equals TRL's advantage code for every scale and aggregation."""
    c = GOLDEN["advantages"][name]
    with jax.enable_x64(True):
        adv, m = group_advantages(
            _nan(c["rewards"]),
            jnp.asarray(c["weights"]),
            c["num_generations"],
            scale=c["scale"],
            aggregation=c["aggregation"],
        )
        np.testing.assert_allclose(np.asarray(adv), c["advantages"], atol=1e-6, rtol=1e-9)
        assert c["metrics"].keys() >= {"reward", "rewards/0/mean", "frac_reward_zero_std"}
        for key, want in c["metrics"].items():
            assert float(m[key]) == pytest.approx(want, abs=1e-9), key


def test_group_advantages_closed_form_with_nan_rows():
    """Group z-score with Bessel std and eps; an all-NaN row gets 0 and leaves the baseline."""
    r = jnp.array([[1.0], [3.0], [np.nan], [5.0], [2.0], [2.0]])
    adv, m = group_advantages(r, jnp.array([1.0]), 3)
    s = math.sqrt(2.0)  # group 1: {1, 3}, mean 2, Bessel std sqrt(2)
    g2 = [5.0, 2.0, 2.0]
    mu, sd = np.mean(g2), np.std(g2, ddof=1)
    want = [-1 / (s + 1e-4), 1 / (s + 1e-4), 0.0] + [(x - mu) / (sd + 1e-4) for x in g2]
    np.testing.assert_allclose(np.asarray(adv), want, rtol=1e-5)
    assert float(m["frac_unscorable"]) == pytest.approx(1 / 6)
    none, _ = group_advantages(r, jnp.array([1.0]), 3, scale="none")
    np.testing.assert_allclose(np.asarray(none), [-1, 1, 0, 2, -1, -1], rtol=1e-6)


def test_group_advantages_weighted_nansum_over_heads():
    """A NaN head is skipped by the weighted sum (TRL's nansum), not the whole row."""
    r = jnp.array([[1.0, np.nan], [0.0, 2.0]])
    adv, m = group_advantages(r, jnp.array([2.0, 0.5]), 2, scale="none")
    np.testing.assert_allclose(np.asarray(adv), [0.5, -0.5], rtol=1e-6)  # rewards 2, 1
    assert float(m["reward"]) == pytest.approx(1.5)


def test_min_aggregation_takes_each_rows_worst_weighted_head():
    """MaxMin: r_i = min_k w_k r_ik over scorable heads with w_k != 0, then the group z-score."""
    r = jnp.array([[0.9, 0.2, 5.0], [0.4, 0.6, -9.0], [np.nan, 0.3, 1.0], [0.8, 0.7, 0.0]])
    w = jnp.array([1.0, 1.0, 0.0])  # the third head is off
    adv, m = group_advantages(r, w, 2, aggregation="min", scale="none")
    # worst heads: 0.2, 0.4 | 0.3 (NaN head skipped), 0.7
    np.testing.assert_allclose(np.asarray(adv), [-0.1, 0.1, -0.2, 0.2], rtol=1e-5)
    assert float(m["reward"]) == pytest.approx(np.mean([0.2, 0.4, 0.3, 0.7]))
    scaled, _ = group_advantages(r, jnp.array([2.0, 1.0, 0.0]), 2, aggregation="min", scale="none")
    np.testing.assert_allclose(np.asarray(scaled)[:2], [-0.2, 0.2], rtol=1e-5)  # 0.2 vs 0.6


def test_all_nan_rewards_give_zero_advantages():
    """Nothing scorable: every advantage is 0 (not NaN), for every aggregation."""
    r = jnp.full((4, 2), jnp.nan)
    for agg in ("sum_then_normalize", "normalize_then_sum", "min"):
        adv, _ = group_advantages(r, jnp.ones(2), 2, aggregation=agg)
        assert np.array_equal(np.asarray(adv), np.zeros(4)), agg


def test_jit_compiles_loss_and_advantages():
    """Both functions trace under jit with their options static."""
    lp = -jnp.arange(1.0, 9.0).reshape(2, 4) / 4
    mask = jnp.array([[1.0, 1, 1, 0], [1, 1, 0, 0]])
    loss = jax.jit(lambda a: grpo_loss(lp, lp - 0.1, None, a, mask, loss_type="cispo")[0])
    assert np.isfinite(float(loss(jnp.array([1.0, -1.0]))))
    adv = jax.jit(lambda r: group_advantages(r, jnp.ones(1), 2, aggregation="min")[0])
    np.testing.assert_allclose(np.asarray(adv(jnp.array([[0.0], [1.0]]))), [-0.7070, 0.7070], 1e-3)
    for name in ("vespo-sequence-b0.04-old", "bnpo_delta_seq", "dapo_num_items"):
        v = GOLDEN["losses"][name]
        with jax.enable_x64(True):
            loss, grad, _ = _golden_loss(v, jit=True)
            assert float(loss) == pytest.approx(v["loss"], abs=1e-6, rel=1e-9), name
            np.testing.assert_allclose(np.asarray(grad), v["grad"], atol=1e-6, rtol=1e-9)


def test_on_policy_gradient_is_advantage_times_grad_logp():
    """old=None: rho = 1 in value, gradient -A m / |o| / B for grpo (TRL's detach trick)."""
    lp = jnp.zeros((2, 3))
    mask = jnp.array([[1.0, 1, 1], [1, 0, 0]])
    g = jax.grad(
        lambda x: grpo_loss(x, None, None, jnp.array([2.0, -1.0]), mask, loss_type="grpo")[0]
    )
    np.testing.assert_allclose(np.asarray(g(lp)), [[-1 / 3] * 3, [0.5, 0, 0]], rtol=1e-6)


@pytest.mark.parametrize(
    "key, value",
    [("loss_type", "ppo"), ("aggregation", "max"), ("scale", "global"),
     ("importance_sampling_level", "seq")],
)  # fmt: skip
def test_unknown_names_refused_in_one_line(key, value):
    """An unknown name is a ConfigError of one line that lists the allowed names."""
    with pytest.raises(ConfigError) as e:
        check_grpo_names(**{key: value})
    msg = str(e.value)
    assert "\n" not in msg and f"grpo.{key}={value!r}" in msg and "expected one of" in msg
    if key == "loss_type":
        assert "grpo, bnpo, dr_grpo, dapo, cispo, sapo, luspo, vespo" in msg
        with pytest.raises(ConfigError):
            grpo_loss(jnp.zeros((1, 2)), None, None, jnp.ones(1), jnp.ones((1, 2)), loss_type=value)


def test_per_token_advantages_match_broadcast_row_advantages():
    """Advantages [B, T] (TRL's subclass hook) give the loss of the same [B] values broadcast."""
    b = {k: jnp.asarray(x, jnp.float32) for k, x in BATCH.items()}
    row = grpo_loss(b["logps"], b["old"], None, b["adv"], b["mask"], loss_type="bnpo")[0]
    per_token = jnp.broadcast_to(b["adv"][:, None], b["mask"].shape)
    tok = grpo_loss(b["logps"], b["old"], None, per_token, b["mask"], loss_type="bnpo")[0]
    assert float(tok) == pytest.approx(float(row), rel=1e-6) and float(row) != 0


def test_beta_without_reference_or_dr_grpo_without_length_is_refused():
    """beta != 0 needs ref_logps; dr_grpo needs max_completion_len."""
    x, a, m = jnp.zeros((1, 2)), jnp.ones(1), jnp.ones((1, 2))
    with pytest.raises(ValueError, match="ref_logps"):
        grpo_loss(x, None, None, a, m, beta=0.04)
    with pytest.raises(ValueError, match="max_completion_len"):
        grpo_loss(x, None, None, a, m, loss_type="dr_grpo")

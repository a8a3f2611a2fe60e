"""The CPU-only fast paths change speed, not values: `jaxalign.models.cpu_attention` against
jax.nn's generic attention, and `jaxalign.train.optim.optimizer_step` against optax's plain
update, each also through the jitted DPO train step."""

from __future__ import annotations

from unittest import mock

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

from jaxalign.config import DataConfig, DPOConfig, OptimConfig
from jaxalign.data.preferences import Encoded, collate, longest_run
from jaxalign.models import cpu_attention
from jaxalign.models.config import ModelConfig
from jaxalign.models.decoder import Decoder, attention_mask
from jaxalign.train.dpo import frozen_reference, make_train_step
from jaxalign.train.optim import make_optimizer

pytestmark = pytest.mark.skipif(jax.default_backend() != "cpu", reason="CPU-only paths")

GENERIC = mock.patch("jaxalign.models.cpu_attention.applies", lambda mask: False)


def plain_optimizer_step(tx, grads, opt_state, params):
    """optax's update and application, optax's norm: the values the CPU path must keep."""
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, optax.tree.norm(grads)


def _masks():
    """Masks the decoder builds: packed segments with padding rows (no allowed key), shared-
    prompt branches, and both with a sliding window."""
    t = 128
    pos = np.r_[np.arange(50), np.arange(70), np.zeros(8)].astype(np.int32)
    seg = np.r_[np.ones(50), 2 * np.ones(70), np.zeros(8)].astype(np.int32)
    br = np.r_[np.zeros(30), np.ones(40), 2 * np.ones(50), np.zeros(8)].astype(np.int32)
    bpos = np.r_[np.arange(70), 30 + np.arange(50), np.zeros(8)].astype(np.int32)
    bseg = np.r_[np.ones(120), np.zeros(8)].astype(np.int32)
    p, s = jnp.asarray(np.stack([pos, bpos])), jnp.asarray(np.stack([seg, bseg]))
    b = jnp.asarray(np.stack([np.zeros(t, np.int32), br]))
    return {
        "segments+branches": attention_mask(p, s, p, s, None, b, b),
        "segments+window": attention_mask(p, s, p, s, 9, b, b),
    }


@pytest.mark.parametrize(
    "heads,kv_heads,case",
    [
        (6, 2, "causal"),
        (6, 2, "window"),
        (4, 4, "causal"),
        (6, 2, "segments+branches"),
        (6, 3, "segments+window"),
    ],
)
def test_cpu_attention_equals_generic(heads, kv_heads, case):
    b, t, d = 2, 128, 16
    ks = jax.random.split(jax.random.key(0), 4)
    q = jax.random.normal(ks[0], (b, t, heads, d))
    k = jax.random.normal(ks[1], (b, t, kv_heads, d))
    v = jax.random.normal(ks[2], (b, t, kv_heads, d))
    cot = jax.random.normal(ks[3], (b, t, heads, d))
    mask = _masks().get(case)
    window = 17 if case == "window" else None
    scale = 0.25

    def generic(q, k, v):
        local = (window - 1, 0) if window else None
        out = jax.nn.dot_product_attention(
            q, k, v, mask=mask, scale=scale, is_causal=mask is None, local_window_size=local
        )
        return jnp.sum(out * cot), out

    def ours(q, k, v):
        out = cpu_attention.attention(q, k, v, mask, scale, window)
        return jnp.sum(out * cot), out

    (_, want), g_want = jax.value_and_grad(generic, (0, 1, 2), has_aux=True)(q, k, v)
    (_, got), g_got = jax.jit(jax.value_and_grad(ours, (0, 1, 2), has_aux=True))(q, k, v)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    for a, w in zip(g_got, g_want):
        np.testing.assert_allclose(a, w, atol=1e-5, rtol=1e-5)
    if mask is None:  # causal rows run in two query blocks, the first skipping half the keys
        assert cpu_attention._spans(t, True) == ((0, 64, 64), (64, 128, 128))


def _tiny_model(**over):
    """A 2-layer GQA decoder with q/k norm (Qwen3-style) and random weights."""
    cfg = ModelConfig(
        family="qwen3",
        vocab_size=64,
        hidden_size=48,
        intermediate_size=64,
        num_layers=2,
        num_heads=6,
        num_kv_heads=2,
        head_dim=16,
        qk_norm=True,
        **over,
    )
    return Decoder(cfg, rngs=nnx.Rngs(3))


def _batch(layout: str, vocab: int):
    """Four pairs with prompts of different lengths, collated in `layout` rows."""
    rng = np.random.default_rng(0)
    data = Encoded(groups=["all"])
    for prompt in (5, 9, 12, 7):
        p = rng.integers(3, vocab, prompt, dtype=np.int32)
        data.chosen.append(np.r_[p, rng.integers(3, vocab, 20, dtype=np.int32)])
        data.rejected.append(np.r_[p, rng.integers(3, vocab, 14, dtype=np.int32)])
        data.prompt_len.append(prompt)
        data.weight.append(1.0)
        data.soft_label.append(1.0)
        data.group.append(0)
    width = longest_run(data, layout)
    return jax.device_put(collate(data, range(4), (width,), 0, None, layout=layout))


def _train(model, layout: str, optim, steps: int, patches=()):
    """(state, metrics) after `steps` jitted DPO steps with `optim` (an OptimConfig or an optax
    transformation), traced under `patches`."""
    graphdef, params = nnx.split(model)
    tx = make_optimizer(optim, 10) if isinstance(optim, OptimConfig) else optim
    step = make_train_step(graphdef, tx, DPOConfig(reference="model"), DataConfig(layout=layout))
    ref = frozen_reference(params, jnp.float32)
    state = {"params": jax.tree.map(jnp.copy, params), "opt_state": tx.init(params)}
    state["step"] = jnp.zeros((), jnp.int32)
    batch = _batch(layout, model.config.vocab_size)
    for p in patches:
        p.start()
    try:
        metrics = []
        for _ in range(steps):
            state, m = step(state, ref, batch)
            metrics.append(jax.device_get(m))
    finally:
        for p in patches:
            p.stop()
    return state, metrics


def _assert_close(a, b, tol):
    """Every leaf of two pytrees equal to `tol` (relative and absolute)."""
    leaves_a, leaves_b = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(leaves_a) == len(leaves_b) > 0
    for x, y in zip(leaves_a, leaves_b):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


@pytest.mark.parametrize("layout,window", [("pairs", None), ("shared_prompt", None), ("pairs", 6)])
def test_train_step_cpu_attention_equals_generic(layout, window):
    # SGD with rate 1: the new parameters are the old minus the gradients, compared directly
    optim = optax.sgd(1.0)
    model = _tiny_model(sliding_window=window)
    ours, m_ours = _train(model, layout, optim, 1)
    generic, m_generic = _train(model, layout, optim, 1, [GENERIC])
    # accuracies count reward margins > 0: at the first step the margins are 0 up to rounding
    smooth = lambda ms: [{k: v for k, v in m.items() if "accurac" not in k} for m in ms]  # noqa: E731
    _assert_close(smooth(m_ours), smooth(m_generic), 1e-5)
    _assert_close(ours["params"], generic["params"], 1e-5)


@pytest.mark.parametrize("clip,accum", [(0.0, 1), (0.5, 2)])
def test_optimizer_step_equals_optax(clip, accum):
    # non-default decay, the decay mask (norm weights undecayed), a schedule, clipping and
    # accumulation: the CPU ordering and norm keep optax.adamw's values and state
    optim = OptimConfig(
        learning_rate=3e-3,
        warmup_steps=2,
        schedule="cosine",
        clip_norm=clip,
        weight_decay=0.3,
        grad_accum=accum,
        b2=0.99,
    )
    model = _tiny_model()
    ours, m_ours = _train(model, "pairs", optim, 3)
    plain, m_plain = _train(
        model,
        "pairs",
        optim,
        3,
        [mock.patch("jaxalign.train.dpo.optimizer_step", plain_optimizer_step)],
    )
    assert jax.tree.structure(ours["opt_state"]) == jax.tree.structure(plain["opt_state"])
    _assert_close(ours, plain, 1e-6)
    _assert_close([m["grad_norm"] for m in m_ours], [m["grad_norm"] for m in m_plain], 1e-6)

"""Scanned layers (`model.scan_layers`): same logits, gradients, export and samples as unrolled."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import QWEN3_BIASED
from flax import nnx

from jaxalign.errors import ConfigError
from jaxalign.models.loading import build, export_hf, random_tensors
from jaxalign.models.sampler import Sampler
from jaxalign.models.weights import layer_names, param_table, read_checkpoint
from jaxalign.sharding import make_mesh
from jaxalign.train.optim import decay_mask
from jaxalign.train.run_dir import check_model, check_resume

CFG = QWEN3_BIASED  # every optional parameter kind: q/k/v/o biases, q/k norms, untied head
TENSORS = {
    k: v + 0.1 * np.random.default_rng(1).standard_normal(v.shape, dtype=np.float32)
    for k, v in random_tensors(CFG, seed=3).items()
}  # norms away from 1 and non-zero biases, so every parameter matters
TOKENS = jnp.asarray(np.random.default_rng(0).integers(2, 97, (2, 11)), jnp.int32)


def by_hf_name(model) -> dict[str, np.ndarray]:
    """Every parameter of `model` (or of a gradient shaped like it) per HF tensor name."""
    out = {}
    for name, param, _, _ in param_table(model):
        value = np.asarray(param.get_value())
        names = layer_names(name, model.config.num_layers)
        out.update({name: value} if names == [name] else dict(zip(names, value)))
    return out


def loss_grads(model):
    """(logits, gradient of a logit loss per HF name) of `model` on TOKENS."""
    graphdef, params = nnx.split(model)

    def loss(p):
        logits = nnx.merge(graphdef, p)(TOKENS)
        return jnp.mean(jax.nn.log_softmax(logits)[..., 5] * jnp.arange(11.0)), logits

    grads, logits = jax.grad(loss, has_aux=True)(params)
    return np.asarray(logits), by_hf_name(nnx.merge(graphdef, grads))


@pytest.fixture(scope="module")
def unrolled():
    """The unrolled model and its logits and gradients."""
    model = build(CFG, TENSORS)
    return model, *loss_grads(model)


@pytest.mark.parametrize("remat", ["none", "dots_saveable"])
def test_scan_matches_unrolled_logits_and_gradients(unrolled, remat):
    _, logits, grads = unrolled
    scanned = build(CFG, TENSORS, scan_layers=True, remat=remat)
    assert scanned.layers.mlp.up_proj.kernel.get_value().shape == (3, 32, 48)
    s_logits, s_grads = loss_grads(scanned)
    np.testing.assert_allclose(s_logits, logits, atol=1e-5, rtol=0)
    assert s_grads.keys() == grads.keys() and len(grads) == 3 * 15 + 3
    for name, g in grads.items():
        np.testing.assert_allclose(s_grads[name], g, atol=1e-5, rtol=0, err_msg=name)


def test_scan_hf_export_is_byte_identical(unrolled, tmp_path):
    export_hf(unrolled[0], None, tmp_path / "a")
    export_hf(build(CFG, TENSORS, scan_layers=True), None, tmp_path / "b")
    a, b = (tmp_path / d / "model.safetensors" for d in "ab")
    assert a.read_bytes() == b.read_bytes()
    assert read_checkpoint(tmp_path / "b").keys() == TENSORS.keys()


def test_scan_sampler_generates_the_same_tokens(unrolled):
    prompts = [[5, 6, 7], [9, 10, 11, 12, 13]]
    scanned = build(CFG, TENSORS, scan_layers=True)
    a = Sampler(unrolled[0]).generate(prompts, max_new_tokens=6, greedy=True)
    b = Sampler(scanned).generate(prompts, max_new_tokens=6, greedy=True)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    np.testing.assert_allclose(a.logprobs, b.logprobs, atol=1e-5)


def test_scan_grpo_rollout_samples_the_same_tokens(unrolled):
    from jaxalign.models.sampler import make_rollout

    tokens = jnp.asarray([[0, 0, 5, 6, 7], [9, 10, 11, 12, 13]], jnp.int32)
    valid = (tokens > 0).astype(jnp.int32)
    out = []
    for model in (unrolled[0], build(CFG, TENSORS, scan_layers=True)):
        graphdef, params = nnx.split(model)
        run = make_rollout(graphdef, num_generations=3, max_new=5, top_k=0, eos_ids=(1,),
                           pad_id=0, cache_dtype=jnp.float32)  # fmt: skip
        out.append([np.asarray(x) for x in run(params, tokens, valid, jax.random.key(2), 1.0, 1.0)])
    np.testing.assert_array_equal(out[0][0], out[1][0])
    np.testing.assert_allclose(out[0][1], out[1][1], atol=1e-5)


def test_scan_sharded_load_keeps_layer_axis_whole(unrolled):
    mesh = make_mesh(fsdp=4, tensor=2, devices=jax.devices()[:8])
    scanned = build(CFG, TENSORS, scan_layers=True, mesh=mesh)
    kernel = scanned.layers.mlp.gate_proj.kernel.get_value()
    assert tuple(kernel.sharding.spec) == (None, "fsdp", "tensor")
    with jax.set_mesh(mesh) if hasattr(jax, "set_mesh") else mesh:
        logits = np.asarray(scanned(TOKENS))
    np.testing.assert_allclose(logits, unrolled[1], atol=1e-5, rtol=0)


def test_weight_decay_mask_ignores_stacked_norms_and_biases():
    masks = []
    for scan in (False, True):
        graphdef, params = nnx.split(build(CFG, TENSORS, scan_layers=scan))
        masked = nnx.merge(graphdef, decay_mask(params))
        masks.append(
            {
                one: bool(param.get_value())
                for name, param, _, _ in param_table(masked)
                for one in layer_names(name, CFG.num_layers)
            }
        )
    assert masks[0] == masks[1]
    assert not masks[1]["model.layers.2.self_attn.q_norm.weight"]
    assert not masks[1]["model.layers.0.self_attn.q_proj.bias"]
    assert masks[1]["model.layers.1.mlp.down_proj.weight"]


@pytest.mark.parametrize("check", [check_resume, check_model])
@pytest.mark.parametrize("old", [{}, {"scan_layers": False}])
def test_unscanned_checkpoint_into_scanned_config_is_refused(check, old, tmp_path):
    saved = {"model": {"path": "m", **old}}
    wanted = {"model": {"path": "m", "scan_layers": True}}
    args = (saved, wanted, (), tmp_path) if check is check_resume else (saved, wanted, tmp_path)
    with pytest.raises(ConfigError, match=r"saved with model\.scan_layers=false") as err:
        check(*args)
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_scanned_training_run_matches_unrolled_and_exports(tiny_tokenizer, tmp_path):
    import json

    from conftest import TINY_CPU, tiny_config, write_learnable_prefs

    from jaxalign.algos.dpo import train
    from jaxalign.cli import main

    prefs = write_learnable_prefs(tmp_path / "prefs.jsonl")
    steps = ("train.steps=3", "train.eval_every=3", "train.checkpoint_every=3")
    losses, exported = {}, {}
    for scan in (False, True):
        run = tmp_path / f"run_{scan}"
        extra = (*steps, f"model.scan_layers={str(scan).lower()}", "model.remat=dots_saveable")
        train(tiny_config(tiny_tokenizer, prefs, run, *extra), progress=False)
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        losses[scan] = [r["train/loss"] for r in rows if "train/loss" in r]
        out = tmp_path / f"hf_{scan}"
        overrides = [f"model.tokenizer={tiny_tokenizer}", f"data.prefs={prefs}"]
        overrides += [f"train.run_dir={run}", *extra[3:]]
        args = ["model", "export", "--run-config", str(TINY_CPU), "--out", str(out)]
        assert main([*args, *overrides]) == 0
        exported[scan] = read_checkpoint(out)
    assert len(losses[True]) == 3
    np.testing.assert_allclose(losses[True], losses[False], atol=1e-5, rtol=0)
    assert exported[True].keys() == exported[False].keys()
    for name, tensor in exported[False].items():
        np.testing.assert_allclose(exported[True][name], tensor, atol=1e-5, rtol=0, err_msg=name)
    # the scanned run's checkpoint does not resume under the unrolled layout
    cfg = tiny_config(tiny_tokenizer, prefs, tmp_path / "run_True", *steps)
    with pytest.raises(ConfigError, match=r"saved with model\.scan_layers=true") as err:
        train(cfg, progress=False)
    assert "\n" not in str(err.value)

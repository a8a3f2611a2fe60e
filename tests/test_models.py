"""Model layer: parity with transformers (PyTorch, CPU), export, sharding, log-probs, sampler, bad inputs."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
import transformers
from flax import nnx

from jaxalign.cli import main
from jaxalign.errors import DataError
from jaxalign.models import export_hf, load_pretrained
from jaxalign.models.sampler import Sampler, bucket, filter_logits
from jaxalign.ops import naive_token_logprobs, token_logprobs
from jaxalign.sharding import make_mesh

COMMON = dict(
    vocab_size=96,
    hidden_size=64,
    intermediate_size=112,
    num_hidden_layers=2,
    num_attention_heads=4,
    max_position_embeddings=256,
    initializer_range=0.15,
    bos_token_id=1,
    eos_token_id=2,
    pad_token_id=0,
)
LLAMA3_ROPE = {
    "rope_type": "llama3",
    "rope_theta": 50000.0,
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,
}
FAMILIES = {
    "llama-gqa-untied-rope3": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(num_key_value_heads=2, rope_parameters=LLAMA3_ROPE),
    ),
    "llama-mha-tied": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(num_key_value_heads=4, tie_word_embeddings=True),
    ),
    "mistral-gqa": (
        "MistralConfig",
        "MistralForCausalLM",
        dict(num_key_value_heads=2, sliding_window=None),
    ),
    "qwen2-gqa-tied": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(num_key_value_heads=2, tie_word_embeddings=True),
    ),
    "qwen2-mha-untied": (
        "Qwen2Config",
        "Qwen2ForCausalLM",
        dict(num_key_value_heads=4, tie_word_embeddings=False),
    ),
    "qwen3-gqa": (
        "Qwen3Config",
        "Qwen3ForCausalLM",
        dict(num_key_value_heads=2, head_dim=24, tie_word_embeddings=False),
    ),
}


def make_hf(directory, family: str):
    """Save a tiny randomly initialised transformers model of `family`; return the torch model."""
    config_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(sum(map(ord, family)))
    model = getattr(transformers, model_cls)(
        getattr(transformers, config_cls)(**COMMON, **extra)
    ).eval()
    with torch.no_grad():  # non-trivial norm weights and biases, so every parameter matters
        for name, param in model.named_parameters():
            if name.endswith("norm.weight") or name.endswith(".bias"):
                param.add_(0.1 * torch.randn_like(param))
    model.save_pretrained(directory)
    return model


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """family -> (directory, torch model)."""
    out = {}
    for family in FAMILIES:
        directory = tmp_path_factory.mktemp(family)
        out[family] = (directory, make_hf(directory, family))
    return out


TOKENS = np.random.default_rng(0).integers(3, 96, (2, 23))


@pytest.mark.parametrize("family", list(FAMILIES))
def test_logits_match_transformers(tiny, family):
    directory, hf = tiny[family]
    model, _ = load_pretrained(directory)
    with torch.no_grad():
        ref = hf(torch.tensor(TOKENS)).logits.numpy()
    ours = np.asarray(jax.jit(lambda t: model(t))(jnp.asarray(TOKENS)))
    assert np.abs(ours - ref).max() <= 1e-4
    assert np.abs(ref).max() > 0.1  # the comparison is not between near-zero tensors


@pytest.mark.parametrize("family", list(FAMILIES))
def test_greedy_generation_matches_transformers(tiny, family):
    directory, hf = tiny[family]
    model, _ = load_pretrained(directory)
    sampler = Sampler(model, eos_ids=[2], pad_id=0)
    prompts = [[5, 9, 14, 3, 60, 7], [11, 12]]
    out = sampler.generate(prompts, max_new_tokens=32, greedy=True)
    for prompt, ours in zip(prompts, out.completions()):
        with torch.no_grad():
            ref = hf.generate(
                torch.tensor([prompt]),
                max_new_tokens=32,
                do_sample=False,
                eos_token_id=2,
                pad_token_id=0,
            )[0, len(prompt) :].tolist()
        assert ours == ref


def test_export_round_trip(tiny, tmp_path):
    directory, _ = tiny["qwen2-gqa-tied"]
    model, _ = load_pretrained(directory)
    export_hf(model, None, tmp_path / "export")
    back = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "export", dtype=torch.float32
    ).eval()
    with torch.no_grad():
        ref = back(torch.tensor(TOKENS)).logits.numpy()
    assert np.abs(np.asarray(model(jnp.asarray(TOKENS))) - ref).max() <= 1e-5
    again, _ = load_pretrained(tmp_path / "export")
    assert np.array_equal(
        np.asarray(again(jnp.asarray(TOKENS))), np.asarray(model(jnp.asarray(TOKENS)))
    )


def test_sharded_equals_unsharded(tiny):
    assert len(jax.devices()) == 8
    directory, _ = tiny["llama-gqa-untied-rope3"]
    plain, _ = load_pretrained(directory)
    mesh = make_mesh(fsdp=4, tensor=2)
    sharded, _ = load_pretrained(directory, mesh=mesh)
    kernel = sharded.layers[0].mlp.gate_proj.kernel.get_value()
    assert kernel.sharding.spec == jax.sharding.PartitionSpec("fsdp", "tensor")
    assert len({str(s.index) for s in kernel.addressable_shards}) == 8
    tokens = jax.device_put(
        jnp.asarray(np.tile(TOKENS, (4, 1))),
        jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec(("data", "fsdp"))),
    )
    out = jax.jit(lambda t: sharded(t))(tokens)
    ref = plain(jnp.asarray(np.tile(TOKENS, (4, 1))))
    assert np.abs(np.asarray(out) - np.asarray(ref)).max() <= 1e-5


def test_mesh_shapes():
    assert make_mesh(data=2, fsdp=2, tensor=2).shape == {"data": 2, "fsdp": 2, "tensor": 2}
    assert make_mesh().shape["fsdp"] == 8
    with pytest.raises(ValueError, match="does not fit"):
        make_mesh(tensor=3)


def test_chunked_logprobs_match_naive():
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    hidden = jax.random.normal(k1, (2, 37, 16))
    kernel = jax.random.normal(k2, (16, 1000)) * 0.5
    targets = jax.random.randint(k3, (2, 37), 0, 1000)
    chunked = token_logprobs(hidden, kernel, targets, chunk=8)
    naive = naive_token_logprobs(hidden, kernel, targets)
    assert np.abs(np.asarray(chunked - naive)).max() <= 1e-5

    def loss(fn):
        return lambda h, w: (fn(h, w) * jnp.linspace(0.5, 1.5, 37)).sum()

    grads_c = jax.grad(loss(lambda h, w: token_logprobs(h, w, targets, chunk=8)), argnums=(0, 1))(
        hidden, kernel
    )
    grads_n = jax.grad(loss(lambda h, w: naive_token_logprobs(h, w, targets)), argnums=(0, 1))(
        hidden, kernel
    )
    for gc, gn in zip(grads_c, grads_n):
        assert np.abs(np.asarray(gc - gn)).max() <= 1e-5


def test_sampler_buckets_do_not_recompile(tiny):
    model, _ = load_pretrained(tiny["llama-mha-tied"][0])
    sampler = Sampler(model, eos_ids=[2])
    sampler.generate([[5, 6, 7]], max_new_tokens=10, temperature=0.7, seed=0)
    sampler.generate([[5, 6, 7, 8, 9, 10]], max_new_tokens=12, temperature=1.3, top_p=0.8, seed=5)
    sampler.generate([[4]], max_new_tokens=16, temperature=0.9, seed=9)
    assert sampler.traces == 1
    sampler.generate([[4] * 20], max_new_tokens=16, seed=9)  # a longer prompt bucket
    assert sampler.traces == 2
    assert bucket(3) == 8 and bucket(9) == 16 and bucket(9000) == 9000


def test_sampler_logprobs_and_determinism(tiny):
    model, _ = load_pretrained(tiny["qwen3-gqa"][0])
    sampler = Sampler(model, eos_ids=[2])
    prompt = [7, 8, 9, 10]
    out = sampler.generate([prompt], max_new_tokens=12, temperature=1.0, seed=3)
    again = sampler.generate([prompt], max_new_tokens=12, temperature=1.0, seed=3)
    other = sampler.generate([prompt], max_new_tokens=12, temperature=1.0, seed=4)
    assert np.array_equal(out.tokens, again.tokens) and not np.array_equal(out.tokens, other.tokens)
    completion = out.completions()[0]
    full = jnp.asarray([prompt + completion])
    logp = jax.nn.log_softmax(model(full)[0], axis=-1)
    expected = [float(logp[len(prompt) - 1 + i, tok]) for i, tok in enumerate(completion)]
    assert np.allclose(out.logprobs[0][: len(completion)], expected, atol=1e-4)
    greedy = sampler.generate([prompt], max_new_tokens=12, greedy=True)
    top1 = sampler.generate([prompt], max_new_tokens=12, top_k=1, seed=11)
    assert np.array_equal(greedy.tokens, top1.tokens)


def test_filter_logits_top_k_top_p():
    logits = jnp.log(jnp.array([[0.5, 0.3, 0.15, 0.05]]))
    assert np.isfinite(np.asarray(filter_logits(logits, 2, jnp.float32(1.0)))).sum() == 2
    nucleus = np.isfinite(np.asarray(filter_logits(logits, 0, jnp.float32(0.7))))
    assert nucleus.tolist() == [[True, True, False, False]]
    assert np.isfinite(np.asarray(filter_logits(logits, 0, jnp.float32(0.0)))).sum() == 1


def test_bad_model_inputs(tiny, tmp_path, capsys):
    good = tiny["mistral-gqa"][0]

    def copy(name):
        target = tmp_path / name
        shutil.copytree(good, target)
        return target

    no_config = copy("no_config")
    (no_config / "config.json").unlink()
    unknown = copy("unknown_arch")
    config = json.loads((unknown / "config.json").read_text())
    (unknown / "config.json").write_text(
        json.dumps({**config, "architectures": ["GPT2LMHeadModel"], "model_type": "gpt2"})
    )
    no_weights = copy("no_weights")
    (no_weights / "model.safetensors").unlink()
    mismatch = copy("mismatch")
    (mismatch / "config.json").write_text(json.dumps({**config, "intermediate_size": 128}))
    truncated = copy("truncated")
    data = (truncated / "model.safetensors").read_bytes()
    (truncated / "model.safetensors").write_bytes(data[: len(data) // 2])
    gguf = tmp_path / "corrupt.gguf"
    gguf.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 64)
    cases = [
        (no_config, "config.json not found"),
        (unknown, "unsupported architecture 'GPT2LMHeadModel'; supported: LlamaForCausalLM"),
        (no_weights, "no model.safetensors"),
        (
            mismatch,
            "tensor model.layers.0.mlp.gate_proj.weight has shape (112, 64), expected (128, 64)",
        ),
        (truncated, "model.safetensors"),
        (gguf, "corrupt.gguf: not a readable GGUF file"),
        (tmp_path / "missing", "model path not found"),
    ]
    for path, message in cases:
        with pytest.raises(DataError, match=None) as err:
            load_pretrained(path, tokenizer=False)
        assert message in str(err.value), (path, str(err.value))
        assert main(["model", "info", str(path)]) == 1
        stderr = capsys.readouterr().err
        assert stderr.count("\n") == 1 and "Traceback" not in stderr and message in stderr


@pytest.mark.slow
def test_smollm2_greedy_chat_matches_transformers(tmp_path, capsys):
    """The bundled SmolLM2-135M-Instruct GGUF: same dequantized weights on both sides."""
    from jaxalign.data.chat import chat_ids

    model, tokenizer = load_pretrained("smollm2")
    assert model.config.num_layers == 30 and tokenizer.chat_template
    ids = chat_ids(tokenizer, "What is the capital of France?")
    ours = Sampler(model, eos_ids=[tokenizer.eos_token_id]).generate(
        [ids], max_new_tokens=24, greedy=True
    )
    export_hf(model, tokenizer, tmp_path / "smol")
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        tmp_path / "smol", dtype=torch.float32
    ).eval()
    with torch.no_grad():
        ref = hf.generate(
            torch.tensor([ids]),
            max_new_tokens=24,
            do_sample=False,
            eos_token_id=tokenizer.eos_token_id,
        )[0, len(ids) :].tolist()
    assert ours.completions()[0] == ref
    assert "Paris" in tokenizer.decode(ref)
    assert (
        main(
            [
                "generate",
                "--model",
                str(tmp_path / "smol"),
                "--prompt",
                "What is the capital of France?",
                "--greedy",
                "--max-new-tokens",
                "24",
                "--json",
            ]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert printed["completion_ids"] == ref


def test_remat_and_bf16_options(tiny):
    directory, hf = tiny["llama-gqa-untied-rope3"]
    plain, _ = load_pretrained(directory)
    remat, _ = load_pretrained(directory, remat="full")
    tokens = jnp.asarray(TOKENS)

    def loss(model):
        return lambda h: (token_logprobs(h, model.output_kernel(), tokens) ** 2).mean()

    assert np.array_equal(np.asarray(plain.hidden(tokens)), np.asarray(remat.hidden(tokens)))
    g_plain = jax.tree.leaves(nnx.state(nnx.grad(lambda m: loss(m)(m.hidden(tokens)))(plain)))
    g_remat = jax.tree.leaves(nnx.state(nnx.grad(lambda m: loss(m)(m.hidden(tokens)))(remat)))
    assert len(g_plain) == len(g_remat) > 10
    assert all(np.allclose(a, b, atol=1e-6) for a, b in zip(g_plain, g_remat))
    bf16, _ = load_pretrained(directory, dtype="bf16")
    assert bf16.layers[0].mlp.up_proj.kernel.get_value().dtype == jnp.bfloat16
    with torch.no_grad():
        ref = hf(torch.tensor(TOKENS)).logits.numpy()
    assert np.abs(np.asarray(bf16(tokens)) - ref).max() < 0.1
    with pytest.raises(DataError, match="dtype 'fp8'"):
        load_pretrained(directory, dtype="fp8")


def test_sharded_safetensors_index(tiny, tmp_path):
    from jaxalign.models.weights import read_safetensors, write_safetensors

    directory, _ = tiny["qwen3-gqa"]
    tensors = {
        k: np.asarray(v) for k, v in read_safetensors(directory / "model.safetensors").items()
    }
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[: len(names) // 2],
        "model-00002-of-00002.safetensors": names[len(names) // 2 :],
    }
    out = tmp_path / "sharded"
    out.mkdir()
    shutil.copy(directory / "config.json", out / "config.json")
    weight_map = {}
    for file, keys in shards.items():
        write_safetensors(out / file, {k: tensors[k] for k in keys})
        weight_map.update(dict.fromkeys(keys, file))
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {}, "weight_map": weight_map})
    )
    whole, _ = load_pretrained(directory)
    split, _ = load_pretrained(out)
    assert np.array_equal(
        np.asarray(whole(jnp.asarray(TOKENS))), np.asarray(split(jnp.asarray(TOKENS)))
    )
    (out / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(DataError, match=r"model-00002-of-00002\.safetensors: shard named in"):
        load_pretrained(out)


def test_packing_and_padding_masks(tiny):
    model, _ = load_pretrained(tiny["qwen2-mha-untied"][0])
    a, b = TOKENS[0, :9], TOKENS[1, :14]
    alone_a = np.asarray(model(jnp.asarray([a])))[0]
    alone_b = np.asarray(model(jnp.asarray([b])))[0]
    packed = jnp.asarray([np.concatenate([a, b, [0, 0]])])
    segments = jnp.asarray([[1] * 9 + [2] * 14 + [0, 0]])
    positions = jnp.asarray([list(range(9)) + list(range(14)) + [0, 0]])
    out = np.asarray(model(packed, positions=positions, segment_ids=segments))[0]
    assert np.abs(out[:9] - alone_a).max() <= 1e-5
    assert np.abs(out[9:23] - alone_b).max() <= 1e-5


def test_cpu_dense_gradients_equal_the_plain_product():
    # the CPU backward (kernel gradient from a materialised x^T) changes speed, not values
    from jaxalign.models.decoder import dense

    x = jax.random.normal(jax.random.key(0), (3, 5, 8))
    k = jax.random.normal(jax.random.key(1), (8, 6))
    ours = lambda x, k: jnp.sum(jnp.sin(dense(x, k)))  # noqa: E731
    plain = lambda x, k: jnp.sum(jnp.sin(x @ k))  # noqa: E731
    if jax.default_backend() == "cpu":
        assert "custom_vjp_call" in str(jax.make_jaxpr(ours)(x, k))
    np.testing.assert_allclose(ours(x, k), plain(x, k), rtol=1e-6)
    for a, b in zip(jax.jit(jax.grad(ours, (0, 1)))(x, k), jax.grad(plain, (0, 1))(x, k)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)

"""The GRPO rollout: one prefill per prompt, KV cache tiled, params traced (no recompiles)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from jaxalign.models.config import ModelConfig
from jaxalign.models.decoder import Decoder
from jaxalign.models.sampler import Sampler, make_rollout


@pytest.fixture(scope="module")
def model():
    cfg = ModelConfig(
        family="llama", vocab_size=64, hidden_size=32, intermediate_size=64, num_layers=2,
        num_heads=4, num_kv_heads=2, head_dim=8, eos_token_id=(2,),
    )  # fmt: skip
    return Decoder(cfg, rngs=nnx.Rngs(0))


PROMPTS = [[5, 6, 7], [9, 10, 11, 12, 13]]


def padded(prompts, width=8):
    tokens = np.zeros((len(prompts), width), np.int32)
    valid = np.zeros((len(prompts), width), np.int32)
    for i, p in enumerate(prompts):
        tokens[i, width - len(p) :], valid[i, width - len(p) :] = p, 1
    return tokens, valid


def test_tiled_rollout_is_prompt_major_and_matches_the_sampler(model):
    from collections import Counter

    graphdef, params = nnx.split(model)
    traces = Counter()
    run = make_rollout(graphdef, num_generations=3, max_new=6, top_k=1, eos_ids=(2,), pad_id=0,
                       cache_dtype=jnp.float32, traces=traces)  # fmt: skip
    tokens, valid = padded(PROMPTS)
    key = jax.random.key(0)
    toks, _, mask = (np.asarray(x) for x in run(params, tokens, valid, key, 1.0, 1.0))
    assert toks.shape == (6, 6) and mask.shape == (6, 6)
    # top_k=1 is greedy: every row of a group equals the sampler's greedy reply to its prompt
    greedy = Sampler(model, eos_ids=[2]).generate(PROMPTS, max_new_tokens=6, greedy=True)
    for i in range(6):
        assert np.array_equal(toks[i] * mask[i], greedy.tokens[i // 3] * greedy.mask[i // 3])
    # new parameters and a new key are traced values: one program for every step
    moved = jax.tree.map(lambda p: p * 1.01, params)
    run(moved, tokens, valid, jax.random.key(1), 0.7, 0.9)
    assert traces["rollout"] == 1


def test_rollout_samples_differ_within_a_group_and_repeat_per_key(model):
    graphdef, params = nnx.split(model)
    run = make_rollout(graphdef, num_generations=4, max_new=8, top_k=0, eos_ids=(2,), pad_id=0,
                       cache_dtype=jnp.float32)  # fmt: skip
    tokens, valid = padded(PROMPTS[:1])
    a = np.asarray(run(params, tokens, valid, jax.random.key(3), 1.0, 1.0)[0])
    b = np.asarray(run(params, tokens, valid, jax.random.key(3), 1.0, 1.0)[0])
    c = np.asarray(run(params, tokens, valid, jax.random.key(4), 1.0, 1.0)[0])
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert len({tuple(row) for row in a}) > 1  # the G samples of one prompt are not copies

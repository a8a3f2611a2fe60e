"""The preference data pipeline: encoding, row layouts, packing, per-process slicing, order."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import tiny_config, write_learnable_prefs
from flax import nnx

from jaxalign.data.preferences import (
    Encoded,
    collate,
    encode,
    epoch_order,
    longest_run,
    read_records,
)
from jaxalign.errors import DataError
from jaxalign.models import ModelConfig
from jaxalign.models.loading import build, random_tensors
from jaxalign.train.dpo import pair_logps

BUCKETS = (16, 32, 48, 64, 96, 128)


def random_pairs(n: int, seed: int = 0) -> Encoded:
    """Pairs with random prompt and reply lengths over a 50-token vocabulary."""
    rng = np.random.default_rng(seed)
    data = Encoded(groups=["a", "b"])
    for i in range(n):
        p, c, r = rng.integers(1, 12), rng.integers(1, 10), rng.integers(1, 10)
        prompt = rng.integers(3, 50, p).astype(np.int32)
        data.chosen.append(np.concatenate([prompt, rng.integers(3, 50, c).astype(np.int32)]))
        data.rejected.append(np.concatenate([prompt, rng.integers(3, 50, r).astype(np.int32)]))
        data.prompt_len.append(int(p))
        data.weight.append(1.0 + i)
        data.soft_label.append(0.75)
        data.group.append(i % 2)
    return data


SMALL = dict(
    family="llama",
    vocab_size=50,
    hidden_size=32,
    intermediate_size=64,
    num_layers=2,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    tie_word_embeddings=False,
)


@pytest.fixture(scope="module")
def model():
    cfg = ModelConfig(**SMALL)
    return build(cfg, random_tensors(cfg, seed=3, scale=0.3))


def reference_logps(model, data: Encoded) -> np.ndarray:
    """Summed reply log-probs [N, 2], one plain causal forward pass per sequence."""
    out = np.zeros((len(data), 2))
    for i in range(len(data)):
        p = data.prompt_len[i]
        for side, seq in enumerate((data.chosen[i], data.rejected[i])):
            logits = model(jnp.asarray(seq)[None])[0]
            logp = jax.nn.log_softmax(logits[:-1], axis=-1)
            picked = np.asarray(jnp.take_along_axis(logp, jnp.asarray(seq)[1:, None], -1))[:, 0]
            out[i, side] = picked[p - 1 :].sum()
    return out


@pytest.mark.parametrize(
    "layout,pack_len", [("shared_prompt", 0), ("pairs", 0), ("shared_prompt", 64), ("pairs", 32)]
)
def test_every_layout_gives_the_plain_log_probs(model, layout, pack_len):
    data = random_pairs(6)
    expected = reference_logps(model, data)
    indices = [0, 1, 2, -1, 3, 4, 5, -1]  # filler slots included
    batch = collate(data, indices, BUCKETS, 0, None, layout=layout, pack_len=pack_len)
    logps, lengths = pair_logps(model, jax.tree.map(jnp.asarray, batch), chunk=8)
    logps, lengths = np.asarray(logps), np.asarray(lengths)
    valid = batch["valid"] > 0
    assert valid.tolist() == [i >= 0 for i in indices]
    rows = [i for i in indices if i >= 0]
    np.testing.assert_allclose(logps[valid], expected[rows], atol=1e-4, rtol=1e-5)
    assert np.all(logps[~valid] == 0)
    replies = [
        [len(data.chosen[i]) - data.prompt_len[i], len(data.rejected[i]) - data.prompt_len[i]]
        for i in rows
    ]
    np.testing.assert_array_equal(lengths[valid], replies)
    if pack_len:
        assert batch["tokens"].shape[1] == pack_len
        assert batch["tokens"].shape[0] in (1, 2, 4, 8, 16)
        assert batch["segment_ids"].max() > 1  # several runs share a row
    else:
        per_pair = 2 if layout == "pairs" else 1
        assert batch["tokens"].shape[0] == per_pair * len(indices)


def test_shared_prompt_rows_hold_the_prompt_once():
    data = random_pairs(4, seed=1)
    batch = collate(data, range(4), BUCKETS, 0, None)
    for row, i in enumerate(range(4)):
        p = data.prompt_len[i]
        c = len(data.chosen[i]) - p
        r = len(data.rejected[i]) - p
        assert (batch["segment_ids"][row] > 0).sum() == p + c + r
        np.testing.assert_array_equal(
            batch["branch"][row, : p + c + r], [0] * p + [1] * c + [2] * r
        )
        # the rejected reply restarts its positions after the prompt and follows the prompt
        assert batch["positions"][row, p + c] == p
        assert batch["prev"][row, p + c] == p - 1
    pairs = collate(data, range(4), BUCKETS, 0, None, layout="pairs")
    assert batch["segment_ids"].astype(bool).sum() < pairs["segment_ids"].astype(bool).sum()


def test_per_process_slices_make_the_same_batch(model):
    data = random_pairs(8, seed=2)
    indices = [*range(7), -1]
    for layout, pack_len in (("shared_prompt", 0), ("shared_prompt", 64), ("pairs", 0)):
        whole = collate(data, indices, BUCKETS, 0, None, layout=layout, pack_len=pack_len)
        parts = [
            collate(
                data,
                indices,
                BUCKETS,
                0,
                None,
                layout=layout,
                pack_len=pack_len,
                process_index=h,
                process_count=2,
            )
            for h in range(2)
        ]
        assert parts[0]["tokens"].shape == parts[1]["tokens"].shape  # same plan everywhere
        glued = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        assert np.all(parts[1]["pair"][parts[1]["loss_mask"] > 0] >= 4)  # global pair slots
        a = pair_logps(model, jax.tree.map(jnp.asarray, whole), chunk=8)[0]
        b = pair_logps(model, jax.tree.map(jnp.asarray, glued), chunk=8)[0]
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
        for key in ("weights", "soft_labels", "valid", "index", "groups"):
            np.testing.assert_array_equal(glued[key], whole[key])
    with pytest.raises(DataError, match="does not split over 3 processes"):
        collate(data, indices, BUCKETS, 0, None, process_count=3)


def test_packing_and_bucket_errors_name_the_setting():
    data = random_pairs(3)
    need = longest_run(data, "shared_prompt")
    with pytest.raises(DataError, match=f"needs {need} tokens.*pack_len is {need - 1}"):
        collate(data, range(3), BUCKETS, 0, None, pack_len=need - 1)
    with pytest.raises(DataError, match=r"exceeds the largest bucket 8.*data\.buckets"):
        collate(data, range(3), (8,), 0, None)


def test_packed_rows_round_to_the_mesh(model):
    data = random_pairs(8, seed=4)
    batch = collate(data, range(8), BUCKETS, 0, None, pack_len=128, rows_multiple=4)
    assert batch["tokens"].shape[0] % 4 == 0
    assert batch["tokens"].shape[0] >= 1


def test_encode_counts_truncation(tiny_tokenizer, tmp_path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer)
    records = read_records(write_learnable_prefs(tmp_path / "p.jsonl"), "train")
    full = encode(records, tokenizer, max_prompt_len=200, max_len=400, conditioning="none")
    assert full.counts["prompt_truncated"] == full.counts["response_truncated"] == 0
    assert full.counts["pairs"] == len(records)
    cut = encode(records, tokenizer, max_prompt_len=10, max_len=14, conditioning="tag")
    assert cut.counts["prompt_truncated"] == len(records)
    assert cut.counts["response_truncated"] > 0
    assert max(len(c) for c in cut.chosen) <= 14 and max(cut.prompt_len) <= 10
    # a conditioned prompt states the group; ids of chosen and rejected share the prompt
    tagged = encode(records[:1], tokenizer, max_prompt_len=200, max_len=400, conditioning="tag")
    p = tagged.prompt_len[0]
    assert "[gender=" in tokenizer.decode(tagged.chosen[0][:p])
    np.testing.assert_array_equal(tagged.chosen[0][:p], tagged.rejected[0][:p])


def test_epoch_order_is_seeded_and_balances_groups():
    data = random_pairs(10)
    data.group = [0] * 8 + [1] * 2
    a = epoch_order(data, 0, 1, balance_groups=False)
    assert sorted(a.tolist()) == list(range(10))
    assert np.array_equal(a, epoch_order(data, 0, 1, balance_groups=False))
    assert not np.array_equal(a, epoch_order(data, 1, 1, balance_groups=False))
    balanced = epoch_order(data, 0, 1, balance_groups=True)
    groups = np.asarray(data.group)[balanced]
    assert groups[::2].tolist() == [0] * 8 and groups[1::2].tolist() == [1] * 8


def test_layouts_train_to_the_same_losses(tiny_tokenizer, tmp_path, caplog):

    from jaxalign.algos.dpo import train

    prefs = write_learnable_prefs(tmp_path / "p.jsonl")
    losses = {}
    for name, extra in (
        ("shared", []),
        ("pairs", ["data.layout=pairs"]),
        ("packed", ["data.pack_len=128"]),
    ):
        cfg = tiny_config(
            tiny_tokenizer, prefs, tmp_path / name, "train.steps=3", "dpo.reference=model", *extra
        )
        results = train(cfg, progress=False)
        rows = [json.loads(x) for x in (tmp_path / name / "metrics.jsonl").read_text().splitlines()]
        losses[name] = [r["train/loss"] for r in rows if "train/loss" in r] + [
            results["eval/rewards/margins"]
        ]
        assert results["data/train/pairs"] == 36 and results["data/validation/pairs"] == 12
    assert len(losses["shared"]) == 4
    np.testing.assert_allclose(losses["pairs"], losses["shared"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(losses["packed"], losses["shared"], rtol=1e-4, atol=1e-5)
    # truncation is counted in the results and reported once per split
    caplog.set_level("WARNING", logger="jaxalign")
    cfg = tiny_config(
        tiny_tokenizer,
        prefs,
        tmp_path / "cut",
        "data.max_prompt_len=12",
        "data.max_len=16",
        "train.steps=1",
    )
    results = train(cfg, progress=False)
    assert results["data/train/prompt_truncated"] == 36
    assert results["data/train/response_truncated"] > 0
    assert any(
        "(train), 36 pairs: prompt truncated 36" in r.getMessage()
        and "data.max_len=16" in r.getMessage()
        for r in caplog.records
    )


def test_reference_in_compute_dtype_gives_identical_log_probs():
    from jaxalign.train.dpo import frozen_reference

    cfg = ModelConfig(
        **{**SMALL, "family": "qwen2", "attention_bias": True, "tie_word_embeddings": True}
    )
    model = build(cfg, random_tensors(cfg, seed=5, scale=0.3), dtype=jnp.bfloat16)
    graphdef, params = nnx.split(model)
    frozen = frozen_reference(params, model.dtype)
    assert {x.dtype for x in jax.tree.leaves(frozen)} == {jnp.dtype(jnp.bfloat16)}
    batch = jax.tree.map(jnp.asarray, collate(random_pairs(4), range(4), BUCKETS, 0, None))
    a = pair_logps(nnx.merge(graphdef, params), batch, chunk=8)[0]
    b = pair_logps(nnx.merge(graphdef, frozen), batch, chunk=8)[0]
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))

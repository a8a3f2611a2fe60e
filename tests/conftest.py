"""Shared fixtures: one default simulated survey per test session; 8 simulated CPU devices."""

from __future__ import annotations

import os
from pathlib import Path

# Before jax is imported anywhere: sharding tests run on 8 simulated CPU devices.
os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest

from jaxalign.config import RatingsConfig, SimulateConfig
from jaxalign.models.config import ModelConfig
from jaxalign.survey.readers import load_ratings
from jaxalign.survey.simulate import write_simulation


@pytest.fixture(scope="session")
def survey_dir(tmp_path_factory):
    """The default survey (1,095 raters), simulated once and written to disk."""
    out = tmp_path_factory.mktemp("survey") / "default"
    write_simulation(out, SimulateConfig(), RatingsConfig())
    return out


@pytest.fixture(scope="session")
def ratings(survey_dir):
    """The default survey's ratings after validation and attention exclusion."""
    frame, _ = load_ratings(survey_dir / "ratings.parquet")
    return frame


@pytest.fixture(scope="session")
def tiny_tokenizer(tmp_path_factory):
    """A real byte-level BPE tokenizer (400 tokens, ChatML template) trained on the item bank: fast tests."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from jaxalign.survey.itembank import QUESTIONS

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([text for q in QUESTIONS for text in q], trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|pad|>"
    )
    fast.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
    )
    out = tmp_path_factory.mktemp("tokenizer")
    fast.save_pretrained(out)
    return out


TINY_CPU = Path(__file__).resolve().parent.parent / "configs" / "train" / "tiny_cpu.yaml"
# A tiny qwen3-like model with every optional parameter kind: q/k/v/o biases, q/k norms and
# an untied output head (scan, LoRA and export tests).
QWEN3_BIASED = ModelConfig(
    family="qwen3",
    vocab_size=97,
    hidden_size=32,
    intermediate_size=48,
    num_layers=3,
    num_heads=4,
    num_kv_heads=2,
    head_dim=8,
    attention_bias=True,
    o_bias=True,
    qk_norm=True,
    eos_token_id=(1,),
)


def tiny_config(tokenizer, prefs, run_dir, *extra):
    """The tiny CPU training config on the test tokenizer and a small preference file."""
    from jaxalign.config import load_config

    return load_config(
        TINY_CPU,
        [
            f"model.tokenizer={tokenizer}",
            f"data.prefs={prefs}",
            f"train.run_dir={run_dir}",
            "data.buckets=[32,64,96,128]",
            "data.max_prompt_len=40",
            "data.max_len=64",
            "data.batch_size=8",
            "train.async_checkpoints=false",
            "train.mesh_devices=1",
            *extra,
        ],
    )


def write_learnable_prefs(path, n_topics: int = 12, variants: int = 4):
    """A preference file whose chosen/rejected differ by a learnable style; 1 in 4 topics held out."""
    import json

    topics = [
        "cooking",
        "gardening",
        "chess",
        "the weather",
        "a job interview",
        "football",
        "a birthday",
        "the library",
        "a museum",
        "trains",
        "music lessons",
        "painting",
        "hiking",
        "the beach",
    ]
    with open(path, "w") as fh:
        qid = 0
        for t, topic in enumerate(topics[:n_topics]):
            for v in range(variants):
                qid += 1
                fh.write(
                    json.dumps(
                        {
                            "question_id": str(qid),
                            "prompt": f"Advice about {topic}, please ({v})?",
                            "chosen": f"Yes, gladly: enjoy {topic}.",
                            "rejected": f"No. Not my problem, {topic}.",
                            "weight": 1.0,
                            "soft_label": 1.0,
                            "group": "gender=female" if v % 2 else "gender=male",
                            "split": "validation" if t % 4 == 0 else "train",
                        }
                    )
                    + "\n"
                )
    return path

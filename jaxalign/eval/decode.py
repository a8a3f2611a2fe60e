"""Replies of a model to evaluation prompts: greedy plus `eval.num_samples` samples.

Decoding k (0 = greedy, 1..S = samples at eval.temperature / eval.top_p) draws with the key
fold_in(key(eval.seed), k), so a sample does not change when more samples are asked for.
Prompts are sorted by token length and generated in chunks of eval.batch_size, so each chunk
pads to a small length bucket and the Sampler reuses compiled programs across chunks.
Base-model replies are cached on disk under a hash of (model spec, rendered prompts, decoding):
every run tuned from the same base model on the same prompts reads them instead of decoding.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jax
import numpy as np

from jaxalign.errors import JaxalignError


def decoding(ecfg) -> dict:
    """The decoding settings that determine the replies."""
    return {
        "num_samples": ecfg.num_samples,
        "temperature": ecfg.temperature,
        "top_p": ecfg.top_p,
        "max_new_tokens": ecfg.max_new_tokens,
        "seed": ecfg.seed,
    }


def render_ids(tokenizer, prompts, conditioning: str) -> list[list[int]]:
    """Chat-template token ids per prompt (generation prompt added)."""
    from jaxalign.data.chat import render

    return [
        tokenizer(render(tokenizer, p.text, None, conditioning, p.group), add_special_tokens=False)[
            "input_ids"
        ]
        for p in prompts
    ]


def cache_key(model_spec: dict, ids: list[list[int]], ecfg) -> str:
    """24 hex digits of SHA-256 over (model spec, prompt token ids, decoding)."""
    blob = json.dumps([model_spec, ids, decoding(ecfg)], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


def _sample_seed(seed: int, k: int) -> int:
    """An int seed for decoding k derived as fold_in(key(seed), k)."""
    data = jax.random.key_data(jax.random.fold_in(jax.random.key(seed), k))
    return int(np.asarray(data).ravel()[-1] % (2**31 - 1))


def sampler_for(model, tokenizer):
    """A Sampler for `model`; `use(sampler, other)` points it at a same-shaped model."""
    from jaxalign.data.chat import eos_ids, pad_id
    from jaxalign.models.sampler import Sampler

    return Sampler(
        model, eos_ids=eos_ids(tokenizer, model.config.eos_token_id), pad_id=pad_id(tokenizer)
    )


def use(sampler, model) -> None:
    """Swap in `model`'s parameters: the compiled programs take them as an argument, so the
    tuned model reuses every program compiled for the base model (same graph)."""
    from flax import nnx

    graphdef, sampler.state = nnx.split(model)
    assert graphdef == sampler.graphdef, "the tuned model's graph differs from the base's"


def generate(sampler, tokenizer, ids, ecfg) -> list[list[dict]]:
    """[P][1 + S] replies {text, n_tokens, truncated} for token-id prompts."""
    stop = sampler.eos_ids
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    out: list[list[dict]] = [[] for _ in ids]
    for k in range(1 + ecfg.num_samples):
        for start in range(0, len(order), ecfg.batch_size):
            chunk = order[start : start + ecfg.batch_size]
            samples = sampler.generate(
                [ids[i] for i in chunk],
                max_new_tokens=ecfg.max_new_tokens,
                greedy=k == 0,
                temperature=ecfg.temperature,
                top_p=ecfg.top_p,
                seed=_sample_seed(ecfg.seed, k),
            )
            for i, toks in zip(chunk, samples.completions()):
                ended = bool(toks) and toks[-1] in stop
                out[i].append(
                    {
                        "text": tokenizer.decode(toks, skip_special_tokens=True).strip(),
                        "n_tokens": len(toks),
                        "truncated": not ended and len(toks) >= ecfg.max_new_tokens,
                    }
                )
    return out


def check_context(model, ids, max_new_tokens: int) -> None:
    """Refuse prompts that with max_new_tokens exceed the model's context."""
    longest, context = max(map(len, ids)), model.config.max_position_embeddings
    if longest + max_new_tokens > context:
        raise JaxalignError(
            f"eval.max_new_tokens {max_new_tokens}: with prompts of up to {longest} tokens "
            f"this exceeds the model's {context}-token context"
        )


def cached(path: Path, make) -> list[list[dict]]:
    """Replies read from `path`, or made by `make()` and written there atomically."""
    from jaxalign.io import staged_files

    if path.is_file():
        try:
            return json.loads(path.read_text(encoding="utf-8"))["replies"]
        except (ValueError, KeyError):
            pass  # a damaged cache entry is recomputed
    replies = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    with staged_files(path) as (tmp,):
        tmp.write_text(json.dumps({"replies": replies}, ensure_ascii=False) + "\n")
    return replies

"""A jitted KV-cache sampler: batched left-padded prompts, greedy / temperature / top-k / top-p.

Batch size, prompt length and the number of new tokens are padded up to buckets, so calls
within a bucket reuse one compiled program; temperature, top-p and the seed are traced
values. Per-step randomness is `fold_in(key, step)`. Returns tokens, the log-probability of
each sampled token under the distribution it was drawn from (after temperature, before
top-k/top-p truncation), and a completion mask (1 up to and including the stop token).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxalign.models.decoder import Decoder, KVCache

BUCKETS = (8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)


def bucket(n: int, sizes=BUCKETS) -> int:
    """The smallest bucket >= n (n itself beyond the largest)."""
    i = bisect.bisect_left(sizes, n)
    return sizes[i] if i < len(sizes) else n


@dataclass
class Samples:
    """Generated tokens [B, N], their log-probs [B, N] and completion mask [B, N] (numpy)."""

    tokens: np.ndarray
    logprobs: np.ndarray
    mask: np.ndarray

    def completions(self) -> list[list[int]]:
        """Token ids per row, up to and including the stop token."""
        return [row[m.astype(bool)].tolist() for row, m in zip(self.tokens, self.mask)]


def filter_logits(logits: jax.Array, top_k: int, top_p: jax.Array) -> jax.Array:
    """Mask logits outside the top-k and outside the top-p nucleus (always keeps the best token)."""
    if top_k > 0:
        kth = jax.lax.top_k(logits, top_k)[0][..., -1:]
        logits = jnp.where(logits < kth, -jnp.inf, logits)
    order = jnp.argsort(-logits, axis=-1)
    sorted_logits = jnp.take_along_axis(logits, order, axis=-1)
    probs = jax.nn.softmax(sorted_logits, axis=-1)
    before = jnp.cumsum(probs, axis=-1) - probs  # mass strictly before each token
    keep_sorted = (before < top_p) | (jnp.arange(logits.shape[-1]) == 0)
    keep = (
        jnp.zeros_like(keep_sorted).at[jnp.arange(logits.shape[0])[:, None], order].set(keep_sorted)
    )
    return jnp.where(keep, logits, -jnp.inf)


def sample_step(logits, key, greedy: bool, temperature, top_k: int, top_p):
    """(token [B], log-prob [B]) from last-position logits [B, V]."""
    scaled = logits / jnp.maximum(temperature, 1e-6)
    logp = jax.nn.log_softmax(scaled if not greedy else logits, axis=-1)
    if greedy:
        token = jnp.argmax(logits, axis=-1)
    else:
        token = jax.random.categorical(key, filter_logits(scaled, top_k, top_p), axis=-1)
    return token.astype(jnp.int32), jnp.take_along_axis(logp, token[:, None], axis=-1)[:, 0]


def prefill(model, tokens, valid, max_new: int, cache_dtype):
    """(cache with room for `max_new` more tokens, last logits [B, V], next positions [B])."""
    b, p = tokens.shape
    cache = KVCache.empty(model.config, b, p + max_new, cache_dtype)
    positions = jnp.maximum(jnp.cumsum(valid, axis=1) - 1, 0).astype(jnp.int32)
    hidden, cache = model.hidden(tokens, positions, valid.astype(jnp.int32), cache)
    return cache, model.logits(hidden[:, -1]), positions[:, -1] + 1


def decode(model, cache, logits, next_pos, key, max_new: int, eos_ids, pad_id: int, opts: dict):
    """Sample up to `max_new` tokens per row from `logits` on; step keys are fold_in(key, step).

    `opts`: greedy, temperature, top_k, top_p. Returns tokens, log-probs, mask [B, max_new].
    """
    b = logits.shape[0]
    eos = jnp.asarray(tuple(eos_ids) or (-1,), jnp.int32)
    out_tokens = jnp.full((b, max_new), pad_id, jnp.int32)
    out_logp = jnp.zeros((b, max_new), jnp.float32)
    out_mask = jnp.zeros((b, max_new), jnp.int32)
    done = jnp.zeros((b,), bool)

    def cond(carry):
        step, *_, done = carry
        return (step < max_new) & ~jnp.all(done)

    def body(carry):
        step, cache, logits, pos, toks, logps, mask, done = carry
        token, logp = sample_step(logits, jax.random.fold_in(key, step), **opts)
        live = ~done
        token = jnp.where(live, token, pad_id)
        toks = toks.at[:, step].set(token)
        logps = logps.at[:, step].set(jnp.where(live, logp, 0.0))
        mask = mask.at[:, step].set(live.astype(jnp.int32))
        done = done | jnp.isin(token, eos)
        hidden, cache = model.hidden(
            token[:, None], pos[:, None], jnp.ones((b, 1), jnp.int32), cache
        )
        return step + 1, cache, model.logits(hidden[:, -1]), pos + 1, toks, logps, mask, done

    carry = (jnp.int32(0), cache, logits, next_pos, out_tokens, out_logp, out_mask, done)
    _, _, _, _, toks, logps, mask, _ = jax.lax.while_loop(cond, body, carry)
    return toks, logps, mask


def tile_cache(cache: KVCache, g: int) -> KVCache:
    """Each row's cache repeated `g` times, rows prompt-major (row i*g + j is a copy of row i)."""
    return KVCache(
        jnp.repeat(cache.k, g, axis=1),
        jnp.repeat(cache.v, g, axis=1),
        jnp.repeat(cache.valid, g, axis=0),
        cache.index,
    )


def make_rollout(
    graphdef,
    *,
    num_generations: int,
    max_new: int,
    top_k: int,
    eos_ids,
    pad_id,
    cache_dtype,
    traces=None,
):
    """jit(params, tokens [P, L], valid [P, L], key, temperature, top_p) -> tokens, log-probs,
    mask [P * G, max_new]: one prefill per left-padded prompt, its KV cache tiled G times.

    The parameters are a traced argument (no copy, one program for every step); rows are
    prompt-major (rows i*G .. i*G+G-1 come from prompt i). `traces` (a Counter) counts traces.
    """

    def run(params, tokens, valid, key, temperature, top_p):
        if traces is not None:
            traces["rollout"] += 1
        model = nnx.merge(graphdef, params)
        cache, logits, next_pos = prefill(model, tokens, valid, max_new, cache_dtype)
        g = num_generations
        cache = tile_cache(cache, g)
        logits, next_pos = jnp.repeat(logits, g, axis=0), jnp.repeat(next_pos, g, axis=0)
        opts = dict(greedy=False, temperature=temperature, top_k=top_k, top_p=top_p)
        return decode(model, cache, logits, next_pos, key, max_new, eos_ids, pad_id, opts)

    return jax.jit(run)


class Sampler:
    """Generate from a Decoder; one compiled program per (batch, prompt, new-token) bucket."""

    def __init__(self, model: Decoder, eos_ids=(), pad_id: int = 0, cache_dtype=None):
        self.graphdef, self.state = nnx.split(model)
        self.config = model.config
        self.eos_ids = tuple(int(e) for e in eos_ids) or tuple(model.config.eos_token_id)
        self.pad_id = int(pad_id)
        self.cache_dtype = cache_dtype or model.dtype
        self.traces = 0  # incremented each time a program is traced (compiled)
        self._run = jax.jit(self._generate, static_argnames=("max_new", "greedy", "top_k"))

    def _generate(
        self,
        state,
        tokens,
        valid,
        key,
        temperature,
        top_p,
        *,
        max_new: int,
        greedy: bool,
        top_k: int,
    ):
        """Prefill the prompt, then decode up to `max_new` tokens in a while loop."""
        self.traces += 1
        model = nnx.merge(self.graphdef, state)
        cache, logits, next_pos = prefill(model, tokens, valid, max_new, self.cache_dtype)
        opts = dict(greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p)
        return decode(model, cache, logits, next_pos, key, max_new, self.eos_ids, self.pad_id, opts)

    def generate(
        self,
        prompts: list[list[int]],
        *,
        max_new_tokens: int = 64,
        greedy: bool = False,
        temperature: float = 1.0,
        top_k: int = 0,
        top_p: float = 1.0,
        seed: int = 0,
    ) -> Samples:
        """Generate for token-id prompts; rows are left-padded to a shared bucketed length."""
        if not prompts or any(len(p) == 0 for p in prompts):
            raise ValueError("every prompt needs at least one token")
        n = len(prompts)
        b = bucket(n, BATCH_BUCKETS)
        p = bucket(max(len(x) for x in prompts))
        new = bucket(max_new_tokens)
        tokens = np.full((b, p), self.pad_id, np.int32)
        valid = np.zeros((b, p), bool)
        for i, prompt in enumerate(list(prompts) + [prompts[0]] * (b - n)):
            tokens[i, p - len(prompt) :] = prompt
            valid[i, p - len(prompt) :] = True
        toks, logps, mask = self._run(
            self.state,
            jnp.asarray(tokens),
            jnp.asarray(valid),
            jax.random.key(seed),
            jnp.float32(temperature),
            jnp.float32(top_p),
            max_new=new,
            greedy=greedy,
            top_k=int(top_k),
        )
        toks, logps, mask = (np.asarray(x)[:n, :max_new_tokens] for x in (toks, logps, mask))
        return Samples(toks, logps, mask)

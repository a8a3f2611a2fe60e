"""GRPO rollouts on the host side: prompts, their order, one rollout buffer, and its checkpoint form.

Rollout r samples prompts `r*P .. r*P+P-1` of an endless stream of seeded permutations with
the key `fold_in(key(grpo.seed), r)`, so a rollout is a pure function of (parameters, r).
The buffer (rows, masks, advantages, old/reference log-probs, rollout metrics) is saved in
every checkpoint taken between a rollout's learner steps, which makes a resume exact.
"""

from __future__ import annotations

import base64
import logging
import time

import numpy as np

from jaxalign.data.chat import prompt_messages
from jaxalign.data.records import prompt_key, read_rows
from jaxalign.errors import ConfigError, DataError

log = logging.getLogger("jaxalign")
ARRAYS = ("tokens", "segment_ids", "start", "mask", "advantages", "old_logps", "ref_logps")


def read_prompts(path: str, split: str = "train") -> list:
    """Distinct prompts (strings or message lists) of a JSONL/Parquet file in `split`: "train"
    (records without a split too) or "validation" (held out, may be empty)."""
    if not path:
        raise ConfigError(
            'grpo.prompts is not set: give a JSONL of {"prompt": ...} lines or a `prefs build` '
            "file (grpo.prompts=PATH)"
        )
    out, seen = [], set()
    for where, row in read_rows(path, "prompt file (grpo.prompts)"):
        if not isinstance(row, dict) or "prompt" not in row:
            raise DataError(f"{where}: a record needs a 'prompt' field")
        if row.get("split", "train") != split:
            continue
        prompt = row["prompt"]
        if not (isinstance(prompt, str) and prompt.strip()) and not (
            isinstance(prompt, list) and prompt and all(isinstance(m, dict) for m in prompt)
        ):
            raise DataError(f"{where}: 'prompt' must be a non-empty string or a message list")
        key = prompt_key(prompt)
        if key not in seen:
            seen.add(key)
            out.append(prompt)
    if not out and split == "train":
        raise DataError(f"{path}: no training prompts (every record is validation/test)")
    return out


def decode(tokenizer, toks, cmask, eos_ids) -> list[str]:
    """Completion texts: the sampled tokens up to the stop token, special tokens dropped."""
    return [
        tokenizer.decode(row[(m > 0) & ~np.isin(row, eos_ids)], skip_special_tokens=True)
        for row, m in zip(toks, cmask)
    ]


def prompt_text(prompt) -> str:
    """What reward functions see as the prompt: the string, or the last user turn's content."""
    if isinstance(prompt, str):
        return prompt
    users = [m.get("content", "") for m in prompt if m.get("role") == "user"]
    return str(users[-1] if users else prompt[-1].get("content", ""))


def encode_prompts(prompts: list, tokenizer, max_len: int, template_kwargs: dict):
    """(token ids per prompt, keeping the last `max_len`; number of prompts cut)."""
    ids, cut = [], 0
    for prompt in prompts:
        text = tokenizer.apply_chat_template(
            prompt_messages(prompt), add_generation_prompt=True, tokenize=False, **template_kwargs
        )
        row = tokenizer(text, add_special_tokens=False)["input_ids"]
        cut += len(row) > max_len
        ids.append(row[-max_len:])
    return ids, cut


def prompt_indices(n: int, per_rollout: int, r: int, seed: int) -> np.ndarray:
    """Prompt indices of rollout r: the next `per_rollout` of seeded per-epoch permutations."""
    out: list[int] = []
    pos = r * per_rollout
    while len(out) < per_rollout:
        epoch, offset = divmod(pos, n)
        perm = np.random.default_rng([seed, epoch]).permutation(n)
        take = perm[offset : offset + per_rollout - len(out)]
        out.extend(int(i) for i in take)
        pos += len(take)
    return np.asarray(out, np.int64)


def left_padded(rows: list[list[int]], width: int, pad: int):
    """(tokens [N, width], valid [N, width]) with each row right-aligned."""
    tokens = np.full((len(rows), width), pad, np.int32)
    valid = np.zeros((len(rows), width), np.int32)
    for i, row in enumerate(rows):
        tokens[i, width - len(row) :] = row
        valid[i, width - len(row) :] = 1
    return tokens, valid


def learner_rows(prompt_tokens, prompt_valid, toks, cmask, eos_ids, mask_truncated: bool, pad=0):
    """Right-padded learner rows `[prompt | completion | pad]` from the sampler's left-padded
    prompts, the completions' start, their loss mask, and which completions ended with EOS."""
    n, p = prompt_tokens.shape
    c = toks.shape[1]
    lens = prompt_valid.sum(axis=1).astype(np.int32)
    tokens = np.full((n, p + c), pad, np.int32)
    seg = np.zeros((n, p + c), np.int32)
    for i, k in enumerate(lens):
        tokens[i, :k], tokens[i, k : k + c] = prompt_tokens[i, p - k :], toks[i]
        seg[i, :k], seg[i, k : k + c] = 1, cmask[i]
    ended = (np.isin(toks, eos_ids) & (cmask > 0)).any(axis=1)
    mask = cmask.astype(np.float32)
    if mask_truncated:
        mask = mask * ended[:, None]  # TRL: a completion cut at the length cap is not learned
    return {"tokens": tokens, "segment_ids": seg, "start": lens, "mask": mask}, ended


def completion_metrics(cmask, ended) -> dict[str, float]:
    """TRL's completions/* metrics of one rollout."""
    lengths = cmask.sum(axis=1).astype(np.float64)
    term = lengths[ended]
    out = {
        "completions/mean_length": float(lengths.mean()),
        "completions/min_length": float(lengths.min()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": float(1.0 - ended.mean()),
    }
    for name, fn in (("mean", np.mean), ("min", np.min), ("max", np.max)):
        out[f"completions/{name}_terminated_length"] = float(fn(term)) if term.size else 0.0
    return out


def warn_unscorable(rewards: np.ndarray, r: int) -> None:
    """Warn when completions have no reward at all (they get advantage 0, as in TRL)."""
    lost = int(np.isnan(rewards).all(axis=1).sum())
    if lost:
        log.warning(
            "rollout %d: %d of %d completions have only NaN rewards (not scorable); their "
            "advantage is 0",
            r,
            lost,
            len(rewards),
        )


class Timer:
    """Seconds since the last `lap()` (rollout, rewards and log-prob phases)."""

    def __init__(self):
        self.t = time.perf_counter()

    def lap(self) -> float:
        """Seconds since construction or the previous lap."""
        now = time.perf_counter()
        seconds, self.t = now - self.t, now
        return seconds


def encode_buffer(buffer: dict | None) -> dict | None:
    """A rollout buffer as JSON (arrays as base64 bytes: exact, compact)."""
    if buffer is None:
        return None
    arrays = {
        k: {"dtype": str(v.dtype), "shape": list(v.shape), "b64": base64.b64encode(v).decode()}
        for k, v in buffer.items()
        if k in ARRAYS
    }
    return {"arrays": arrays, "metrics": buffer["metrics"], "rollout": buffer["rollout"]}


def decode_buffer(data: dict | None) -> dict | None:
    """The inverse of `encode_buffer`."""
    if not data:
        return None
    out = {
        k: np.frombuffer(base64.b64decode(v["b64"]), v["dtype"]).reshape(v["shape"]).copy()
        for k, v in data["arrays"].items()
    }
    return {**out, "metrics": dict(data["metrics"]), "rollout": int(data["rollout"])}

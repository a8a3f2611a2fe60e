"""Preference records (from `prefs build`) -> tokenized pairs -> Grain batches [B, 2, T].

Each record is rendered with the model's chat template: the prompt (optionally stating the
rater group) with a generation prompt, and each response as the assistant turn that follows.
Prompts keep their last `max_prompt_len` tokens; responses are cut to fit `max_len`; pairs
left with an empty response are dropped and counted. Batches are padded to a length bucket,
so training compiles once per bucket. Order is a pure function of the seed (optionally
balanced across rater groups), and the Grain iterator state is saved with checkpoints.
"""

from __future__ import annotations

import bisect
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from jaxalign.errors import DataError

REQUIRED = ("prompt", "chosen", "rejected")


def read_records(path: str | Path, split: str | None) -> list[dict]:
    """Records of one split from a `prefs build` JSONL file; errors name the file and line."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: preference file not found")
    records = []
    text = path.read_bytes()
    if not text.strip():
        raise DataError(f"{path}: preference file is empty")
    for lineno, line in enumerate(text.decode("utf-8", errors="strict").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}: line {lineno}: invalid JSON ({err.msg})") from None
        missing = [k for k in REQUIRED if not isinstance(record.get(k), str)]
        if missing:
            raise DataError(
                f"{path}: line {lineno}: missing or non-text field(s) {', '.join(missing)}"
            )
        if split is None or record.get("split", "train") == split:
            record["_line"] = lineno
            records.append(record)
    return records


def group_statement(group: str) -> str:
    """Plain-language statement of a rater group expression."""
    if group in ("", "all"):
        return "Answer as preferred by raters overall."
    return f"Answer as preferred by raters with {group.replace(',', ', ').replace('=', ': ')}."


def render(tokenizer, prompt: str, response: str | None, conditioning: str, group: str) -> str:
    """Chat-template text of the prompt (response None: with generation prompt) or prompt + response."""
    user = f"[{group}] {prompt}" if conditioning == "tag" else prompt
    messages = (
        [{"role": "system", "content": group_statement(group)}]
        if conditioning == "system_prompt"
        else []
    )
    messages.append({"role": "user", "content": user})
    if response is None:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    messages.append({"role": "assistant", "content": response})
    return tokenizer.apply_chat_template(messages, tokenize=False)


@dataclass
class Encoded:
    """Tokenized pairs plus what truncation did to them."""

    chosen: list[np.ndarray] = field(default_factory=list)  # prompt + response token ids
    rejected: list[np.ndarray] = field(default_factory=list)
    prompt_len: list[int] = field(default_factory=list)
    weight: list[float] = field(default_factory=list)
    soft_label: list[float] = field(default_factory=list)
    group: list[int] = field(default_factory=list)
    groups: list[str] = field(default_factory=list)
    counts: dict = field(
        default_factory=lambda: {
            "pairs": 0,
            "prompt_truncated": 0,
            "response_truncated": 0,
            "dropped_empty_response": 0,
        }
    )

    def __len__(self) -> int:
        return len(self.chosen)

    def fingerprint(self) -> str:
        """Hash of the token ids, weights and labels (keys reference-log-prob caches)."""
        digest = hashlib.sha256()
        for c, r, w, s in zip(self.chosen, self.rejected, self.weight, self.soft_label):
            digest.update(c.tobytes() + b"|" + r.tobytes() + f"|{w}|{s};".encode())
        return digest.hexdigest()[:16]


def _response_ids(tokenizer, prompt_text: str, full_text: str) -> list[int]:
    """Token ids of the assistant turn: the full render minus the prompt render."""
    if not full_text.startswith(prompt_text):
        raise DataError(
            "the chat template renders the prompt differently with and without a reply; "
            "cannot split prompt and response"
        )
    return tokenizer(full_text[len(prompt_text) :], add_special_tokens=False)["input_ids"]


def encode(
    records: list[dict],
    tokenizer,
    *,
    max_prompt_len: int,
    max_len: int,
    conditioning: str,
    source: str = "",
) -> Encoded:
    """Tokenize records; truncate; drop pairs whose responses are cut away entirely."""
    out = Encoded()
    for record in records:
        group = str(record.get("group", "all"))
        if group not in out.groups:
            out.groups.append(group)
        prompt_text = render(tokenizer, record["prompt"], None, conditioning, group)
        prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
        if len(prompt) > max_prompt_len:
            prompt = prompt[-max_prompt_len:]
            out.counts["prompt_truncated"] += 1
        room = max_len - len(prompt)
        pair = []
        for key in ("chosen", "rejected"):
            ids = _response_ids(
                tokenizer,
                prompt_text,
                render(tokenizer, record["prompt"], record[key], conditioning, group),
            )
            if len(ids) > room:
                ids = ids[: max(room, 0)]
                out.counts["response_truncated"] += 1
            pair.append(ids)
        if not pair[0] or not pair[1]:
            out.counts["dropped_empty_response"] += 1
            continue
        out.chosen.append(np.asarray(prompt + pair[0], np.int32))
        out.rejected.append(np.asarray(prompt + pair[1], np.int32))
        out.prompt_len.append(len(prompt))
        out.weight.append(float(record.get("weight", 1.0)))
        out.soft_label.append(float(record.get("soft_label", 1.0)))
        out.group.append(out.groups.index(group))
    out.counts["pairs"] = len(out)
    if records and not len(out):
        raise DataError(
            f"{source}: every pair was truncated away (max_len={max_len}, "
            f"max_prompt_len={max_prompt_len}); raise data.max_len"
        )
    return out


def bucket_len(n: int, buckets: tuple[int, ...]) -> int:
    """Smallest bucket >= n."""
    i = bisect.bisect_left(buckets, n)
    if i == len(buckets):
        raise DataError(f"sequence of {n} tokens exceeds the largest bucket {buckets[-1]}")
    return buckets[i]


def collate(
    data: Encoded, indices, buckets: tuple[int, ...], pad_id: int, ref_logps: np.ndarray | None
) -> dict:
    """Batch of pairs: tokens/loss_mask/segment_ids/positions [B, 2, T], per-pair fields [B]."""
    indices = list(indices)
    valid = np.array([i >= 0 for i in indices])
    idx = [i if i >= 0 else indices[0] for i in indices]
    t = bucket_len(max(max(len(data.chosen[i]), len(data.rejected[i])) for i in idx), buckets)
    b = len(idx)
    tokens = np.full((b, 2, t), pad_id, np.int32)
    mask = np.zeros((b, 2, t), np.float32)
    segments = np.zeros((b, 2, t), np.int32)
    for row, i in enumerate(idx):
        for side, seq in enumerate((data.chosen[i], data.rejected[i])):
            tokens[row, side, : len(seq)] = seq
            mask[row, side, data.prompt_len[i] : len(seq)] = 1.0
            segments[row, side, : len(seq)] = 1
    batch = {
        "tokens": tokens,
        "loss_mask": mask,
        "segment_ids": segments,
        "positions": np.broadcast_to(np.arange(t, dtype=np.int32), (b, 2, t)).copy(),
        "weights": np.array([data.weight[i] for i in idx], np.float32) * valid,
        "soft_labels": np.array([data.soft_label[i] for i in idx], np.float32),
        "groups": np.array([data.group[i] for i in idx], np.int32),
        "valid": valid.astype(np.float32),
        "index": np.array(idx, np.int32),
    }
    if ref_logps is not None:
        batch["ref_logps"] = ref_logps[idx].astype(np.float32)
    return batch


def epoch_order(data: Encoded, epoch: int, seed: int, balance_groups: bool) -> np.ndarray:
    """Example order for one epoch: shuffled, or round-robin over groups (smaller groups cycled)."""
    rng = np.random.default_rng([seed, epoch])
    if not balance_groups or len(data.groups) < 2:
        return rng.permutation(len(data))
    groups = np.asarray(data.group)
    per_group = [rng.permutation(np.flatnonzero(groups == g)) for g in range(len(data.groups))]
    longest = max(len(p) for p in per_group)
    return np.array([p[k % len(p)] for k in range(longest) for p in per_group if len(p)])


def train_dataset(
    data: Encoded,
    *,
    batch_size: int,
    steps: int,
    seed: int,
    balance_groups: bool,
    buckets: tuple[int, ...],
    pad_id: int,
    ref_logps: np.ndarray | None = None,
):
    """A Grain MapDataset of `steps` training batches (deterministic, indexable, resumable)."""
    import grain

    order, epoch = [], 0
    while len(order) < steps * batch_size:
        order.extend(epoch_order(data, epoch, seed, balance_groups).tolist())
        epoch += 1
    order = order[: steps * batch_size]
    return grain.MapDataset.source(order).batch(
        batch_size,
        drop_remainder=True,
        batch_fn=lambda idx: collate(data, idx, buckets, pad_id, ref_logps),
    )


def eval_batches(
    data: Encoded,
    *,
    batch_size: int,
    buckets: tuple[int, ...],
    pad_id: int,
    ref_logps: np.ndarray | None = None,
) -> list[dict]:
    """Every example once, in order; the last batch is padded with invalid rows."""
    out = []
    for start in range(0, len(data), batch_size):
        idx = list(range(start, min(start + batch_size, len(data))))
        idx += [-1] * (batch_size - len(idx))
        out.append(collate(data, idx, buckets, pad_id, ref_logps))
    return out

"""Preference records (`data/records.py`) -> tokenized pairs -> Grain batches of rows.

Each record is rendered with the model's chat template (`data/chat.py`): the prompt (optionally
stating the rater group) with a generation prompt, and each response as the assistant turn(s)
that follow.
Prompts keep their last `max_prompt_len` tokens; responses are cut to fit `max_len`; pairs
left with an empty response are dropped and counted. A batch is a fixed number of pairs laid
out as rows (`collate`): by default one row per pair holding the prompt once and both
responses; optionally several pairs packed per row. Rows are padded to a length bucket (or the
pack length), so training compiles once per bucket. Order is a pure function of the seed (optionally
balanced across rater groups), and the Grain iterator state is saved with checkpoints.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
from dataclasses import dataclass, field

import numpy as np

from jaxalign.data.chat import group_statement, render  # noqa: F401  (re-exported)
from jaxalign.data.records import read_records  # noqa: F401  (re-exported)
from jaxalign.errors import DataError


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
            "response_truncated": 0,  # responses (chosen and rejected counted apart)
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
        raise DataError(
            f"a row of {n} tokens exceeds the largest bucket {buckets[-1]}; add a larger "
            "value to data.buckets (data.layout=shared_prompt rows hold the prompt and both "
            "responses)"
        )
    return buckets[i]


# Per-token row arrays of a batch, and their padding values.
ROW_FIELDS = ("tokens", "positions", "segment_ids", "branch", "prev", "loss_mask", "pair")


def units(data: Encoded, i: int, layout: str) -> list[dict[str, np.ndarray]]:
    """The token runs of pair `i` for one row layout, each a dict of ROW_FIELDS (minus pair/segment).

    shared_prompt: one run [prompt | chosen | rejected]; the rejected response restarts its
    positions after the prompt and is predicted from the prompt's last token (`prev`).
    pairs: two runs [prompt | chosen] and [prompt | rejected].
    Branch 1 marks chosen tokens, 2 rejected, 0 the shared prompt; `prev` is the in-run index of
    the hidden state that predicts each token; loss_mask is 1 on response tokens.
    """
    p = data.prompt_len[i]
    chosen, rejected = data.chosen[i], data.rejected[i]
    if layout == "pairs":
        out = []
        for side, seq in ((1, chosen), (2, rejected)):
            n = len(seq)
            out.append(
                {
                    "tokens": seq,
                    "positions": np.arange(n, dtype=np.int32),
                    "branch": np.full(n, side, np.int32),
                    "prev": np.maximum(np.arange(n, dtype=np.int32) - 1, 0),
                    "loss_mask": (np.arange(n) >= p).astype(np.float32),
                }
            )
        return out
    c, r = len(chosen) - p, len(rejected) - p
    n = p + c + r
    prev = np.maximum(np.arange(n, dtype=np.int32) - 1, 0)
    prev[p + c] = p - 1  # the first rejected token follows the prompt, not the chosen reply
    return [
        {
            "tokens": np.concatenate([chosen, rejected[p:]]),
            "positions": np.concatenate(
                [np.arange(p + c, dtype=np.int32), p + np.arange(r, dtype=np.int32)]
            ),
            "branch": np.repeat(np.array([0, 1, 2], np.int32), [p, c, r]),
            "prev": prev,
            "loss_mask": np.repeat(np.array([0, 1, 1], np.float32), [p, c, r]),
        }
    ]


def longest_run(data: Encoded, layout: str) -> int:
    """Tokens of the longest run of `data` in `layout` (what a row must hold)."""
    if not len(data):
        return 0
    if layout == "pairs":
        return max(max(len(c), len(r)) for c, r in zip(data.chosen, data.rejected))
    return max(len(c) + len(r) - p for c, r, p in zip(data.chosen, data.rejected, data.prompt_len))


def row_width(longest: int, pack_len: int, buckets: tuple[int, ...], source: str = "") -> int:
    """Row length for runs of up to `longest` tokens: pack_len, or the smallest bucket."""
    if pack_len and longest > pack_len:
        raise DataError(
            f"{source + ': ' if source else ''}a pair needs {longest} tokens in one row "
            f"but data.pack_len is {pack_len}"
        )
    return pack_len or bucket_len(longest, buckets)


def _rows(lengths: list[int], pack_len: int) -> list[list[int]]:
    """Unit indices per row: one unit a row, or first-fit packing into rows of pack_len."""
    if not pack_len:
        return [[u] for u in range(len(lengths))]
    rows: list[list[int]] = []
    room: list[int] = []
    for u, n in enumerate(lengths):
        for r, free in enumerate(room):
            if n <= free:
                rows[r].append(u)
                room[r] -= n
                break
        else:
            rows.append([u])
            room.append(pack_len - n)
    return rows


def _round_rows(n: int, multiple: int) -> int:
    """Packed row count: the next power of two >= n, then a multiple of `multiple`."""
    n = 1 << max(n - 1, 0).bit_length()
    return -(-n // multiple) * multiple


def collate(
    data: Encoded,
    indices,
    buckets: tuple[int, ...],
    pad_id: int,
    ref_logps: np.ndarray | None,
    *,
    layout: str = "shared_prompt",
    pack_len: int = 0,
    rows_multiple: int = 1,
    process_index: int = 0,
    process_count: int = 1,
) -> dict:
    """One batch of pairs as rows, this process's share of it.

    Per-token fields [R, L] (ROW_FIELDS): `pair` is the batch slot (global across processes)
    of the pair a token belongs to; segment ids number the runs in a row from 1 (0: padding).
    Per-pair fields [B]: weights, soft_labels, groups, valid, index (and ref_logps [B, 2]).
    Indices of -1 are filler slots (valid 0, no tokens). Every process builds the same plan,
    so row counts and lengths agree across processes; each returns only its own slots' rows.
    """
    indices = list(indices)
    if len(indices) % process_count:
        raise DataError(
            f"batch of {len(indices)} pairs does not split over {process_count} processes"
        )
    per = len(indices) // process_count
    plans = [
        _plan(data, indices, layout, range(h * per, (h + 1) * per)) for h in range(process_count)
    ]
    longest = max((len(u["tokens"]) for runs in plans for _, u in runs), default=1)
    width = row_width(longest, pack_len, buckets)
    layouts = [_rows([len(u["tokens"]) for _, u in runs], pack_len) for runs in plans]
    if pack_len:
        n_rows = _round_rows(max(len(rows) for rows in layouts), rows_multiple)
    else:
        n_rows = per * (2 if layout == "pairs" else 1)
    runs, rows = plans[process_index], layouts[process_index]
    out = {
        k: np.zeros((n_rows, width), np.float32 if k == "loss_mask" else np.int32)
        for k in ROW_FIELDS
    }
    out["tokens"][:] = pad_id
    _fill_rows(out, rows, runs)
    mine = indices[process_index * per : (process_index + 1) * per]
    out.update(_pair_fields(data, mine, ref_logps))
    return out


def _plan(data: Encoded, indices: list, layout: str, slots: range) -> list[tuple[int, dict]]:
    """(batch slot, unit) of every run the given slots contribute (filler slots: none)."""
    runs = []
    for slot in slots:
        if indices[slot] >= 0:
            runs += [(slot, u) for u in units(data, indices[slot], layout)]
    return runs


def _fill_rows(out: dict, rows: list, runs: list) -> None:
    """Write each row's runs side by side into the per-token arrays of `out`."""
    for r, members in enumerate(rows):
        start = 0
        for seg, u in enumerate(members, start=1):
            slot, run = runs[u]
            n = len(run["tokens"])
            for k in ("tokens", "positions", "branch", "loss_mask"):
                out[k][r, start : start + n] = run[k]
            out["prev"][r, start : start + n] = run["prev"] + start
            out["segment_ids"][r, start : start + n] = seg
            out["pair"][r, start : start + n] = slot
            start += n


def _pair_fields(data: Encoded, mine: list, ref_logps: np.ndarray | None) -> dict:
    """Per-pair fields [B] of this process's slots (filler slots: index 0, valid and weight 0)."""
    valid = np.array([i >= 0 for i in mine])
    idx = [i if i >= 0 else 0 for i in mine]
    out = dict(
        weights=np.array([data.weight[i] for i in idx], np.float32) * valid,
        soft_labels=np.array([data.soft_label[i] for i in idx], np.float32),
        groups=np.array([data.group[i] for i in idx], np.int32),
        valid=valid.astype(np.float32),
        index=np.array(idx, np.int32),
    )
    if ref_logps is not None:
        out["ref_logps"] = ref_logps[idx].astype(np.float32)
    return out


def epoch_order(data: Encoded, epoch: int, seed: int, balance_groups: bool) -> np.ndarray:
    """Example order for one epoch: shuffled, or round-robin over groups (smaller groups cycled)."""
    rng = np.random.default_rng([seed, epoch])
    if not balance_groups or len(data.groups) < 2:
        return rng.permutation(len(data))
    groups = np.asarray(data.group)
    per_group = [rng.permutation(np.flatnonzero(groups == g)) for g in range(len(data.groups))]
    longest = max(len(p) for p in per_group)
    return np.array([p[k % len(p)] for k in range(longest) for p in per_group if len(p)])


class _Order:
    """The training order as a lazy sequence: example `i` of epoch `i // epoch_len`, computed on
    demand (a run of 10^8 steps needs no index list in memory)."""

    def __init__(self, data: Encoded, total: int, seed: int, balance_groups: bool):
        """`total` indices over epochs of `data`."""
        self.total, self.args = total, (data, seed, balance_groups)
        self.epoch_len = len(epoch_order(data, 0, seed, balance_groups))

    @functools.lru_cache(maxsize=4)  # noqa: B019 - a few epochs per dataset, freed with it
    def _epoch(self, epoch: int) -> np.ndarray:
        """One epoch's order."""
        data, seed, balance = self.args
        return epoch_order(data, epoch, seed, balance)

    def __len__(self) -> int:
        """Number of indices."""
        return self.total

    def __getitem__(self, i: int) -> int:
        """The example at position `i` of the training order."""
        if not 0 <= i < self.total:
            raise IndexError(i)
        return int(self._epoch(i // self.epoch_len)[i % self.epoch_len])


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
    **rows,
):
    """A Grain MapDataset of `steps` training batches (deterministic, indexable, resumable).

    `rows` go to `collate` (layout, pack_len, rows_multiple, process_index, process_count).
    """
    import grain

    order = _Order(data, steps * batch_size, seed, balance_groups)
    return grain.MapDataset.source(order).batch(
        batch_size,
        drop_remainder=True,
        batch_fn=lambda idx: collate(data, idx, buckets, pad_id, ref_logps, **rows),
    )


def eval_batches(
    data: Encoded,
    *,
    batch_size: int,
    buckets: tuple[int, ...],
    pad_id: int,
    ref_logps: np.ndarray | None = None,
    **rows,
) -> list[dict]:
    """Every example once, in order; the last batch is padded with filler slots."""
    out = []
    for start in range(0, len(data), batch_size):
        idx = list(range(start, min(start + batch_size, len(data))))
        idx += [-1] * (batch_size - len(idx))
        out.append(collate(data, idx, buckets, pad_id, ref_logps, **rows))
    return out

"""Training data of the decoder kind: rating histograms and preference pairs per head, and tokens.

A text is one (prompt, response) pair as the raters saw it (English or German). For every
head (group, dimension) it carries the histogram of the group's ratings 1-5 of its response
(the ordinal loss) and the group's mean rating (the pairs). A Bradley-Terry pair is two texts
of the same prompt (same question, same language) whose responses' group mean ratings differ
by more than `reward.decoder.min_gap`: the higher is `chosen`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from jaxalign.rewards.heads import Corpus
from jaxalign.survey import schema

SCALE = 5  # ratings 1..5


@dataclass
class Examples:
    """Texts with per-head rating histograms [T, H, 5] and means [T, H] (NaN: unrated)."""

    prompts: list[str]
    texts: list[str]
    questions: np.ndarray  # [T] question id per text
    text_response: np.ndarray  # [T] response index per text
    hist: np.ndarray
    mean: np.ndarray


def text_prompts(corpus: Corpus) -> list[str]:
    """The prompt each distinct text was shown with (its language's question text)."""
    first = corpus.frame.drop_duplicates(["response_id", "response"])
    prompt = {
        (str(r), t): p for r, t, p in zip(first["response_id"], first["response"], first["prompt"])
    }
    return [
        prompt[(str(corpus.responses[r]), t)] for r, t in zip(corpus.text_response, corpus.texts)
    ]


def examples(corpus: Corpus, rows: np.ndarray, masks: dict, heads: list[tuple[str, str]]):
    """Examples from the ratings rows selected by `rows`, for heads [(group, dimension)]."""
    frame = corpus.frame
    r = _response_index(corpus)
    dims = frame["dimension"].map({k: i for i, k in enumerate(schema.DIMENSIONS)}).to_numpy()
    rating = frame["rating"].to_numpy(int) - 1
    hist = np.zeros((len(corpus.responses), len(heads), SCALE))
    for h, (group, dim) in enumerate(heads):
        sel = rows & masks[group] & (dims == schema.DIMENSIONS.index(dim))
        np.add.at(hist[:, h], (r[sel], rating[sel]), 1.0)
    counts = hist.sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = (hist * np.arange(1, SCALE + 1)).sum(-1) / counts
    t = corpus.text_response
    mean = np.where(counts > 0, mean, np.nan)
    return Examples(text_prompts(corpus), corpus.texts, corpus.questions[t], t, hist[t], mean[t])


def _response_index(corpus: Corpus) -> np.ndarray:
    """Response index of every ratings row."""
    import pandas as pd

    return pd.Index(corpus.responses).get_indexer(corpus.frame["response_id"])


def pairs(ex: Examples, keep: np.ndarray, min_gap: float) -> np.ndarray:
    """[P, 3] (chosen text, rejected text, head) among texts in `keep` sharing a prompt."""
    out = []
    by_prompt: dict[str, list[int]] = {}
    for i in np.flatnonzero(keep):
        by_prompt.setdefault(ex.prompts[i], []).append(int(i))
    for idx in by_prompt.values():
        for a_pos, a in enumerate(idx):
            for b in idx[a_pos + 1 :]:
                gap = ex.mean[a] - ex.mean[b]  # [H], NaN where either is unrated
                for h in np.flatnonzero(np.abs(np.nan_to_num(gap)) > min_gap):
                    out.append((a, b, h) if gap[h] > 0 else (b, a, h))
    return np.asarray(out, np.int64).reshape(-1, 3)


def buckets(max_len: int) -> list[int]:
    """Padded lengths: powers of two from 16, capped at (and including) max_len."""
    out, n = [], 16
    while n < max_len:
        out.append(n)
        n *= 2
    return [*out, max_len]


def bucket(length: int, max_len: int) -> int:
    """The smallest bucket holding `length` tokens."""
    return next(b for b in buckets(max_len) if b >= min(length, max_len))


def encode(tokenizer, prompts, responses, max_len: int) -> list[list[int]]:
    """Token ids of each (prompt, response) in the chat template, first max_len kept."""
    from jaxalign.data.chat import render

    texts = [render(tokenizer, p, r) for p, r in zip(prompts, responses)]
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
    return [list(x[:max_len]) or [0] for x in ids]


def pad(ids: list[list[int]], rows: int, length: int, pad_id: int):
    """(tokens, mask) [rows, length] int32, right-padded; rows beyond len(ids) are one pad token."""
    tokens = np.full((rows, length), pad_id, np.int32)
    mask = np.zeros((rows, length), np.int32)
    for i, x in enumerate(ids):
        tokens[i, : len(x)] = x
        mask[i, : len(x)] = 1
    mask[len(ids) :, 0] = 1
    return tokens, mask

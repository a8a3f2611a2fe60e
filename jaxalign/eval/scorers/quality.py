"""Quality figures of replies, whatever the dimension: empty, truncated, distinct-2, words and
wrong language (the reply is not in the prompt's language).

Language is guessed from common function words (EN vs DE): enough to flag a German prompt
answered in English, not a general language identifier; a reply with no such words counts as
neither wrong nor right (NaN).
"""

from __future__ import annotations

import itertools
import re

import numpy as np

WORD = re.compile(r"\w+", re.UNICODE)
MARKERS = {
    "en": frozenset(
        [
            "the",
            "and",
            "is",
            "are",
            "to",
            "of",
            "in",
            "that",
            "it",
            "you",
            "for",
            "not",
            "with",
            "be",
            "this",
            "can",
            "what",
            "they",
            "have",
        ]
    ),
    "de": frozenset(
        [
            "der",
            "die",
            "das",
            "und",
            "ist",
            "sind",
            "zu",
            "nicht",
            "ein",
            "eine",
            "ich",
            "sie",
            "es",
            "mit",
            "für",
            "auf",
            "den",
            "dem",
            "sich",
        ]
    ),
}
FIGURES = ("empty", "truncated", "distinct_2", "words", "wrong_language")


def words(text: str) -> list[str]:
    """Lower-cased word tokens."""
    return WORD.findall(text.lower())


def language(text: str) -> str | None:
    """'en', 'de' or None (no marker words, or a tie)."""
    toks = words(text)
    counts = {lang: sum(t in m for t in toks) for lang, m in MARKERS.items()}
    best = max(counts, key=counts.get)
    others = [c for lang, c in counts.items() if lang != best]
    return best if counts[best] > max(others) else None


def distinct_2(text: str) -> float:
    """Distinct bigrams / bigrams of one reply (1.0 for fewer than two words)."""
    toks = words(text)
    grams = list(itertools.pairwise(toks))
    return len(set(grams)) / len(grams) if grams else 1.0


def figures(texts, languages, truncated) -> dict[str, np.ndarray]:
    """{figure: [N]} for replies, their prompts' languages and truncation flags."""
    out = {
        "empty": np.array([float(not t.strip()) for t in texts]),
        "truncated": np.asarray(truncated, float),
        "distinct_2": np.array([distinct_2(t) for t in texts]),
        "words": np.array([float(len(words(t))) for t in texts]),
    }
    wrong = []
    for text, want in zip(texts, languages):
        got = language(text)
        wrong.append(np.nan if got is None or want not in MARKERS else float(got != want))
    out["wrong_language"] = np.array(wrong)
    return out

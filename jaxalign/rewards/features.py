"""Text features for the ridge kind: TF-IDF over word n-grams plus a length column.

Tokens are lower-cased runs of letters and digits (any script, so German works as
English does). Rows are L2-normalised TF-IDF vectors (sublinear term frequency, smoothed
idf) with one extra column, `LENGTH_SCALE * log2(words / 30)`, because length is a
driver of perceived helpfulness that normalised TF-IDF would hide.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import numpy as np
from scipy import sparse

TOKEN = re.compile(r"\w+")
LENGTH_SCALE = 0.3
REFERENCE_WORDS = 30


def ngrams(text: str, n: int, words: list[str] | None = None) -> list[str]:
    """Word 1..n-grams of a text (or of its already tokenised `words`)."""
    words = TOKEN.findall(text.lower()) if words is None else words
    out = list(words)
    for k in range(2, n + 1):
        out += [" ".join(words[i : i + k]) for i in range(len(words) - k + 1)]
    return out


class Tfidf:
    """A fitted vocabulary with idf weights; `transform` gives [N, V + 1] CSR rows."""

    def __init__(self, vocab: list[str], idf: np.ndarray, n: int):
        """Vocabulary (column order), idf per term and the n-gram order."""
        self.vocab, self.idf, self.n = list(vocab), np.asarray(idf, float), n
        self.index = {t: i for i, t in enumerate(self.vocab)}

    @classmethod
    def fit(cls, texts: list[str], n: int) -> Tfidf:
        """Vocabulary of every n-gram in `texts` (sorted) and smoothed idf."""
        df = Counter(t for text in texts for t in set(ngrams(text, n)))
        vocab = sorted(df)
        idf = np.array([math.log((1 + len(texts)) / (1 + df[t])) + 1.0 for t in vocab])
        return cls(vocab, idf, n)

    @property
    def width(self) -> int:
        """Number of columns (terms plus the length column)."""
        return len(self.vocab) + 1

    def transform(self, texts: list[str]) -> sparse.csr_matrix:
        """Rows of normalised TF-IDF and the length column; unknown terms are ignored."""
        data, indices, indptr = [], [], [0]
        for text in texts:
            tokens = TOKEN.findall(text.lower())
            known = [
                (self.index[t], c)
                for t, c in Counter(ngrams(text, self.n, tokens)).items()
                if t in self.index
            ]
            cols = np.fromiter((i for i, _ in known), np.int64, len(known))
            vals = np.fromiter((1.0 + math.log(c) for _, c in known), float, len(known))
            if len(cols):
                vals = vals * self.idf[cols]
                vals /= np.linalg.norm(vals)
            words = max(len(tokens), 1)
            order = np.argsort(cols, kind="stable")
            indices += [*cols[order].tolist(), len(self.vocab)]
            data += [*vals[order].tolist(), LENGTH_SCALE * math.log2(words / REFERENCE_WORDS)]
            indptr.append(len(indices))
        return sparse.csr_matrix(
            (np.array(data, float), np.array(indices, np.int64), np.array(indptr, np.int64)),
            shape=(len(texts), self.width),
        )

    def similarity(self, rows: sparse.csr_matrix, reference: sparse.csr_matrix) -> np.ndarray:
        """Largest cosine similarity (TF-IDF part) of each row to any reference row."""
        a, b = rows[:, :-1], reference[:, :-1]
        if b.shape[0] == 0:
            return np.zeros(rows.shape[0])
        return np.asarray((a @ b.T).max(axis=1).todense()).ravel()

"""A trained rating model directory: save, load, score.

DIR/model.json     kind, heads, config, fold, input hash, feature settings
DIR/vocab.json     the n-gram vocabulary (column order)
DIR/weights.npz    idf [V], coef [V + 1, H], intercept [H]
DIR/texts.json     the training texts (for the out-of-distribution similarity)
DIR/report.json    held-out evaluation per head (rewards/evaluate.py)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jaxalign.errors import DataError
from jaxalign.rewards.features import Tfidf
from jaxalign.rewards.ridge import Linear

SCHEMA = "jaxalign.reward/1"
FILES = ("model.json", "vocab.json", "weights.npz", "texts.json")


def write_model(tmp: Path, meta: dict, vocab: Tfidf, heads: dict[str, Linear], texts: list[str]):
    """Write the model files into the (staged) directory `tmp`."""
    names = sorted(heads)
    coef = np.stack([heads[n].coef for n in names], 1)
    intercept = np.array([heads[n].intercept for n in names])
    meta = {**meta, "schema": SCHEMA, "heads": names, "ngrams": vocab.n}
    meta["alphas_chosen"] = {n: heads[n].alpha for n in names}
    (tmp / "model.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    (tmp / "vocab.json").write_text(json.dumps(vocab.vocab, ensure_ascii=False) + "\n")
    (tmp / "texts.json").write_text(json.dumps(texts, ensure_ascii=False) + "\n")
    with open(tmp / "weights.npz", "wb") as fh:
        np.savez(fh, idf=vocab.idf, coef=coef, intercept=intercept)


class RatingModel:
    """Scores texts on every head: `score(prompts, responses) -> {head: array}` (1-5 scale)."""

    def __init__(self, path: str | Path):
        """Load a model directory; a missing or malformed file is a DataError naming it."""
        self.path = Path(path)
        if not self.path.is_dir():
            raise DataError(f"{self.path}: no such model directory")
        for name in FILES:
            if not (self.path / name).is_file():
                raise DataError(f"{self.path}: not a rating model (missing {name})")
        try:
            self.meta = json.loads((self.path / "model.json").read_text())
            vocab = json.loads((self.path / "vocab.json").read_text())
            texts = json.loads((self.path / "texts.json").read_text())
            with np.load(self.path / "weights.npz") as w:
                idf, self.coef, self.intercept = w["idf"], w["coef"], w["intercept"]
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{self.path}: unreadable rating model: {err}") from None
        if self.meta.get("schema") != SCHEMA or self.coef.shape != (
            len(vocab) + 1,
            len(self.heads),
        ):
            raise DataError(f"{self.path}: model files do not agree (schema or shapes)")
        self.features = Tfidf(vocab, idf, int(self.meta["ngrams"]))
        self.train_rows = self.features.transform(texts)

    @property
    def heads(self) -> list[str]:
        """Head names, e.g. toxicity[all], toxicity[gender=female]."""
        return list(self.meta["heads"])

    def _columns(self, heads) -> list[int]:
        """Column per requested head; an unknown head is a DataError listing those present."""
        heads = self.heads if heads is None else list(heads)
        missing = [h for h in heads if h not in self.heads]
        if missing:
            raise DataError(
                f"{self.path}: no head '{missing[0]}'; this model has {', '.join(self.heads)}"
            )
        return [self.heads.index(h) for h in heads]

    def score(self, prompts, responses, heads=None) -> dict[str, np.ndarray]:
        """Scores per head for each response, clipped to the 1-5 rating scale.

        The ridge kind reads the response text only; prompts are accepted for the interface.
        """
        if prompts is not None and len(prompts) != len(responses):
            raise DataError(f"{len(prompts)} prompts but {len(responses)} responses")
        return self.score_rows(self.features.transform([str(r) for r in responses]), heads)

    def score_rows(self, X, heads=None) -> dict[str, np.ndarray]:
        """`score` on feature rows already computed by `self.features.transform`."""
        cols = self._columns(heads)
        out = np.clip(X @ self.coef[:, cols] + self.intercept[cols], 1.0, 5.0)
        return {self.heads[c]: np.asarray(out[:, i]).ravel() for i, c in enumerate(cols)}

    def similarity(self, responses, X=None) -> np.ndarray:
        """Largest cosine similarity of each response (or feature row of X) to any training text."""
        X = self.features.transform(list(responses)) if X is None else X
        return self.features.similarity(X, self.train_rows)

    def out_of_distribution(self, responses) -> np.ndarray:
        """True where a response is less similar to the training texts than reward.ood_threshold."""
        return self.similarity(responses) < float(self.meta["config"]["ood_threshold"])

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
from jaxalign.rewards.base import SCHEMA, HeadsMixin
from jaxalign.rewards.features import Tfidf
from jaxalign.rewards.ridge import Linear

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


def load_model(path: str | Path):
    """The rating model in directory `path`, of the kind its model.json names."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: no such model directory")
    if not (path / "model.json").is_file():
        raise DataError(f"{path}: not a rating model (missing model.json)")
    try:
        meta = json.loads((path / "model.json").read_text())
    except (OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable rating model: {err}") from None
    if not isinstance(meta, dict) or meta.get("schema") != SCHEMA:
        raise DataError(f"{path}/model.json: not a {SCHEMA} rating model")
    if meta.get("kind") == "decoder":
        from jaxalign.rewards.decoder_model import DecoderRatingModel

        return DecoderRatingModel(path, meta)
    return RatingModel(path)


class RatingModel(HeadsMixin):
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

    def score_records(self, prompts, responses, heads=None):
        """(scores per head, similarity) for `reward score`: features computed once."""
        X = self.features.transform([str(r) for r in responses])
        return self.score_rows(X, heads), self.similarity(responses, X)

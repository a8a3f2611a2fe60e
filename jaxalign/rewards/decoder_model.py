"""A decoder-kind model directory: save, load, score (jittable `score_fn` for GRPO).

DIR/model.json          kind `decoder`, loss, heads, configs, fold, input hash, training metrics
DIR/backbone/           the trained backbone as a HF directory (model.safetensors, config.json,
                        tokenizer files): `jaxalign model info` and transformers can read it
DIR/head.safetensors    head.* (w [D, H], b [H], ordinal thresholds) and calib.* (scale, shift)
DIR/vocab.json, texts.json, ood.npz   TF-IDF vocabulary, training texts and idf: the
                        out-of-distribution similarity, as for the ridge kind
DIR/report.json         held-out evaluation per head (rewards/decoder_run.py)
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from jaxalign.errors import DataError
from jaxalign.rewards.base import SCHEMA, HeadsMixin
from jaxalign.rewards.features import Tfidf

FILES = ("model.json", "backbone/config.json", "head.safetensors", "vocab.json", "texts.json")


def write_decoder(tmp: Path, meta: dict, model, tokenizer, params: dict, texts: list[str]):
    """Write the model files into the (staged) directory `tmp`; `model` gets params' backbone."""
    from flax import nnx

    from jaxalign.models.loading import export_hf
    from jaxalign.models.weights import write_safetensors

    nnx.update(model, params["backbone"])
    export_hf(model, tokenizer, tmp / "backbone", "fp32")
    tensors = {
        f"{part}.{k}": np.asarray(v, np.float32)
        for part in ("head", "calib")
        for k, v in params[part].items()
    }
    write_safetensors(tmp / "head.safetensors", tensors)
    vocab = Tfidf.fit(texts, meta["config"]["ngrams"])
    meta = {**meta, "schema": SCHEMA, "ngrams": vocab.n}
    (tmp / "model.json").write_text(json.dumps(meta, indent=2, ensure_ascii=False) + "\n")
    (tmp / "vocab.json").write_text(json.dumps(vocab.vocab, ensure_ascii=False) + "\n")
    (tmp / "texts.json").write_text(json.dumps(texts, ensure_ascii=False) + "\n")
    with open(tmp / "ood.npz", "wb") as fh:
        np.savez(fh, idf=vocab.idf)


class DecoderRatingModel(HeadsMixin):
    """`score(prompts, responses) -> {head: array}` on the 1-5 scale; `score_fn` for jit."""

    def __init__(self, path: str | Path, meta: dict):
        """Load the backbone, heads and OOD features; a broken directory is one DataError."""
        import jax
        from flax import nnx

        from jaxalign.data.chat import pad_id
        from jaxalign.models.loading import load_pretrained
        from jaxalign.models.weights import read_safetensors
        from jaxalign.rewards.decoder import make_score_fn

        self.path, self.meta = Path(path), meta
        for name in FILES:
            if not (self.path / name).is_file():
                raise DataError(f"{self.path}: not a rating model (missing {name})")
        try:
            model, self.tokenizer = load_pretrained(self.path / "backbone")
            tensors = read_safetensors(self.path / "head.safetensors")
            vocab = json.loads((self.path / "vocab.json").read_text())
            texts = json.loads((self.path / "texts.json").read_text())
            with np.load(self.path / "ood.npz") as f:
                idf = f["idf"]
        except (OSError, ValueError, KeyError) as err:
            raise DataError(f"{self.path}: unreadable rating model: {err}") from None
        graphdef, backbone = nnx.split(model)
        self.params = {"backbone": backbone, "head": {}, "calib": {}}
        for name, value in tensors.items():
            part, key = name.split(".", 1)
            self.params[part][key] = jax.numpy.asarray(value)
        if self.params["head"].get("w") is None or self.params["head"]["w"].shape[1] != len(
            self.heads
        ):
            raise DataError(f"{self.path}: model files do not agree (heads or shapes)")
        dcfg = meta["config"]["decoder"]
        self.max_len, self.score_batch = int(dcfg["max_len"]), int(dcfg["score_batch"])
        self.pad_id = pad_id(self.tokenizer)
        # Pure: (params, tokens [B, T] int32, mask [B, T]) -> [B, H]; parameters are traced.
        self.score_fn = make_score_fn(graphdef, dcfg["loss"])
        self._jitted = jax.jit(self.score_fn)
        self.features = Tfidf(vocab, idf, int(meta["ngrams"]))
        self.train_rows = self.features.transform(texts)

    def encode(self, prompts, responses) -> tuple[np.ndarray, np.ndarray]:
        """(tokens, mask) [N, bucket] right-padded chat-template rows for `score_fn`."""
        from jaxalign.rewards.decoder_data import bucket, encode, pad

        ids = encode(self.tokenizer, prompts, responses, self.max_len)
        length = bucket(max(len(x) for x in ids), self.max_len)
        return pad(ids, len(ids), length, self.pad_id)

    def score(self, prompts, responses, heads=None) -> dict[str, np.ndarray]:
        """Scores per head for each (prompt, response); prompts None: empty prompts."""
        from types import SimpleNamespace

        from jaxalign.rewards.decoder_data import encode
        from jaxalign.rewards.decoder_run import score_blocks

        cols = self._columns(heads)
        responses = [str(r) for r in responses]
        prompts = [""] * len(responses) if prompts is None else [str(p) for p in prompts]
        if len(prompts) != len(responses):
            raise DataError(f"{len(prompts)} prompts but {len(responses)} responses")
        if not responses:
            return {self.heads[c]: np.zeros(0, np.float32) for c in cols}
        ids = encode(self.tokenizer, prompts, responses, self.max_len)
        dcfg = SimpleNamespace(max_len=self.max_len, score_batch=self.score_batch)
        out = score_blocks(self._jitted, self.params, ids, dcfg, self.pad_id)
        return {self.heads[c]: out[:, c] for c in cols}

    def score_records(self, prompts, responses, heads=None):
        """(scores per head, similarity) for `reward score`."""
        return self.score(prompts, responses, heads), self.similarity(responses)

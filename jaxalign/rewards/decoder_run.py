"""Train the decoder kind on a fold's ratings, evaluate it held out, and score blocks of texts.

Held out (report.json), as for the ridge kind but with one model instead of ten: a second
model learns from rater half 0 (hash of reward.seed and rater id) on the questions outside
question fold 0 of reward.cv_folds; its scores of fold 0's texts are compared with half 1's
mean ratings (Spearman per head) and ranked on half 1's preference pairs (TRL's accuracy and
margin). The model written to DIR learns from every rater and question of the fold.
"""

from __future__ import annotations

import jax
import numpy as np

from jaxalign.errors import DataError
from jaxalign.rewards import decoder as dec
from jaxalign.rewards.decoder_data import Examples, bucket, encode, examples, pad, pairs


class Trainer:
    """A backbone, its tokenised corpus and one compiled step, shared by both trainings."""

    def __init__(self, model, tokenizer, corpus, prompts, cfg):
        """Tokenise every text once (padded to one length) and compile nothing yet."""
        from flax import nnx

        from jaxalign.data.chat import pad_id

        self.cfg, self.dcfg = cfg, cfg.reward.decoder
        self.model, self.tokenizer = model, tokenizer
        self.graphdef, self.backbone = nnx.split(model)
        self.pad_id = pad_id(tokenizer)
        self.ids = encode(tokenizer, prompts, corpus.texts, self.dcfg.max_len)
        length = bucket(max(len(x) for x in self.ids), self.dcfg.max_len)
        self.tokens, self.mask = pad(self.ids, len(self.ids), length, self.pad_id)
        self.tx = dec.make_optimizer(self.dcfg)
        self.step = dec.make_step(self.graphdef, self.dcfg.loss, self.tx)
        self.raw = jax.jit(dec.make_raw_fn(self.graphdef))

    def fit(self, ex: Examples, keep: np.ndarray, n_heads: int):
        """(trainable params, per-step metrics) learnt from the texts in `keep`."""
        d, seed = self.dcfg, self.cfg.reward.seed
        hidden = self.model.config.hidden_size
        params = {"backbone": self.backbone, "head": dec.init_head(hidden, n_heads, d.loss, seed)}
        state = {"params": params, "opt_state": self.tx.init(params)}
        if d.loss == "bradley_terry":
            items = pairs(ex, keep, d.min_gap)
            what = f"pairs with a mean-rating gap above reward.decoder.min_gap={d.min_gap}"
        else:
            items = np.flatnonzero(keep & (ex.hist.sum((1, 2)) > 0))
            what = "rated texts"
        if len(items) == 0:
            raise DataError(f"reward train: no {what} to train the decoder kind on")
        history = []
        for idx in dec.batches(len(items), d.batch_size, d.steps, seed):
            if d.loss == "bradley_terry":
                rows = np.concatenate([items[idx, 0], items[idx, 1]])
                target = items[idx, 2].astype(np.int32)
            else:
                rows = items[idx]
                target = ex.hist[rows].astype(np.float32)
            state, metrics = self.step(state, self.tokens[rows], self.mask[rows], target)
            history.append(metrics)
        return state["params"], jax.device_get(history)

    def calibrate(self, params, ex: Examples) -> dict:
        """Least-squares map of raw scores onto the mean ratings per head (Bradley-Terry)."""
        calib = dec.init_calib(ex.mean.shape[1])
        if self.dcfg.loss != "bradley_terry":
            return calib
        raw = score_blocks(self.raw, params, self.ids, self.dcfg, self.pad_id)
        scale, shift = np.ones(raw.shape[1]), np.full(raw.shape[1], 3.0)
        for h in range(raw.shape[1]):
            ok = np.isfinite(ex.mean[:, h])
            x, y = raw[ok, h], ex.mean[ok, h]
            if ok.sum() >= 2 and x.std() > 0:
                scale[h], shift[h] = np.polyfit(x, y, 1)
            elif ok.any():
                scale[h], shift[h] = 0.0, y.mean()
        return {"scale": np.float32(scale), "shift": np.float32(shift)}


def score_blocks(fn, params, ids: list[list[int]], dcfg, pad_id: int) -> np.ndarray:
    """fn(params, tokens, mask) [N, H] over texts in blocks of score_batch rows per length bucket.

    A text is always scored in a block of the same shape (score_batch rows, its own bucket), so
    its score does not depend on which texts share its batch.
    """
    by_bucket: dict[int, list[int]] = {}
    for i, x in enumerate(ids):
        by_bucket.setdefault(bucket(len(x), dcfg.max_len), []).append(i)
    out = None
    for length, members in sorted(by_bucket.items()):
        for start in range(0, len(members), dcfg.score_batch):
            block = members[start : start + dcfg.score_batch]
            tokens, mask = pad([ids[i] for i in block], dcfg.score_batch, length, pad_id)
            values = np.asarray(jax.device_get(fn(params, tokens, mask)))
            if out is None:
                out = np.zeros((len(ids), values.shape[1]), values.dtype)
            out[block] = values[: len(block)]
    return out if out is not None else np.zeros((0, 0), np.float32)


def train_all(trainer: Trainer, corpus, masks, heads) -> tuple[dict, list]:
    """The model of DIR: every rater and question of the fold; (params, per-step metrics)."""
    everything = np.ones(len(corpus.frame), bool)
    ex = examples(corpus, everything, masks, heads)
    params, history = trainer.fit(ex, np.ones(len(ex.texts), bool), len(heads))
    return {**params, "calib": trainer.calibrate(params, ex)}, history


def _response_means(ex: Examples, n: int) -> np.ndarray:
    """[N, H] the group mean rating per response (NaN: unrated)."""
    out = np.full((n, ex.mean.shape[1]), np.nan)
    out[ex.text_response] = ex.mean
    return out


def _pair_metrics(raw: np.ndarray, test: np.ndarray) -> dict:
    """TRL RewardTrainer's metrics on pairs [P, 3] of raw scores [T, H]."""
    if len(test) == 0:
        return {"pairs": 0}
    chosen, rejected = raw[test[:, 0], test[:, 2]], raw[test[:, 1], test[:, 2]]
    both = np.concatenate([chosen, rejected])
    return {
        "pairs": len(test),
        "accuracy": round(float((chosen > rejected).mean()), 4),
        "margin": round(float((chosen - rejected).mean()), 4),
        "min_reward": round(float(both.min()), 4),
        "mean_reward": round(float(both.mean()), 4),
        "max_reward": round(float(both.max()), 4),
    }


def held_out(trainer: Trainer, corpus, masks, heads) -> tuple[dict, dict]:
    """(per-head report entries, TRL metrics over every held-out pair): see the module doc."""
    from jaxalign.rewards.evaluate import head_counts, round4, spearman
    from jaxalign.rewards.heads import head_name, rater_half
    from jaxalign.rewards.ridge import fold_ids

    rc = trainer.cfg.reward
    halves = rater_half(corpus.frame["rater_id"].to_numpy(object), rc.seed)
    qfold = fold_ids(corpus.questions, min(rc.cv_folds, len(set(corpus.questions.tolist()))))
    held_text = qfold[corpus.text_response] == 0
    ex_a, ex_b = (examples(corpus, halves == h, masks, heads) for h in (0, 1))
    n = len(corpus.responses)
    mean_a, mean_b = _response_means(ex_a, n), _response_means(ex_b, n)
    raw, test = None, np.zeros((0, 3), np.int64)
    if rc.decoder.evaluate:
        params, _ = trainer.fit(ex_a, ~held_text, len(heads))
        raw = score_blocks(trainer.raw, params, trainer.ids, rc.decoder, trainer.pad_id)
        test = pairs(ex_b, held_text, rc.decoder.min_gap)
    report = {}
    for h, (group, dim) in enumerate(heads):
        rho = float("nan")
        if raw is not None:
            counts = np.bincount(corpus.text_response, minlength=n)
            resp = np.bincount(corpus.text_response, raw[:, h], n) / counts
            rho = spearman(np.where(qfold == 0, resp, np.nan), mean_b[:, h])
        report[head_name(group, dim)] = {
            "dimension": dim,
            "group": group,
            "spearman": round4(rho),
            "spearman_by_direction": [round4(rho), None],
            "ceiling": round4(spearman(mean_a[:, h], mean_b[:, h])),
            "valid": bool(np.isfinite(rho) and rho >= rc.min_spearman),
            **head_counts(corpus.frame.loc[masks[group]], dim),
            **(_pair_metrics(raw, test[test[:, 2] == h]) if raw is not None else {}),
        }
    return report, (_pair_metrics(raw, test) if raw is not None else {})

"""Evaluate a trained run against its base model: greedy replies to held-out prompts, scored.

Parameters are restored from the run's newest checkpoint (params only; the optimizer state is
not needed). Replies are scored for offensiveness with `alt-profanity-check` (an offline
scikit-learn classifier of offensive language; it measures profanity-like wording, not every
kind of harm) when it is installed.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
from flax import nnx

from jaxalign.config import Config
from jaxalign.data.chat import eos_ids, pad_id, render
from jaxalign.data.records import prompt_key, read_split
from jaxalign.errors import JaxalignError
from jaxalign.eval.registry import Comparison, EvalRun, register
from jaxalign.io import staged_files
from jaxalign.models.sampler import Sampler
from jaxalign.progress import bar


def restore_run(cfg: Config, model):
    """(`model` with the newest checkpoint's parameters of run `cfg.train.run_dir`, its step)."""
    from jaxalign.config import to_dict
    from jaxalign.train.optim import make_optimizer
    from jaxalign.train.restore import restore_params

    tx = make_optimizer(cfg.optim, 1)  # only the state's structure matters here
    return restore_params(cfg.train.run_dir, model, to_dict(cfg), tx)


def offensiveness(texts: list[str]) -> list[float] | None:
    """Probability of offensive language per text (alt-profanity-check), or None if unavailable."""
    try:
        from profanity_check import predict_prob
    except ImportError:
        return None
    return [float(p) for p in predict_prob(texts)]


def heldout_prompts(
    cfg: Config, split: str = "validation", limit: int = 8
) -> list[tuple[str, str]]:
    """(prompt, group) of distinct held-out questions, in file order."""
    seen, out = set(), []
    for record in read_split(cfg.data, split):
        key = (record.get("question_id", prompt_key(record["prompt"])), record["group"])
        if key not in seen:
            seen.add(key)
            out.append((record["prompt"], record["group"]))
    return out[:limit]


def generate_and_score(cfg: Config, max_new_tokens: int = 48, limit: int = 8) -> dict:
    """Greedy replies of the base and tuned models to held-out prompts, with scores; written to run_dir."""
    from jaxalign.models.spec import build_model
    from jaxalign.sharding import make_mesh

    mesh = make_mesh(devices=jax.devices()[:1])
    base, tokenizer = build_model(cfg.model, mesh)
    tuned, step = restore_run(cfg, nnx.clone(base))  # no second load of the weights
    prompts = heldout_prompts(cfg, limit=limit)
    if not prompts:
        raise JaxalignError(f"{cfg.data.prefs}: no held-out (validation) prompts to evaluate")
    ids = [
        tokenizer(render(tokenizer, p, None, cfg.data.conditioning, g), add_special_tokens=False)[
            "input_ids"
        ]
        for p, g in prompts
    ]
    longest, context = max(map(len, ids)), base.config.max_position_embeddings
    if longest + max_new_tokens > context:
        raise JaxalignError(
            f"--max-new-tokens {max_new_tokens}: with held-out prompts of up to {longest} tokens "
            f"this exceeds the model's {context}-token context"
        )
    replies = {}
    models = (("base", base), ("tuned", tuned))
    with bar(models, desc="eval", unit="model", leave=False, disable=None) as ticks:
        for name, model in ticks:
            stop = eos_ids(tokenizer, model.config.eos_token_id)
            out = Sampler(model, eos_ids=stop, pad_id=pad_id(tokenizer)).generate(
                ids, max_new_tokens=max_new_tokens, greedy=True
            )
            replies[name] = [
                tokenizer.decode(c, skip_special_tokens=True).strip() for c in out.completions()
            ]
    scores = {name: offensiveness(texts) for name, texts in replies.items()}
    summary = {"checkpoint_step": step, "prompts": len(prompts)}
    for name in replies:
        if scores[name] is not None:
            summary[f"{name}/offensiveness_mean"] = float(np.mean(scores[name]))
        summary[f"{name}/reply_words_mean"] = float(
            np.mean([len(r.split()) for r in replies[name]])
        )
    rows = [
        {
            "prompt": p,
            "group": g,
            **{f"{n}_reply": replies[n][i] for n in replies},
            **{f"{n}_offensiveness": scores[n][i] for n in replies if scores[n] is not None},
        }
        for i, (p, g) in enumerate(prompts)
    ]
    with staged_files(Path(cfg.train.run_dir) / "generations.json") as (tmp,):
        tmp.write_text(
            json.dumps({"summary": summary, "rows": rows}, indent=2, ensure_ascii=False) + "\n"
        )
    return summary


@register("generations")
def generations(run: EvalRun) -> Comparison:
    """Reply offensiveness and length of the base and tuned models (writes generations.json)."""
    summary = generate_and_score(run.cfg, max_new_tokens=run.max_new_tokens, limit=run.prompts)
    keys = [k for k in ("offensiveness_mean", "reply_words_mean") if f"tuned/{k}" in summary]
    return Comparison(
        rows={k: (summary[f"base/{k}"], summary[f"tuned/{k}"]) for k in keys},
        note=f"({summary['prompts']} held-out prompts, greedy)",
        step=summary["checkpoint_step"],
        footer=(f"replies in {run.run_dir / 'generations.json'}",),
    )

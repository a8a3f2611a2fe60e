"""`jaxalign train` and `jaxalign eval`."""

from __future__ import annotations

import json
from pathlib import Path

from jaxalign.cli.common import EPILOG, add_common, add_parser, config_from, int_at_least

TRAIN_DESCRIPTION = (
    "DPO training. Everything goes into train.run_dir (default runs/train): config.yaml, "
    "checkpoints/, metrics.jsonl, tensorboard/ and results.json. Running again with the same "
    "config resumes that run (a changed config is refused: --allow-change KEY); the directory "
    "is locked while training."
)


def cmd_train(args) -> int:
    """train."""
    from jaxalign.algos.dpo import train

    cfg = config_from(args, [])
    results = train(cfg, allow_changes=tuple(args.allow_change))
    shown = {
        k: round(v, 4)
        for k, v in sorted(results.items())
        if k.startswith(("base/", "eval/")) and "/" in k
    }
    print(f"trained {results['step']} steps in {cfg.train.run_dir}; " + json.dumps(shown))
    for split in ("train", "validation"):
        counts = {
            k.rsplit("/", 1)[1]: int(v)
            for k, v in results.items()
            if k.startswith(f"data/{split}/")
        }
        if counts:
            print(f"  data {split}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_eval(args) -> int:
    """eval: the tuned run against its base model."""
    from jaxalign.eval.generations import generate_and_score

    cfg = config_from(args, [])
    summary = generate_and_score(cfg, max_new_tokens=args.max_new_tokens, limit=args.prompts)
    results_file = Path(cfg.train.run_dir) / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    print(
        f"run {cfg.train.run_dir} (checkpoint step {summary['checkpoint_step']}), held-out pairs:"
    )
    for key in ("rewards/accuracies", "logp_accuracy", "logp_accuracy_normalized"):
        if f"eval/{key}" in results and f"base/{key}" in results:
            print(
                f"  {key:<26} base {results[f'base/{key}']:.3f}  tuned {results[f'eval/{key}']:.3f}"
            )
    for key in ("offensiveness_mean", "reply_words_mean"):
        if f"tuned/{key}" in summary:
            print(
                f"  {key:<26} base {summary[f'base/{key}']:.3f}  tuned {summary[f'tuned/{key}']:.3f} "
                f"({summary['prompts']} held-out prompts, greedy)"
            )
    print(f"replies in {Path(cfg.train.run_dir) / 'generations.json'}")
    return 0


def register(groups) -> None:
    """Add `train` and `eval`."""
    p = add_parser(
        groups,
        "train",
        help="DPO training (resumes an existing run directory)",
        description=TRAIN_DESCRIPTION,
        epilog=EPILOG,
    )
    p.add_argument(
        "--allow-change",
        action="append",
        default=[],
        metavar="KEY",
        help="resume although config KEY (e.g. train.steps) differs from the run's checkpoint "
        "(repeatable; model.*, optim.grad_accum and optim.clip_norm never can; default: none)",
    )
    add_common(p)
    p.set_defaults(func=cmd_train)
    p = add_parser(
        groups,
        "eval",
        help="compare a trained run with its base model on held-out data",
        description="Writes generations.json into the run directory (train.run_dir).",
        epilog=EPILOG,
    )
    p.add_argument(
        "--max-new-tokens", type=int_at_least(1), default=48, help="tokens per reply at most"
    )
    p.add_argument(
        "--prompts",
        type=int_at_least(1),
        default=8,
        help="number of held-out prompts to generate for",
    )
    add_common(p)
    p.set_defaults(func=cmd_eval)

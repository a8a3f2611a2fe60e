"""`jaxalign train` and `jaxalign eval`."""

from __future__ import annotations

from jaxalign.cli.common import EPILOG, add_common, add_parser, config_from, int_at_least
from jaxalign.errors import JaxalignError

TRAIN_DESCRIPTION = (
    "DPO or GRPO training (train.algorithm=dpo|grpo). Everything goes into train.run_dir (default runs/train): config.yaml, "
    "checkpoints/, metrics.jsonl, tensorboard/ and results.json. Running again with the same "
    "config resumes that run (a changed config is refused: --allow-change KEY); the directory "
    "is locked while training."
)


def cmd_train(args) -> int:
    """train."""
    if args.dry_run:
        return cmd_dry_run(args)
    from pathlib import Path

    from jaxalign.train.run_dir import prepare

    cfg = config_from(args, [])
    prepare(Path(cfg.train.run_dir))  # a user's directory is refused before any model is built
    if cfg.train.algorithm == "grpo":
        from jaxalign.algos.grpo import train
    else:
        from jaxalign.algos.dpo import train
    results = train(cfg, allow_changes=tuple(args.allow_change))
    print(f"trained {results['step']} steps in {cfg.train.run_dir} (results.json, metrics.jsonl)")
    names = sorted({k.split("/", 1)[1] for k in results if k.startswith(("base/", "eval/"))})
    for name in names:
        base, tuned = results.get(f"base/{name}"), results.get(f"eval/{name}")
        cells = [f"{w} {v:.4f}" for w, v in (("base", base), ("tuned", tuned)) if v is not None]
        print(f"  {name:<34} " + "  ".join(cells))
    for split in ("train", "validation"):
        counts = {
            k.rsplit("/", 1)[1]: int(v)
            for k, v in results.items()
            if k.startswith(f"data/{split}/")
        }
        if counts:
            print(f"  data {split}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0


def cmd_dry_run(args) -> int:
    """train --dry-run: the memory plan of one compiled step; nothing is written."""
    from jaxalign.train import memory

    cfg = config_from(args, [])
    memory.simulate_devices(memory.needed_devices(cfg.train))  # before jax starts
    plan = memory.dry_run(cfg)
    for line in plan.lines():
        print(line)
    if not plan.fits:  # a failed exit, so a script that books hardware on it stops here
        raise JaxalignError(
            f"train.device_memory_gib={cfg.train.device_memory_gib:g}: the planned peak of "
            f"{memory.gib(plan.peak)} per device does not fit"
        )
    return 0


def cmd_eval(args) -> int:
    """eval: the tuned run against its base model, by the evaluators eval.evaluators names."""
    from jaxalign.eval.registry import EvalRun, check, run_all

    cfg = config_from(args, [])
    check(cfg.eval.evaluators)  # an unknown name is refused before any model is built
    if {"behaviour", "generations"} & set(cfg.eval.evaluators):  # they restore the tuned model
        from jaxalign.train.restore import require_checkpoint

        require_checkpoint(cfg.train.run_dir)
    found = run_all(EvalRun(cfg, args.max_new_tokens, args.prompts), cfg.eval.evaluators)
    steps = [c.step for _, c in found if c.step is not None]
    where = f" (checkpoint step {steps[-1]})" if steps else ""
    print(f"run {cfg.train.run_dir}{where}, held-out pairs:")
    for _, comparison in found:
        for key, (base, tuned) in comparison.rows.items():
            line = f"  {key:<26} base {base:.3f}  tuned {tuned:.3f}"
            print(f"{line} {comparison.note}" if comparison.note else line)
    for _, comparison in found:
        for line in comparison.footer:
            print(line)
    return 0


def register(groups) -> None:
    """Add `train` and `eval`."""
    p = add_parser(
        groups,
        "train",
        help="DPO or GRPO training (resumes an existing run directory)",
        description=TRAIN_DESCRIPTION,
        epilog=EPILOG,
    )
    # --allow-change accepts a resume's changes; a dry run resumes nothing (argparse: exit 2)
    exclusive = p.add_mutually_exclusive_group()
    exclusive.add_argument(
        "--allow-change",
        action="append",
        default=[],
        metavar="KEY",
        help="resume although config KEY (e.g. train.steps) differs from the run's checkpoint "
        "(repeatable; model.*, lora.rank, lora.targets, optim.grad_accum and optim.clip_norm "
        "never can; default: none)",
    )
    exclusive.add_argument(
        "--dry-run",
        action="store_true",
        help="compile one train step on abstract shapes for the configured mesh (simulated "
        "CPU devices where needed) and print per-device memory against "
        "train.device_memory_gib (exit 1 if it does not fit); reads no weights, writes nothing",
    )
    add_common(p)
    p.set_defaults(func=cmd_train)
    p = add_parser(
        groups,
        "eval",
        help="compare a trained run with its base model on held-out data",
        description="Runs the evaluators eval.evaluators names (default: preferences, "
        "behaviour). behaviour generates replies of the tuned and the base model to "
        "eval.prompts (bank, heldout or FILE.jsonl), scores them with eval.scorers and writes "
        "RUN_DIR/eval/{generations.jsonl, results.json, report.md} (docs/EVALUATION.md); "
        "generations (legacy) writes RUN_DIR/generations.json.",
        epilog=EPILOG,
    )
    p.add_argument(
        "--max-new-tokens",
        type=int_at_least(1),
        default=48,
        help="tokens per reply at most (generations evaluator; behaviour: eval.max_new_tokens)",
    )
    p.add_argument(
        "--prompts",
        type=int_at_least(1),
        default=8,
        help="number of held-out prompts to generate for (generations evaluator; behaviour: "
        "eval.limit)",
    )
    add_common(p)
    p.set_defaults(func=cmd_eval)

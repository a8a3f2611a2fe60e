"""`jaxalign reward train | eval | score` (hooked into jaxalign/cli.py by `register`)."""

from __future__ import annotations

import argparse
import json

EPILOG = "Trailing key=value arguments override config values (e.g. reward.shrinkage=20)."


def _shared(p: argparse.ArgumentParser, config: bool = True) -> None:
    """--config, --debug and trailing overrides, as the other commands take them."""
    if config:
        p.add_argument("--config", metavar="FILE", help="YAML config file (partial)")
        p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")
    else:
        p.set_defaults(overrides=[])
    p.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )


def _flags(args) -> list[str]:
    """Overrides implied by train's flags."""
    flags = []
    if args.group:
        flags.append("reward.groups=" + json.dumps(args.group))
    if args.dimensions:
        dims = [d.strip() for d in args.dimensions.split(",")]
        flags.append("reward.dimensions=" + json.dumps(dims))
    for name in ("kind", "fold"):
        if getattr(args, name) is not None:
            flags.append(f"reward.{name}={getattr(args, name)}")
    return flags


def cmd_train(args) -> int:
    """reward train."""
    from jaxalign.config import load_config
    from jaxalign.rewards.run import train_model

    cfg = load_config(args.config, [*_flags(args), *args.overrides])
    report = train_model(args.ratings, args.out, cfg, overwrite=args.overwrite)
    _print_report(args.out, report)
    return 0


def cmd_eval(args) -> int:
    """reward eval."""
    from jaxalign.rewards.run import eval_model

    _print_report(args.model, eval_model(args.model, args.ratings))
    return 0


def cmd_score(args) -> int:
    """reward score."""
    from jaxalign.rewards.run import score_file

    heads = [h.strip() for h in args.heads.split(";")] if args.heads else None
    n = score_file(args.model, args.input, args.out, heads)
    print(f"wrote {args.out}: {n} records scored")
    return 0


def _print_report(model_dir, report: dict) -> None:
    """One line per head: held-out Spearman beside the raters' split-half ceiling."""
    fold = report["fold"]
    print(
        f"{model_dir}: {len(report['heads'])} heads, {fold['fold']} fold "
        f"({fold['raters']} raters, hash {fold['hash']}); wrote report.json"
    )
    for name, h in report["heads"].items():
        flag = "" if h["valid"] else "  (invalid)"
        print(f"  {name:<44} Spearman {h['spearman']}  ceiling {h['ceiling']}{flag}")


def register(groups) -> None:
    """Add the `reward` command group to the top-level subparsers."""
    import typing

    from jaxalign.config.reward import RewardConfig

    reward = groups.add_parser("reward", help="rating models per rater group and dimension")
    cmds = reward.add_subparsers(dest="command", metavar="<command>", required=True)
    p = cmds.add_parser("train", help="fit heads, evaluate held out, write DIR", epilog=EPILOG)
    p.add_argument(
        "--ratings", required=True, metavar="PATH", help="ratings file or Aligniverse export"
    )
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (the model)")
    p.add_argument("--group", action="append", metavar="EXPR", help="rater group (repeatable)")
    p.add_argument("--dimensions", metavar="D1,D2,...", help="dimensions (default all five)")
    # choices from the schema: a bad value is a usage error (exit 2), like any other flag's
    hints = typing.get_type_hints(RewardConfig)
    kinds, folds = (typing.get_args(hints[k]) for k in ("kind", "fold"))
    p.add_argument("--kind", choices=kinds, help="model kind (reward.kind)")
    p.add_argument("--fold", choices=folds, help="rater fold to learn from (reward.fold)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a non-empty --out directory that jaxalign did not write",
    )
    _shared(p)
    p.set_defaults(func=cmd_train)
    p = cmds.add_parser("eval", help="recompute DIR/report.json from the recorded inputs")
    p.add_argument("--model", required=True, metavar="DIR", help="a `reward train` output")
    p.add_argument("--ratings", metavar="PATH", help="the training ratings if moved")
    _shared(p, config=False)
    p.set_defaults(func=cmd_eval)
    p = cmds.add_parser("score", help="add scores per head to {prompt, response} JSONL records")
    p.add_argument("--model", required=True, metavar="DIR", help="a `reward train` output")
    p.add_argument(
        "--input", required=True, metavar="FILE.jsonl", help="{prompt, response} records"
    )
    p.add_argument("--out", required=True, metavar="FILE.jsonl", help="scored records")
    p.add_argument("--heads", metavar="H1;H2", help="heads to score (default all), ';'-separated")
    _shared(p, config=False)
    p.set_defaults(func=cmd_score)

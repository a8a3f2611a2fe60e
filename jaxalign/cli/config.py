"""`jaxalign config show`."""

from __future__ import annotations

from jaxalign.cli.common import EPILOG, add_common, add_parser, config_from


def cmd_config_show(args) -> int:
    """config show."""
    from jaxalign.config import DPORun, GRPORun, config_hash, dump, project
    from jaxalign.train.run_dir import run_id

    cfg = config_from(args, [])
    root = GRPORun if cfg.train.algorithm == "grpo" else DPORun
    print(f"# config hash: {config_hash(cfg)}; train run id: {run_id(project(cfg, root))}")
    print(dump(cfg), end="")
    return 0


def register(groups) -> None:
    """Add the `config` group."""
    config = groups.add_parser("config", help="inspect resolved configs")
    cmds = config.add_subparsers(dest="command", metavar="<command>", required=True)
    p = add_parser(cmds, "show", help="print the resolved config and its hash", epilog=EPILOG)
    add_common(p)
    p.set_defaults(func=cmd_config_show)

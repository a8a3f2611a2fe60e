"""The `jaxalign` command line: `jaxalign <group> <command> [options] [key=value ...]`.

The only package that reads argv. One module per command group registers its subcommands;
heavy libraries are imported inside the command functions, so `--help` and the data
commands stay free of jax. Exit codes (decided here, in `run`): 0 success, 1 error (one
line on stderr; `--debug` adds the traceback), 2 usage error, 130 interrupted.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import traceback
import typing
from collections.abc import Iterator

from jaxalign import __version__
from jaxalign.cli import config, experiment, model, prefs, survey, train
from jaxalign.cli.common import EPILOG
from jaxalign.errors import JaxalignError

GROUPS = (survey, prefs, model, train, experiment, config)
QUIET_LOGGERS = ("absl", "jax._src.xla_bridge", "orbax", "tensorflow")


class Parser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line (exit 2), like every other error."""

    def error(self, message: str) -> typing.NoReturn:
        """Print `jaxalign <command>: error: message (see --help)` and exit 2."""
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser."""
    parser = Parser(prog="jaxalign", description="Pluralistic LLM alignment in JAX.", epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"jaxalign {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    groups = parser.add_subparsers(dest="group", metavar="<group>", required=True)
    from jaxalign.rewards.cli import register as register_reward

    for group in GROUPS:
        if group is config:  # keep `reward` before `config` in the listing
            register_reward(groups)
        group.register(groups)
    return parser


class _Format(logging.Formatter):
    """`jaxalign: warning: message`, the same shape as the CLI's error lines."""

    def format(self, record: logging.LogRecord) -> str:
        """One line per record."""
        return f"jaxalign: {record.levelname.lower()}: {record.getMessage()}"


@contextlib.contextmanager
def cli_logging() -> Iterator[None]:
    """jaxalign's log records in one format on stderr; library noise (absl, orbax) hidden."""
    log = logging.getLogger("jaxalign")
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format())
    saved = (log.level, log.propagate, {n: logging.getLogger(n).level for n in QUIET_LOGGERS})
    log.addHandler(handler)
    log.setLevel(logging.WARNING if log.level == logging.NOTSET else log.level)
    log.propagate = False  # no second copy through a root handler ("WARNING:jaxalign:...")
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.removeHandler(handler)
        log.setLevel(saved[0])
        log.propagate = saved[1]
        for name, level in saved[2].items():
            logging.getLogger(name).setLevel(level)


def run(args: argparse.Namespace) -> int:
    """Run one parsed command, turning errors into one stderr line and an exit code."""
    try:
        with cli_logging():
            return args.func(args)
    except JaxalignError as err:
        if args.debug:
            traceback.print_exc()
        print(f"jaxalign: error: {_one_line(err)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("jaxalign: interrupted", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            traceback.print_exc()
        hint = "" if args.debug else " (rerun with --debug for the traceback)"
        print(
            f"jaxalign: internal error: {type(err).__name__}: {_one_line(err)}{hint}",
            file=sys.stderr,
        )
        return 1


def _one_line(err: BaseException, limit: int = 2000) -> str:
    """An error message as one bounded line (a hostile value must not flood the terminal)."""
    text = " ".join(str(err).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def main(argv: list[str] | None = None) -> int:
    """Entry point: parse, run one command, turn errors into one line and an exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    for override in getattr(args, "overrides", ()):
        if "=" not in override:
            parser.error(f"unexpected argument '{override}' (overrides look like key=value)")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())

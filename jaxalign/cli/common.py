"""What every command group shares: help formatting, config resolution, common options."""

from __future__ import annotations

import argparse

EPILOG = (
    "Trailing key=value arguments override config values (e.g. prefs.scale=3); see docs/CONFIG.md."
)
OVERWRITE_HELP = (
    "replace {what} even if jaxalign did not write it (inputs, '.' and unwritable places "
    "are still refused)"
)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Show '(default: X)' only where there is a meaningful default to show."""

    def _get_help_string(self, action: argparse.Action) -> str:
        """The help text, with the default appended when it is not None/False/suppressed."""
        text = action.help or ""
        default = action.default  # `is` for False: 0 is a default worth showing
        if default is None or default is False or default in ([], argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


def add_parser(subparsers, name: str, **kwargs) -> argparse.ArgumentParser:
    """A subcommand parser with the shared help formatter."""
    return subparsers.add_parser(name, formatter_class=HelpFormatter, **kwargs)


def config_from(args: argparse.Namespace, flags: list[str]):
    """Resolve the config: file, then flag-derived overrides, then positional key=value overrides."""
    from jaxalign.config import load_config

    return load_config(args.config, [*flags, *args.overrides])


def add_common(parser: argparse.ArgumentParser, ratings: bool = False) -> None:
    """Options every config-driven command shares."""
    parser.add_argument(
        "--config",
        metavar="FILE",
        help="YAML config file (partial; built-in defaults fill the rest, see configs/default.yaml)",
    )
    if ratings:
        parser.add_argument(
            "--lenient",
            action="store_true",
            help="drop invalid rows and write a report instead of failing (ratings.strict=false)",
        )
    add_debug(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides")


def add_debug(parser: argparse.ArgumentParser) -> None:
    """--debug on a subcommand (it may also come before the group)."""
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks on errors"
    )


def add_ratings(parser: argparse.ArgumentParser) -> None:
    """The --ratings input option."""
    parser.add_argument(
        "--ratings",
        required=True,
        metavar="PATH",
        help="ratings: a long-format .csv/.jsonl/.parquet file or an Aligniverse export directory",
    )


def add_overwrite(parser: argparse.ArgumentParser, what: str) -> None:
    """The --overwrite flag, described for this command's output."""
    parser.add_argument("--overwrite", action="store_true", help=OVERWRITE_HELP.format(what=what))


def ratings_flags(args) -> list[str]:
    """Overrides implied by the shared ratings options."""
    return ["ratings.strict=false"] if getattr(args, "lenient", False) else []


def int_at_least(low: int):
    """An argparse type: an integer >= `low` (a usage error otherwise)."""

    def parse(text: str) -> int:
        """Parse and range-check."""
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is out of range; expected >= {low}")
        return value

    return parse


def float_in(low: float, high: float, low_open: bool = False):
    """An argparse type: a finite float in [low, high] (or (low, high] with `low_open`)."""

    def parse(text: str) -> float:
        """Parse and range-check."""
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        ok = (value > low if low_open else value >= low) and value <= high
        if not ok:  # also false for NaN
            bracket = "(" if low_open else "["
            raise argparse.ArgumentTypeError(
                f"{text} is out of range; expected a number in {bracket}{low:g}, {high:g}]"
            )
        return value

    return parse

"""Error types whose messages are shown to users as one line."""

from __future__ import annotations


class JaxalignError(Exception):
    """An error caused by user input; the CLI prints its message and exits 1."""


class ConfigError(JaxalignError):
    """A config file or override names an unknown key or holds a bad value."""


class DataError(JaxalignError):
    """An input data file is missing, unreadable or malformed."""


def located(
    path: object, message: str, *, row: int | None = None, column: str | None = None
) -> str:
    """Format `file: row R, column 'C': message`, leaving out the parts not given."""
    where = [str(path)]
    if row is not None:
        where.append(f"row {row}")
    if column is not None:
        where.append(f"column '{column}'")
    return ", ".join(where) + ": " + message

"""Row-precise problem collection shared by the ratings readers.

Readers record every problem (file, row, column, value, what was expected). In strict
mode the first problem becomes a one-line `DataError`; in lenient mode the rows are
dropped and every problem goes into a report.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from jaxalign.errors import DataError, located


@dataclass(frozen=True)
class Problem:
    """One bad value: where it is, what it was, and what was expected."""

    file: str
    row: int | None
    column: str | None
    value: str
    message: str

    def render(self) -> str:
        """One-line description naming file, row and column."""
        return located(self.file, self.message, row=self.row, column=self.column)


@dataclass
class Problems:
    """Problems found while reading; `raise_first` for strict mode."""

    items: list[Problem] = field(default_factory=list)

    def add(self, file, row, column, value, message) -> None:
        """Record one problem."""
        self.items.append(Problem(str(file), row, column, _short(value), message))

    def add_mask(self, frame: pd.DataFrame, mask, column: str, message) -> None:
        """Record a problem for each row of `frame` where `mask` is true (uses `_file`/`_row`).

        `message` is a function of the bad value, or a Series of messages aligned with `frame`.
        """
        mask = np.asarray(mask, dtype=bool)
        if not mask.any():
            return
        bad = frame.loc[mask]
        values = (
            bad[column] if column in bad.columns else pd.Series([""] * len(bad), index=bad.index)
        )
        messages = message[mask] if isinstance(message, pd.Series) else values.map(message)
        for file, row, value, text in zip(bad["_file"], bad["_row"], values, messages):
            self.add(file, int(row), column, value, text)

    def __bool__(self) -> bool:
        return bool(self.items)

    def rows(self) -> set[tuple[str, int]]:
        """(file, row) of every problem that names a row."""
        return {(p.file, p.row) for p in self.items if p.row is not None}

    def raise_first(self) -> None:
        """Strict mode: raise the earliest problem as a one-line DataError."""
        if not self.items:
            return
        first = min(self.items, key=lambda p: (p.file, p.row if p.row is not None else -1))
        more = len(self.items) - 1
        suffix = (
            f" ({more} more problem{'s' if more != 1 else ''}; rerun with --lenient to drop bad rows and get a report)"
            if more
            else ""
        )
        raise DataError(first.render() + suffix)

    def to_csv(self) -> str:
        """The report of every problem as CSV text."""
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(["file", "row", "column", "value", "problem"])
        for p in sorted(self.items, key=lambda p: (p.file, p.row or 0, p.column or "")):
            writer.writerow(
                [p.file, "" if p.row is None else p.row, p.column or "", p.value, p.message]
            )
        return buf.getvalue()


def _short(value: object, limit: int = 60) -> str:
    """A value shortened for messages."""
    text = repr(value) if not isinstance(value, str) else value
    return text if len(text) <= limit else text[: limit - 3] + "..."


def decode_utf8(data: bytes, path: str) -> str:
    """Decode bytes as UTF-8 (BOM allowed); on failure name the line and byte offset."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = data.count(b"\n", 0, err.start) + 1
        raise DataError(
            located(
                path,
                f"line {line}: bytes at offset {err.start} are not valid UTF-8; "
                "expected a UTF-8 encoded file (re-save it as UTF-8)",
            )
        ) from None

"""Row-precise problem collection shared by the ratings readers.

Readers record every problem (file, row, column, value, what was expected). In strict
mode the first problem becomes a one-line `DataError`; in lenient mode the rows are
dropped and every problem goes into a report.
"""

from __future__ import annotations

from collections.abc import Callable
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
class _Batch:
    """Problems found together: parallel arrays, messages rendered only when asked for."""

    files: np.ndarray
    rows: np.ndarray  # -1 where a problem names no row
    column: str | None
    values: np.ndarray
    messages_at: Callable[[np.ndarray], list[str]]

    def first(self) -> int:
        """Position of the earliest (file, row) in this batch (first one on ties)."""
        codes, _ = pd.factorize(self.files, sort=True)
        rows = self.rows[codes == 0]
        return int(np.flatnonzero(codes == 0)[np.argmin(rows)])

    def problem(self, i: int) -> Problem:
        """The i-th problem as an object."""
        row = int(self.rows[i])
        message = self.messages_at(np.array([i]))[0]
        value = _short(self.values[i])
        return Problem(str(self.files[i]), None if row < 0 else row, self.column, value, message)


@dataclass
class Problems:
    """Problems found while reading; `raise_first` for strict mode.

    Kept as column-wise batches: a million bad rows must not cost a million objects when
    strict mode reports only the first one and a count.
    """

    batches: list[_Batch] = field(default_factory=list)

    def add(self, file, row, column, value, message) -> None:
        """Record one problem."""
        values = np.empty(1, dtype=object)
        values[0] = value
        self.batches.append(
            _Batch(
                np.array([str(file)], dtype=object),
                np.array([-1 if row is None else row], dtype=np.int64),
                column,
                values,
                lambda idx, text=message: [text for _ in idx],
            )
        )

    def add_mask(self, frame: pd.DataFrame, mask, column: str, message=None, messages_at=None):
        """Record a problem for each row of `frame` where `mask` is true (uses `_file`/`_row`).

        `message` is a function of the bad value, or a Series of messages aligned with `frame`;
        `messages_at` maps positions among the bad rows to messages (built only when needed).
        """
        mask = np.asarray(mask, dtype=bool)
        positions = np.flatnonzero(mask)
        if not len(positions):
            return
        if column in frame.columns:
            values = frame[column].to_numpy(dtype=object)[positions]
        else:
            values = np.full(len(positions), "", dtype=object)
        if messages_at is None:
            if isinstance(message, pd.Series):
                texts = message.to_numpy(dtype=object)[positions]
                messages_at = lambda idx: list(texts[idx])  # noqa: E731
            else:
                messages_at = lambda idx: [message(v) for v in values[idx]]  # noqa: E731
        files = frame["_file"].to_numpy(dtype=object)[positions]
        rows = frame["_row"].to_numpy(dtype=np.int64)[positions]
        self.batches.append(_Batch(files, rows, column, values, messages_at))

    def __len__(self) -> int:
        return sum(len(b.rows) for b in self.batches)

    def __bool__(self) -> bool:
        return bool(self.batches)

    @property
    def items(self) -> list[Problem]:
        """Every problem as an object (lenient reports and tests; costly for huge counts)."""
        return [b.problem(i) for b in self.batches for i in range(len(b.rows))]

    def row_keys(self) -> pd.DataFrame:
        """`_file`/`_row` of every problem that names a row."""
        files = np.concatenate([b.files for b in self.batches]) if self.batches else []
        rows = np.concatenate([b.rows for b in self.batches]) if self.batches else []
        keys = pd.DataFrame({"_file": files, "_row": rows})
        return keys.loc[keys["_row"] >= 0]

    def raise_first(self) -> None:
        """Strict mode: raise the earliest problem as a one-line DataError."""
        if not self.batches:
            return
        candidates = [b.problem(b.first()) for b in self.batches]
        first = min(candidates, key=lambda p: (p.file, p.row if p.row is not None else -1))
        more = len(self) - 1
        suffix = (
            f" ({more} more problem{'s' if more != 1 else ''}; rerun with --lenient to drop bad rows and get a report)"
            if more
            else ""
        )
        raise DataError(first.render() + suffix)

    def to_csv(self) -> str:
        """The report of every problem as CSV text."""
        parts = []
        for b in self.batches:
            idx = np.arange(len(b.rows))
            parts.append(
                pd.DataFrame(
                    {
                        "file": b.files.astype(str),
                        "row": b.rows,
                        "column": b.column or "",
                        "value": [_short(v) for v in b.values],
                        "problem": b.messages_at(idx),
                    }
                )
            )
        table = pd.concat(parts, ignore_index=True) if parts else _EMPTY_REPORT.copy()
        table["_sort"] = table["row"].clip(lower=0)
        table = table.sort_values(["file", "_sort", "column"], kind="stable").drop(columns="_sort")
        table["row"] = table["row"].astype(object).where(table["row"] >= 0, "")
        return table.to_csv(index=False, lineterminator="\n")


_EMPTY_REPORT = pd.DataFrame(columns=["file", "row", "column", "value", "problem"])


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

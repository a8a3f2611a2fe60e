"""The long ratings table shared by every reader: file reading, normalisation, validation.

`readers.py` (long-format files) and `aligniverse.py` (the app's export) both build on this
module, so neither imports the other's internals.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from jaxalign.errors import DataError, located
from jaxalign.progress import bar
from jaxalign.survey import schema
from jaxalign.survey.validate import Problems, decode_utf8
from jaxalign.survey.values import (
    _is_missing,
    _map_unique,
    _normalize_choice,
    _normalize_dimension,
    _not_text,
    parse_bool,
    parse_count,
    parse_list,
    parse_rating,
)

SUFFIXES = (".csv", ".jsonl", ".parquet")


@dataclass
class ReadReport:
    """What reading dropped: bad rows (lenient mode) and raters failing attention checks."""

    problems: Problems = field(default_factory=Problems)
    rows_read: int = 0
    rows_dropped: int = 0
    raters_excluded_attention: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict:
        """Counts for manifests and logs."""
        return {
            "rows_read": self.rows_read,
            "rows_dropped_invalid": self.rows_dropped,
            "problems": len(self.problems),
            "raters_excluded_attention": self.raters_excluded_attention,
            "notes": list(self.notes),
        }


def read_table(path: Path) -> pd.DataFrame:
    """Read one CSV/JSONL/Parquet table as strings (Parquet keeps its types); adds `_file`, `_row`."""
    if not path.exists():
        raise DataError(f"{path}: file not found")
    if path.is_dir():
        raise DataError(f"{path}: is a directory, expected a file")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise DataError(
            f"{path}: unsupported file type '{suffix}'; expected one of {', '.join(SUFFIXES)} or an Aligniverse export directory"
        )
    data = path.read_bytes()
    if not data.strip():
        raise DataError(f"{path}: file is empty; expected a header and at least one data row")
    if suffix == ".parquet":
        frame = _read_parquet(path, data)
    else:
        text = decode_utf8(data, str(path))
        frame = _read_csv(path, text) if suffix == ".csv" else _read_jsonl(path, text)
    if frame.empty:
        raise DataError(f"{path}: file has no data rows")
    frame.columns = [str(c).strip() for c in frame.columns]
    frame["_file"] = str(path)
    frame["_row"] = np.arange(1, len(frame) + 1)
    return frame


def _read_csv(path: Path, text: str) -> pd.DataFrame:
    """CSV with every cell as a string ('' for empty)."""
    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.ParserError as err:
        raise DataError(f"{path}: malformed CSV: {str(err).strip()}") from None
    except pd.errors.EmptyDataError:
        raise DataError(
            f"{path}: file is empty; expected a header and at least one data row"
        ) from None


def _read_jsonl(path: Path, text: str) -> pd.DataFrame:
    """JSON Lines: one object per non-blank line; errors name the line."""
    records = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(
                located(
                    path,
                    f"line {lineno}: invalid JSON ({err.msg}); expected one JSON object per line",
                )
            ) from None
        if not isinstance(obj, dict):
            raise DataError(
                located(path, f"line {lineno}: expected a JSON object, got {type(obj).__name__}")
            )
        records.append(obj)
    return pd.DataFrame.from_records(records)


def _read_parquet(path: Path, data: bytes) -> pd.DataFrame:
    """Parquet via pyarrow; a corrupt file is one clear error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(pa.BufferReader(data))
    except (pa.ArrowException, OSError) as err:
        raise DataError(f"{path}: not a readable Parquet file ({err})") from None
    return table.to_pandas(types_mapper=None)


# ---------------------------------------------------------------- long format


def normalize_long(frame: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """Check and convert every long-format column; record problems; return typed columns."""
    path = frame["_file"].iat[0]
    missing = [c for c in schema.REQUIRED if c not in frame.columns]
    if missing:
        found = ", ".join(c for c in frame.columns if not c.startswith("_")) or "none"
        raise DataError(
            f"{path}: missing required column(s) {', '.join(missing)}; found columns: {found} (see docs/DATA.md)"
        )
    out = pd.DataFrame({"_file": frame["_file"], "_row": frame["_row"]})
    # Shown only on a terminal with a large file: checking a million rows takes a while.
    with bar(
        total=len(schema.COLUMNS) + 1,
        desc=f"check {Path(path).name}",
        unit="check",
        leave=False,
        disable=None if len(frame) > 100_000 else True,
    ) as ticks:
        for column, (kind, allowed) in schema.COLUMNS.items():
            if column in frame.columns:
                out[column] = _check_column(frame, column, kind, allowed, problems)
            else:
                default = schema.DEFAULTS[column]
                out[column] = [default] * len(frame) if kind == "list" else default
            ticks.update()
        ticks.set_description(f"duplicates in {Path(path).name}")
        _check_consistency(out, problems)
        ticks.update()
    return out


def _check_column(frame, column, kind, allowed, problems: Problems) -> pd.Series:
    """Convert one column to its kind, recording every bad value."""
    raw = frame[column]
    if column == "rating":
        parsed = _map_unique(raw, parse_rating)
    elif column == "dimension":
        parsed = _map_unique(raw, _normalize_dimension)
    elif kind == "list":
        parsed = _map_unique(raw, parse_list)
    elif kind == "bool":
        parsed = _map_unique(raw, parse_bool)
    elif kind == "int":
        parsed = _map_unique(raw, parse_count)
    elif allowed is not None:
        parsed = _map_unique(raw, lambda v: _normalize_choice(v, allowed))
    else:
        parsed = _map_unique(raw, lambda v: "" if _is_missing(v) else str(v).strip())
    wrong_type = np.zeros(len(raw), bool)
    if kind == "str":
        not_text = _map_unique(raw, _not_text)
        wrong_type = (not_text != "").to_numpy(bool)
        problems.add_mask(frame, wrong_type, column, not_text)
    if column in ("rating", "attention_passed", "attention_total") or kind in ("list", "bool"):
        # Once per distinct value: a per-row Python check cost seconds on a million rows.
        bad = _map_unique(parsed, lambda v: isinstance(v, str)).to_numpy(bool)
        problems.add_mask(frame, bad, column, parsed)
        parsed = parsed.where(~bad, None)
    elif allowed is not None:
        bad = ~parsed.isin(allowed).to_numpy(bool) & ~wrong_type
        choices = ", ".join(allowed)
        problems.add_mask(
            frame, bad, column, lambda v: f"'{v}' is not allowed; expected one of {choices}"
        )
    elif column in ("rater_id", "question_id", "response_id"):
        bad = (parsed == "").to_numpy(bool) & ~wrong_type
        what = "unknown rater: empty rater_id" if column == "rater_id" else f"empty {column}"
        problems.add_mask(frame, bad, column, lambda v: f"{what}; every row needs one")
    return parsed


def _check_consistency(out: pd.DataFrame, problems: Problems) -> None:
    """Duplicate (rater, response, dimension) rows; attention passed <= total."""
    keys = ["rater_id", "response_id", "dimension"]
    dup = out.duplicated(keys, keep="first").to_numpy(bool)
    if dup.any():
        # Vectorised, and messages built only for the problems shown: a million duplicate
        # rows used to cost minutes and gigabytes before the first error.
        earlier = out.groupby(keys, sort=False, dropna=False)["_row"].transform("first")
        bad = {k: out[k].to_numpy(dtype=object)[dup] for k in keys}
        first_row = earlier.to_numpy()[dup]

        def messages_at(idx):
            """Messages for the chosen duplicates only."""
            return [
                f"duplicate rating: rater '{bad['rater_id'][i]}' already rated response "
                f"'{bad['response_id'][i]}' on {bad['dimension'][i]} at row {first_row[i]}"
                for i in idx
            ]

        problems.add_mask(out, dup, "dimension", messages_at=messages_at)
    passed = pd.to_numeric(out["attention_passed"], errors="coerce")
    total = pd.to_numeric(out["attention_total"], errors="coerce")
    over = (passed > total).to_numpy(bool)
    problems.add_mask(
        out,
        over,
        "attention_passed",
        lambda v: f"{v} attention checks passed but attention_total is lower",
    )


def drop_problem_rows(frame: pd.DataFrame, problems: Problems) -> pd.DataFrame:
    """Remove every row named by a problem (lenient mode)."""
    if not problems:
        return frame
    keys = problems.row_keys()
    keep = np.ones(len(frame), dtype=bool)
    for file, rows in keys.groupby("_file")["_row"]:
        in_file = (frame["_file"] == file).to_numpy(bool)
        keep &= ~(in_file & np.isin(frame["_row"].to_numpy(), rows.to_numpy()))
    return frame.loc[keep]

"""Cell values of a ratings table: parse ratings, lists, yes/no and counts; map once per value.

Parsers return the parsed value, or a `str` error message that the readers record with the
cell's file, row and column. Values from JSONL or Parquet may be of any type (lists,
mappings, timestamps, bytes); each gets a message, never an exception.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from jaxalign.survey import schema


def _is_missing(value) -> bool:
    """True for None, NaN and blank strings."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def parse_rating(value) -> int | str:
    """An int 1..5 from a number, numeric string or agreement label, else an error message."""
    if _is_missing(value):
        return "missing rating; expected an integer 1-5"
    if isinstance(value, str):
        label = value.strip().lower()
        if label in schema.LABEL_TO_RATING:
            return schema.LABEL_TO_RATING[label]
        try:
            number = float(label)
        except ValueError:
            return f"'{value}' is not a rating; expected an integer 1-5 or an agreement label ('strongly disagree' ... 'strongly agree')"
    elif isinstance(value, bool | np.bool_):
        return f"{value!r} is not a rating; expected an integer 1-5"
    elif isinstance(value, int | float | np.integer | np.floating):
        number = float(value)
    else:  # lists, mappings, timestamps, bytes from JSONL/Parquet
        return f"{_kind(value)} {_brief(value)} is not a rating; expected an integer 1-5"
    if math.isnan(number):
        return "rating is NaN; expected an integer 1-5"
    if number != int(number):
        return f"rating {number:g} is not a whole number; expected an integer 1-5"
    if not schema.RATING_MIN <= number <= schema.RATING_MAX:
        return f"rating {number:g} is out of range; expected an integer 1-5"
    return int(number)


def parse_list(value) -> tuple[str, ...] | str:
    """A tuple of strings from a list, a JSON list string or a ';'-separated string."""
    if _is_missing(value):
        return ()
    if isinstance(value, list | tuple | np.ndarray):
        return tuple(str(v).strip() for v in value if not _is_missing(v))
    if not isinstance(value, str):
        return f'{value!r} is not a list; expected a JSON list such as ["White"]'
    text = value.strip()
    if text.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError:
            return f"'{value}' is not a valid JSON list"
        if not isinstance(items, list):
            return f"'{value}' is not a JSON list"
        return tuple(str(v).strip() for v in items if not _is_missing(v))
    return tuple(part.strip() for part in text.split(";") if part.strip())


_TRUE = {"true", "yes", "ja", "1", "y"}
_FALSE = {"false", "no", "nein", "0", "n"}


def parse_bool(value) -> bool | str:
    """A bool from true/false, yes/no, ja/nein, 1/0."""
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | np.integer) and value in (0, 1):
        return bool(value)
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return f"'{value}' is not a yes/no value; expected true/false, yes/no or ja/nein"


def parse_count(value) -> int | str:
    """A non-negative integer count."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return f"'{value}' is not a count; expected a non-negative integer"
    if math.isnan(number) or number < 0 or number != int(number):
        return f"'{value}' is not a count; expected a non-negative integer"
    return int(number)


def _kind(value) -> str:
    """'a list', 'a mapping', ... for messages about values of the wrong type."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple | np.ndarray | set):
        return "a list"
    if isinstance(value, bytes | bytearray):
        return "bytes"
    return f"a {type(value).__name__}"


def _brief(value, limit: int = 40) -> str:
    """A short repr of a value for messages."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _key(value):
    """A hashable stand-in for any cell value (lists as tuples, anything else by repr)."""
    if isinstance(value, list | tuple | np.ndarray):
        return ("seq", tuple(_key(v) for v in value))
    try:
        hash(value)
    except TypeError:
        return (type(value).__name__, repr(value))
    return value


def _map_unique(series: pd.Series, fn) -> pd.Series:
    """Apply `fn` once per distinct value (unhashable cells such as lists compared by content)."""
    try:
        codes, uniques = pd.factorize(series, use_na_sentinel=False)
        originals = list(uniques)
    except TypeError:  # unhashable cells: list or mapping columns from JSONL/Parquet
        codes, _ = pd.factorize(series.map(_key), use_na_sentinel=False)
        _, first = np.unique(codes, return_index=True)
        originals = list(series.iloc[first])
    mapped = np.empty(len(originals), dtype=object)
    for i, value in enumerate(originals):
        mapped[i] = fn(value)
    return pd.Series(mapped[codes], index=series.index, dtype=object)


def _not_text(value) -> str:
    """An error message for a list/mapping/bytes where text is expected, else ''."""
    if isinstance(value, list | tuple | np.ndarray | dict | set | bytes | bytearray):
        return f"{_kind(value)} {_brief(value)} is not text; expected a single value"
    return ""


def _normalize_choice(value, allowed) -> str:
    """Lower-case/strip a categorical value; '' becomes 'undeclared' where allowed."""
    text = "" if _is_missing(value) else str(value).strip()
    if not text and "undeclared" in allowed:
        return "undeclared"
    return text.lower() if text.lower() in allowed else text


def _normalize_dimension(value) -> str:
    """'Emotional Awareness' -> 'emotional_awareness'."""
    return (
        "" if _is_missing(value) else str(value).strip().lower().replace(" ", "_").replace("-", "_")
    )

"""Rater group filter expressions, e.g. `gender=female`, `country=US,political_spectrum=conservative`.

Grammar: clauses joined by ',' (all must hold); a clause is `attribute OP values` with OP one
of `=`, `!=`, `~` (case-insensitive substring), `!~`, and values separated by '|' (any may
match). For list attributes (ethnicity, ancestry) a clause holds if any list item matches.
`all` (or an empty expression) keeps every rater.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from jaxalign.errors import ConfigError
from jaxalign.survey import schema

_CLAUSE = re.compile(r"^\s*([A-Za-z_]+)\s*(!=|!~|=|~)\s*(.+?)\s*$")


@dataclass(frozen=True)
class Clause:
    """One `attribute OP value|value` condition."""

    attribute: str
    op: str
    values: tuple[str, ...]

    def matches(self, value) -> bool:
        """Whether one rater's attribute value satisfies the clause."""
        items = value if isinstance(value, tuple | list | np.ndarray) else (value,)
        if self.op in ("=", "!="):
            hit = any(str(item) == v for item in items for v in self.values)
        else:
            hit = any(v.lower() in str(item).lower() for item in items for v in self.values)
        return hit if self.op in ("=", "~") else not hit


def parse_group(expr: str) -> tuple[Clause, ...]:
    """Parse a group expression; errors name the clause and list allowed attributes/values."""
    text = expr.strip()
    if text in ("", "all"):
        return ()
    clauses = []
    for part in text.split(","):
        match = _CLAUSE.match(part)
        if not match:
            raise ConfigError(
                f"group '{expr}': cannot parse '{part.strip()}'; expected attribute=value, "
                "attribute!=value or attribute~text (e.g. gender=female, ethnicity~Black)"
            )
        attribute, op, raw = match.groups()
        if attribute not in schema.ATTRIBUTES:
            raise ConfigError(
                f"group '{expr}': unknown attribute '{attribute}'; expected one of {', '.join(schema.ATTRIBUTES)}"
            )
        values = tuple(v.strip() for v in raw.split("|") if v.strip())
        allowed = schema.COLUMNS[attribute][1]
        if allowed and op in ("=", "!="):
            bad = [v for v in values if v not in allowed]
            if bad:
                raise ConfigError(
                    f"group '{expr}': '{bad[0]}' is not a value of {attribute}; expected one of {', '.join(allowed)}"
                )
        clauses.append(Clause(attribute, op, values))
    return tuple(clauses)


def check_groups(exprs, key: str) -> None:
    """Parse every expression of config key `key` up front; an error names the key and item."""
    for i, expr in enumerate(exprs):
        try:
            parse_group(expr)
        except ConfigError as err:
            raise ConfigError(f"{key}[{i}]: {err}") from None


def group_mask(frame: pd.DataFrame, expr: str) -> np.ndarray:
    """Boolean mask of rows whose rater satisfies every clause of `expr`."""
    mask = np.ones(len(frame), dtype=bool)
    for clause in parse_group(expr):
        column = frame[clause.attribute]
        keys = column.map(lambda v: tuple(v) if isinstance(v, list | tuple | np.ndarray) else v)
        verdict = {k: clause.matches(k) for k in pd.unique(keys)}
        mask &= keys.map(verdict).to_numpy(bool)
    return mask

"""Read ratings in the long format (CSV, JSONL, Parquet) or as an Aligniverse export.

`load_ratings` is the one entry point: it reads, validates (strict or lenient),
applies the attention-check exclusion rule and returns a clean frame plus a report.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from jaxalign.config import RatingsConfig
from jaxalign.errors import DataError
from jaxalign.survey import schema
from jaxalign.survey.tables import (  # noqa: F401  (SUFFIXES, read_table: re-exported)
    SUFFIXES,
    ReadReport,
    drop_problem_rows,
    normalize_long,
    read_table,
)


def finalize(frame: pd.DataFrame) -> pd.DataFrame:
    """Typed, sorted, index-reset long frame without the provenance columns."""
    frame = frame.drop(columns=["_file", "_row"])
    frame["rating"] = frame["rating"].astype(np.int8)
    for column in ("attention_passed", "attention_total"):
        frame[column] = frame[column].astype(np.int32)
    frame["gender_focused"] = frame["gender_focused"].astype(bool)
    for column, (kind, _) in schema.COLUMNS.items():
        if kind == "str":
            frame[column] = frame[column].astype(object)
    order = {d: i for i, d in enumerate(schema.DIMENSIONS)}
    frame = (
        frame.assign(_d=frame["dimension"].map(order))
        .sort_values(["rater_id", "response_id", "_d"], kind="stable")
        .drop(columns="_d")
    )
    return frame.reset_index(drop=True)[list(schema.COLUMNS)]


def read_long(path: Path, strict: bool, report: ReadReport) -> pd.DataFrame:
    """Read and validate a long-format ratings file."""
    raw = read_table(path)
    report.rows_read += len(raw)
    frame = normalize_long(raw, report.problems)
    if strict:
        report.problems.raise_first()
    kept = drop_problem_rows(frame, report.problems)
    report.rows_dropped += len(frame) - len(kept)
    if kept.empty:
        raise DataError(
            f"{path}: every row was invalid ({len(report.problems)} problems); nothing to use"
        )
    return kept


def apply_attention_rule(
    frame: pd.DataFrame, min_fraction: float, report: ReadReport
) -> pd.DataFrame:
    """Drop raters who passed less than `min_fraction` of the attention checks they saw."""
    total = frame["attention_total"].to_numpy()
    passed = frame["attention_passed"].to_numpy()
    keep = (total == 0) | (passed >= min_fraction * total - 1e-9)
    report.raters_excluded_attention = int(frame.loc[~keep, "rater_id"].nunique())
    return frame.loc[keep]


def load_ratings(
    path: str | Path, config: RatingsConfig | None = None, report: ReadReport | None = None
) -> tuple[pd.DataFrame, ReadReport]:
    """Read ratings (long-format file or Aligniverse export directory), validate, exclude raters.

    Pass `report` to keep what was found even when reading fails (e.g. every row invalid).
    """
    config = config or RatingsConfig()
    path = Path(path)
    report = report if report is not None else ReadReport()
    if path.is_dir():
        from jaxalign.survey.aligniverse import read_export

        frame = read_export(path, config, report)
    else:
        frame = read_long(path, config.strict, report)
    frame = apply_attention_rule(frame, config.attention_min_fraction, report)
    if frame.empty:
        raise DataError(
            f"{path}: no raters left after the attention-check rule (ratings.attention_min_fraction={config.attention_min_fraction})"
        )
    return finalize(frame), report


def write_long(frame: pd.DataFrame, path: Path, suffix: str | None = None) -> None:
    """Write the long format as Parquet, CSV or JSONL (by `suffix`, default the path's), deterministically."""
    suffix = (suffix or path.suffix).lower()
    if suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pandas(frame, preserve_index=False)
        pq.write_table(table, path, compression="zstd")
    elif suffix == ".csv":
        out = frame.copy()
        for column in schema.LIST_ATTRIBUTES:
            out[column] = out[column].map(lambda v: json.dumps(list(v), ensure_ascii=False))
        out.to_csv(path, index=False, lineterminator="\n")
    elif suffix == ".jsonl":
        with open(path, "w", encoding="utf-8") as fh:
            for record in frame.to_dict(orient="records"):
                for column in schema.LIST_ATTRIBUTES:
                    record[column] = list(record[column])
                record = {k: (v.item() if hasattr(v, "item") else v) for k, v in record.items()}
                fh.write(json.dumps(record, ensure_ascii=False) + "\n")
    else:
        raise DataError(
            f"{path}: unsupported output type '{suffix}'; expected .parquet, .csv or .jsonl"
        )

"""Preference records from `prefs build` JSONL or TRL-format data, checked and split.

Accepted inputs: JSONL (one object a line), Parquet, and `datasets.save_to_disk` directories
(a `Dataset`, or a `DatasetDict` whose split names become the records' `split`; without a
validation split its train records count as unsplit). Records hold
`prompt`/`chosen`/`rejected` as strings (standard) or `{"role", "content"}` message lists
(conversational); TRL's implicit-prompt form (no `prompt`, the shared start of `chosen` and
`rejected` is the prompt) is accepted too. Optional fields: `weight` (finite, >= 0),
`soft_label` (in [0, 1]), `group` (text) and `split` (train | validation | test).

A record without `split` goes to validation when the hash of its prompt falls below
`data.validation_fraction` (so one prompt never lands in two splits, whatever the file order);
`data.eval_prefs` instead names a file whose every record is the validation set.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path

from jaxalign.errors import DataError

log = logging.getLogger("jaxalign")

SPLITS = ("train", "validation", "test")
# DatasetDict split names people use for a held-out set
SPLIT_ALIASES = {
    "valid": "validation",
    "val": "validation",
    "eval": "validation",
    "dev": "validation",
}
ROLES = ("system", "user", "assistant", "tool")


def read_rows(path: str | Path, kind: str = "preference file") -> list[tuple[str, object]]:
    """(location, raw row) pairs of a JSONL file, Parquet file or `datasets` directory; errors
    call it `kind` (e.g. "prompt file (grpo.prompts)")."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"{path}: {kind} not found")
    if path.is_dir():
        return _dataset_rows(path)
    if path.suffix == ".parquet":
        return _parquet_rows(path, kind)
    return _jsonl_rows(path, kind)


def _jsonl_rows(path: Path, kind: str) -> list[tuple[str, object]]:
    """Rows of a JSONL file; undecodable bytes and bad JSON are errors naming the line."""
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data.strip():
        raise DataError(f"{path}: {kind} is empty")
    rows = []
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        where = f"{path}: line {lineno}"
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise DataError(
                f"{where}: not UTF-8 text (byte 0x{raw[err.start]:02x} at column {err.start + 1})"
            ) from None
        if not line.strip():
            continue
        try:
            rows.append((where, json.loads(line)))
        except json.JSONDecodeError as err:
            raise DataError(f"{where}: invalid JSON ({err.msg})") from None
    return rows


def _parquet_rows(path: Path, kind: str) -> list[tuple[str, object]]:
    """Rows of a Parquet file, located by row number (1-based)."""
    import pyarrow.parquet as pq

    try:
        rows = pq.read_table(path).to_pylist()
    except Exception as err:  # pyarrow raises several types for a damaged file
        raise DataError(f"{path}: cannot read as Parquet ({type(err).__name__})") from None
    if not rows:
        raise DataError(f"{path}: {kind} is empty")
    return [(f"{path}: row {i}", row) for i, row in enumerate(rows, start=1)]


def _dataset_rows(path: Path) -> list[tuple[str, object]]:
    """Rows of a `save_to_disk` directory; a DatasetDict's split names fill `split`."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{path}: reading a datasets directory needs `pip install datasets`"
        ) from None
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as err:  # FileNotFoundError or arrow errors: not a saved dataset
        raise DataError(
            f"{path}: not a datasets.save_to_disk directory ({type(err).__name__})"
        ) from None
    parts = loaded.items() if isinstance(loaded, datasets.DatasetDict) else [(None, loaded)]
    names = {name: SPLIT_ALIASES.get(name, name) for name, _ in parts if name is not None}
    rows = []
    for name, part in parts:
        split = names.get(name)
        if split is not None and split not in SPLITS:
            raise DataError(
                f"{path}: split '{name}' is not one of {', '.join(SPLITS)} (or valid, eval, dev)"
            )
        if split == "train" and "validation" not in names.values():
            split = None  # no held-out split saved: the hashed validation split applies
        where = f"{path}" + (f" [{name}]" if name else "")
        for i, row in enumerate(part.to_list(), start=1):
            if split is not None:
                row = {**row, "split": split}
            rows.append((f"{where}: row {i}", row))
    if not rows:
        raise DataError(f"{path}: preference dataset is empty")
    return rows


def _turns(value, key: str, where: str):
    """A non-empty text or message list for `key`; messages keep only role and content."""
    if isinstance(value, str):
        if not value.strip():
            raise DataError(f"{where}: key '{key}' is empty")
        return value
    if isinstance(value, list) and value:
        out = []
        for i, m in enumerate(value):
            if not (
                isinstance(m, dict) and m.get("role") in ROLES and isinstance(m.get("content"), str)
            ):
                raise DataError(
                    f"{where}: key '{key}', message {i}: expected "
                    f"{{'role': {'|'.join(ROLES)}, 'content': text}}"
                )
            out.append({"role": m["role"], "content": m["content"]})
        return out
    if isinstance(value, list):
        raise DataError(f"{where}: key '{key}' is an empty message list")
    got = "null" if value is None else type(value).__name__
    raise DataError(f"{where}: key '{key}': expected text or a list of messages, got {got}")


def split_implicit(chosen, rejected, where: str):
    """(prompt, chosen, rejected) from TRL's implicit form: the shared start is the prompt."""
    if type(chosen) is not type(rejected):
        raise DataError(f"{where}: no 'prompt', and 'chosen' and 'rejected' differ in format")
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if isinstance(chosen, str):
        n = len(chosen[:n].rstrip())  # the space before the replies belongs to the replies
    if n == 0 or n == len(chosen) or n == len(rejected):
        raise DataError(
            f"{where}: no 'prompt' key, and 'chosen' and 'rejected' do not share a start "
            "followed by different replies (implicit prompt)"
        )
    return chosen[:n], chosen[n:], rejected[n:]


def _number(record: dict, key: str, where: str, low: float, high: float) -> float:
    """A finite number in [low, high] at `key` (default 1.0 when absent)."""
    value = record.get(key, 1.0)
    if isinstance(value, bool) or not isinstance(value, int | float):
        got = "null" if value is None else repr(value)[:40]
        raise DataError(f"{where}: key '{key}': expected a number, got {got}")
    if not (math.isfinite(value) and low <= value <= high):
        upper = "" if math.isinf(high) else f" and <= {high:g}"
        raise DataError(
            f"{where}: key '{key}': {value!r} is out of range; expected a finite number "
            f">= {low:g}{upper}"
        )
    return float(value)


def check(row, where: str) -> dict:
    """One row as a checked record (prompt split out, weight/soft label/group filled in)."""
    if not isinstance(row, dict):
        kind = {list: "an array", str: "a string"}.get(type(row), type(row).__name__)
        raise DataError(f"{where}: expected a JSON object with prompt/chosen/rejected, got {kind}")
    record = dict(row)
    chosen = _turns(record.get("chosen"), "chosen", where)
    rejected = _turns(record.get("rejected"), "rejected", where)
    if record.get("prompt") is None:
        record["prompt"], chosen, rejected = split_implicit(chosen, rejected, where)
    else:
        record["prompt"] = _turns(record["prompt"], "prompt", where)
    record["chosen"], record["rejected"] = chosen, rejected
    record["weight"] = _number(record, "weight", where, 0.0, math.inf)
    record["soft_label"] = _number(record, "soft_label", where, 0.0, 1.0)
    for key in ("group", "split"):
        if record.get(key) is None:
            record.pop(key, None)
        elif not isinstance(record[key], str):
            raise DataError(
                f"{where}: key '{key}': expected text, got {type(record[key]).__name__}"
            )
    record.setdefault("group", "all")
    if record.get("split", "train") not in SPLITS:
        raise DataError(f"{where}: key 'split': '{record['split'][:40]}' is not one of {SPLITS}")
    record["_where"] = where
    return record


def prompt_key(prompt) -> str:
    """Canonical text of a prompt: a string and the same one-user-turn list give one key."""
    from jaxalign.data.chat import as_messages

    return json.dumps(as_messages(prompt, "user"), sort_keys=True, ensure_ascii=False)


def hashed_split(prompt, validation_fraction: float) -> str:
    """'validation' when the prompt's hash falls below the fraction, else 'train'."""
    digest = hashlib.sha256(b"jaxalign-split\0" + prompt_key(prompt).encode()).digest()
    return (
        "validation" if int.from_bytes(digest[:8], "big") / 2**64 < validation_fraction else "train"
    )


def read_records(
    path: str | Path, split: str | None = None, validation_fraction: float = 0.1
) -> list[dict]:
    """Checked records of one split (None: all); records without `split` get the hashed one."""
    out = []
    for where, row in read_rows(path):
        record = check(row, where)
        record.setdefault("split", hashed_split(record["prompt"], validation_fraction))
        if split is None or record["split"] == split:
            out.append(record)
    return out


def read_split(data, split: str) -> list[dict]:
    """Records of `split` for a `DataConfig`: from data.prefs, or validation from data.eval_prefs."""
    if not data.eval_prefs:
        records = read_records(data.prefs, split, data.validation_fraction)
        if split == "validation" and not records:
            log.warning(
                "%s: no validation records, so no held-out metrics; raise "
                "data.validation_fraction (records without split) or set data.eval_prefs",
                data.prefs,
            )
        return records
    if split == "validation":
        return [{**r, "split": split} for r in read_records(data.eval_prefs, None)]
    # with a separate validation file, unsplit records of data.prefs all train
    return read_records(data.prefs, split, 0.0)

"""Typed, frozen config dataclasses from YAML and dotted `key=value` overrides.

Every value is checked against its field's annotation and metadata (`ge`, `le`,
`choices`); an unknown key, wrong type or out-of-range value is a `ConfigError`
naming the key, where it came from and what is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import reprlib
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar

import yaml

from jaxalign.errors import ConfigError

T = TypeVar("T")
MAX_YAML_NODES = 100_000  # real configs have hundreds; a "billion laughs" alias bomb has 10^9
_REPR = reprlib.Repr()  # Python 3.11's Repr takes no keyword arguments
_REPR.maxlevel, _REPR.maxlist, _REPR.maxtuple, _REPR.maxdict = 3, 8, 8, 8
_REPR.maxstring = _REPR.maxother = 120
# Floats YAML 1.2 reads but PyYAML (YAML 1.1) leaves as strings: 1e-5, 2E3, 1.0e5.
_FLOAT_12 = re.compile(r"[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)[eE][-+]?[0-9]+")


def _shown(value: Any) -> str:
    """A value for an error message, bounded (an alias bomb must not be printed expanded)."""
    return _REPR.repr(value)


def _fail(source: str, key: str, message: str) -> typing.NoReturn:
    """Raise a ConfigError located at `source: key`."""
    raise ConfigError(f"{source}: {key or '<root>'}: {message}")


def _describe(tp: Any) -> str:
    """Human-readable name of a type annotation."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    if origin is tuple:
        return f"a list of {_describe(typing.get_args(tp)[0])}"
    if origin is dict:
        return f"a mapping of {_describe(typing.get_args(tp)[1])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, source: str) -> Any:
    """Check `value` against annotation `tp`, converting lists to tuples and ints to floats."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        allowed = typing.get_args(tp)
        if value in allowed and type(value) in {type(a) for a in allowed}:
            return value
        _fail(source, key, f"{_shown(value)} is not allowed; expected {_describe(tp)}")
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(tp):
            try:
                return _coerce(value, arg, key, source)
            except ConfigError:
                continue
        _fail(source, key, f"{_shown(value)} is not {_describe(tp)}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            _fail(source, key, f"{_shown(value)} is not {_describe(tp)}")
        item_tp = typing.get_args(tp)[0]
        return tuple(_coerce(v, item_tp, f"{key}[{i}]", source) for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, dict):
            _fail(source, key, f"{_shown(value)} is not {_describe(tp)}")
        key_tp, val_tp = typing.get_args(tp)
        return {
            _coerce(k, key_tp, key, source): _coerce(v, val_tp, f"{key}.{k}", source)
            for k, v in value.items()
        }
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            _fail(source, key, f"{_shown(value)} is not a mapping")
        return from_dict(tp, value, source=source, prefix=key)
    if tp is type(None):
        if value is None:
            return None
        _fail(source, key, f"{_shown(value)} is not null")
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str) and _FLOAT_12.fullmatch(value):
        value = float(value)  # learning_rate: 1e-5 is a number, as in YAML 1.2 and JSON
    if tp is float and isinstance(value, float) and not math.isfinite(value):
        _fail(source, key, f"{_shown(value)} is not a finite number")
    if tp is bool and not isinstance(value, bool):
        _fail(source, key, f"{_shown(value)} is not a boolean (true/false)")
    if tp in (int, float) and isinstance(value, bool):
        _fail(source, key, f"{_shown(value)} is not {_describe(tp)}")
    if not isinstance(value, tp):
        _fail(source, key, f"{_shown(value)} is not {_describe(tp)}")
    return value


def _check_range(value: Any, meta: typing.Mapping[str, Any], key: str, source: str) -> None:
    """Apply `ge`/`le`/`gt`/`ne`/`choices` metadata to a field value."""
    if value is None:
        return
    if "ge" in meta and value < meta["ge"]:
        _fail(source, key, f"{_shown(value)} is out of range; expected a value >= {meta['ge']}")
    if "gt" in meta and value <= meta["gt"]:
        _fail(source, key, f"{_shown(value)} is out of range; expected a value > {meta['gt']}")
    if "ne" in meta and value == meta["ne"]:
        wanted = f"a value >= {meta['ge']} other than" if "ge" in meta else "anything but"
        _fail(source, key, f"{_shown(value)} is not allowed; expected {wanted} {meta['ne']}")
    if "le" in meta and value > meta["le"]:
        _fail(source, key, f"{_shown(value)} is out of range; expected a value <= {meta['le']}")
    if "choices" in meta:
        items = value if isinstance(value, tuple | dict) else (value,)
        for item in items:
            if item not in meta["choices"]:
                allowed = ", ".join(map(str, meta["choices"]))
                _fail(source, key, f"{item!r} is not allowed; expected one of {allowed}")


def from_dict(
    cls: type[T], data: dict[str, Any], *, source: str = "<config>", prefix: str = ""
) -> T:
    """Build dataclass `cls` from a (possibly partial) mapping, checking every key and value."""
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    kwargs = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in fields:
            allowed = ", ".join(sorted(fields))
            _fail(source, key, f"unknown key; allowed keys here: {allowed}")
        kwargs[name] = _coerce(value, hints[name], key, source)
        _check_range(kwargs[name], fields[name].metadata, key, source)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        _fail(source, prefix, str(err))


def to_dict(config: Any) -> dict[str, Any]:
    """Plain nested dict of a config (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, tuple | list):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(config)


def dump(config: Any) -> str:
    """Canonical YAML of a resolved config (sorted keys)."""
    return yaml.safe_dump(to_dict(config), sort_keys=True, allow_unicode=True)


def config_hash(config: Any) -> str:
    """Stable 12-hex-digit hash of a resolved config, used as a run id."""
    blob = json.dumps(to_dict(config), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def _expanded_size(node: yaml.Node, memo: dict[int, int]) -> int:
    """Nodes in the document once every alias is expanded (shared nodes counted each time)."""
    key = id(node)
    if key not in memo:
        memo[key] = 1  # a cycle counts once rather than recursing forever
        if isinstance(node, yaml.SequenceNode):
            memo[key] = 1 + sum(_expanded_size(n, memo) for n in node.value)
        elif isinstance(node, yaml.MappingNode):
            memo[key] = 1 + sum(
                _expanded_size(k, memo) + _expanded_size(v, memo) for k, v in node.value
            )
        if memo[key] > MAX_YAML_NODES:
            raise _TooBig
    return memo[key]


class _TooBig(Exception):
    """Raised while counting once the limit is passed."""


def safe_load(text: str, source: str) -> Any:
    """yaml.safe_load, refusing documents whose aliases expand beyond MAX_YAML_NODES nodes."""
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"{source}: YAML is nested too deeply") from None
        if node is None:
            return None
        try:
            _expanded_size(node, {})
        except _TooBig:
            raise ConfigError(
                f"{source}: YAML expands to more than {MAX_YAML_NODES:,} values "
                "(aliases nested too deeply?)"
            ) from None
        return loader.construct_document(node)
    finally:
        loader.dispose()


def read_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping; errors name the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read config: {err}") from None
    try:
        data = safe_load(text, str(path))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        raise ConfigError(f"{path}: {where}invalid YAML: {getattr(err, 'problem', err)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_override(data: dict[str, Any], override: str) -> None:
    """Apply one dotted `a.b.c=value` override (value parsed as YAML) to a nested dict in place."""
    if "=" not in override:
        raise ConfigError(f"override {override!r}: expected key=value (e.g. prefs.scale=3)")
    key, raw = override.split("=", 1)
    key = key.strip()
    if not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override {override!r}: empty key")
    try:
        value = safe_load(raw, f"override {key}") if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = {}
            node[part] = child
        node = child
    node[parts[-1]] = value


def merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge mapping `update` into a copy of `base`."""
    out = dict(base)
    for k, v in update.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = merge(out[k], v)
        else:
            out[k] = v
    return out

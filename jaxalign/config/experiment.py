"""Experiment configs (`configs/experiments/*.yaml`): base configs, a grid, seeds, modes, comparisons.

An experiment file is checked completely before anything is written; every mistake a user can
make in it is an `ExperimentUsageError` (the CLI exits 2) naming the file and the key.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxalign.config.core import read_yaml
from jaxalign.errors import ConfigError

MODES = ("smoke", "cpu", "gpu", "full")
TOP_KEYS = ("name", "description", "base", "set", "grid", "conditions", "seeds", "seed_keys")
TOP_KEYS += ("modes", "compare", "notes")
MODE_KEYS = ("base", "set", "seeds", "eval")
COMPARE_KEYS = ("name", "dimension", "a", "b", "paper", "scorer", "group", "note")
EVAL_ARGS = {"max_new_tokens": 48, "prompts": 8}


class ExperimentUsageError(ConfigError):
    """A mistake in an experiment file or its command line (the CLI exits 2)."""


def _fail(source: str, key: str, message: str):
    """Raise an ExperimentUsageError located at `source: key`."""
    raise ExperimentUsageError(f"{source}: {key}: {message}")


@dataclass(frozen=True)
class Mode:
    """What a mode adds to every cell: base files, overrides, seeds, evaluation limits."""

    base: tuple[Path, ...] = ()
    set: dict[str, Any] = field(default_factory=dict)
    seeds: tuple[int, ...] | None = None
    eval: dict[str, int] = field(default_factory=lambda: dict(EVAL_ARGS))


@dataclass(frozen=True)
class Compare:
    """A reported comparison of condition `a` with condition `b` on one dimension."""

    name: str
    dimension: str
    a: str
    b: str
    paper: str = ""
    scorer: str = ""
    group: str = "all"
    note: str = ""


@dataclass(frozen=True)
class Experiment:
    """A parsed experiment file; `conditions()` expands it to named override sets."""

    path: Path
    name: str
    description: str = ""
    base: tuple[Path, ...] = ()
    set: dict[str, Any] = field(default_factory=dict)
    grid: tuple[tuple[str, tuple[tuple[str, dict[str, Any]], ...]], ...] = ()
    named: tuple[tuple[str, dict[str, Any]], ...] = ()
    seeds: tuple[int, ...] = (0,)
    seed_keys: tuple[str, ...] = ("data.seed",)
    modes: dict[str, Mode] = field(default_factory=dict)
    compare: tuple[Compare, ...] = ()
    notes: str = ""

    def conditions(self) -> list[tuple[str, dict[str, Any]]]:
        """(label, overrides) of every grid point (cartesian, in file order) then named ones."""
        out = []
        if self.grid:
            for combo in itertools.product(*(levels for _, levels in self.grid)):
                label = ",".join(f"{axis}={lv}" for (axis, _), (lv, _) in zip(self.grid, combo))
                merged: dict[str, Any] = {}
                for _, overrides in combo:
                    merged.update(overrides)
                out.append((label, merged))
        return out + [(name, dict(o)) for name, o in self.named]


def _label(value: Any) -> str:
    """A grid value as it appears in a condition label."""
    return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))


def _overrides(value: Any, source: str, key: str) -> dict[str, Any]:
    """A mapping of dotted keys to values (a condition or a grid level)."""
    if not isinstance(value, dict) or not value:
        _fail(source, key, "expected a non-empty mapping of dotted keys to values")
    for k in value:
        if not isinstance(k, str) or not k or any(not p for p in k.split(".")):
            _fail(source, key, f"{k!r} is not a dotted config key like prefs.scale")
    return dict(value)


def _grid(raw: Any, source: str) -> tuple:
    """Grid axes: `key: [values]` (label key=value) or `axis: {level: {key: value}}`."""
    if not isinstance(raw, dict):
        _fail(source, "grid", "expected a mapping of axes to lists of values or named levels")
    axes = []
    for axis, levels in raw.items():
        where = f"grid.{axis}"
        if isinstance(levels, list):
            if not levels:
                _fail(source, where, "empty list of values; give at least one")
            named = [(_label(v), {axis: v}) for v in levels]
        elif isinstance(levels, dict):
            if not levels:
                _fail(source, where, "no levels; give at least one")
            named = [(str(n), _overrides(o, source, f"{where}.{n}")) for n, o in levels.items()]
        else:
            _fail(source, where, "expected a list of values or a mapping of named levels")
        labels = [n for n, _ in named]
        if len(set(labels)) != len(labels):
            _fail(source, where, f"levels {labels} repeat a label")
        axes.append((str(axis), tuple(named)))
    return tuple(axes)


def _seeds(raw: Any, source: str, key: str) -> tuple[int, ...]:
    """A non-empty list of distinct non-negative integer seeds."""
    ok = isinstance(raw, list) and raw and all(type(s) is int and s >= 0 for s in raw)
    if not ok or len(set(raw)) != len(raw):
        _fail(source, key, f"{raw!r} is not a non-empty list of distinct integers >= 0")
    return tuple(raw)


def _paths(raw: Any, here: Path, source: str, key: str) -> tuple[Path, ...]:
    """Config files named relative to the experiment file."""
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not all(isinstance(p, str) and p for p in items):
        _fail(source, key, "expected a path or a list of paths (relative to this file)")
    return tuple((here / p) for p in items)


def _mode(raw: Any, here: Path, source: str, name: str) -> Mode:
    """One entry of `modes`."""
    if name not in MODES:
        _fail(source, f"modes.{name}", f"unknown mode; allowed: {', '.join(MODES)}")
    raw = raw or {}
    if not isinstance(raw, dict):
        _fail(source, f"modes.{name}", "expected a mapping")
    for k in raw:
        if k not in MODE_KEYS:
            _fail(source, f"modes.{name}.{k}", f"unknown key; allowed: {', '.join(MODE_KEYS)}")
    ev = dict(EVAL_ARGS)
    for k, v in (raw.get("eval") or {}).items():
        if k not in EVAL_ARGS or type(v) is not int or v < 1:
            _fail(source, f"modes.{name}.eval.{k}", f"expected one of {list(EVAL_ARGS)}: int>=1")
        ev[k] = v
    return Mode(
        base=_paths(raw.get("base", []), here, source, f"modes.{name}.base"),
        set=_overrides(raw["set"], source, f"modes.{name}.set") if raw.get("set") else {},
        seeds=_seeds(raw["seeds"], source, f"modes.{name}.seeds") if "seeds" in raw else None,
        eval=ev,
    )


def _modes(raw: Any, here: Path, source: str) -> dict[str, Mode]:
    """`modes:` inline, or a path to a shared modes file."""
    if isinstance(raw, str):
        path = here / raw
        return _modes(read_yaml(path), path.parent, str(path))
    if not isinstance(raw, dict):
        _fail(source, "modes", "expected a mapping of mode names or a path to a modes file")
    return {name: _mode(v, here, source, name) for name, v in raw.items()}


def _compare(raw: Any, source: str) -> tuple[Compare, ...]:
    """The `compare:` list."""
    if not isinstance(raw, list):
        _fail(source, "compare", "expected a list of comparisons")
    out = []
    for i, item in enumerate(raw):
        where = f"compare[{i}]"
        if not isinstance(item, dict):
            _fail(source, where, "expected a mapping")
        for k in item:
            if k not in COMPARE_KEYS:
                _fail(source, f"{where}.{k}", f"unknown key; allowed: {', '.join(COMPARE_KEYS)}")
        for k in ("name", "dimension", "a", "b"):
            if not isinstance(item.get(k), str) or not item[k]:
                _fail(source, f"{where}.{k}", "required (a non-empty string)")
        out.append(Compare(**{k: str(v) for k, v in item.items()}))
    names = [c.name for c in out]
    if len(set(names)) != len(names):
        _fail(source, "compare", f"names {names} repeat a name")
    return tuple(out)


def load_experiment(path: str | Path) -> Experiment:
    """Read and check an experiment file (not yet resolved against the jaxalign config)."""
    path = Path(path)
    raw, source, here = read_yaml(path), str(path), path.parent
    for k in raw:
        if k not in TOP_KEYS:
            _fail(source, k, f"unknown key; allowed keys here: {', '.join(sorted(TOP_KEYS))}")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        _fail(source, "name", f"{name!r} is not a name of letters, digits, '-' and '_'")
    named = raw.get("conditions") or {}
    if not isinstance(named, dict):
        _fail(source, "conditions", "expected a mapping of condition names to overrides")
    seed_keys = raw.get("seed_keys", ["data.seed"])
    if not isinstance(seed_keys, list) or not all(isinstance(k, str) for k in seed_keys):
        _fail(source, "seed_keys", "expected a list of dotted keys")
    exp = Experiment(
        path=path,
        name=name,
        description=str(raw.get("description", "")),
        base=_paths(raw.get("base", []), here, source, "base"),
        set=_overrides(raw["set"], source, "set") if raw.get("set") else {},
        grid=_grid(raw.get("grid", {}), source),
        named=tuple((str(n), _overrides(o, source, f"conditions.{n}")) for n, o in named.items()),
        seeds=_seeds(raw.get("seeds", [0]), source, "seeds"),
        seed_keys=tuple(seed_keys),
        modes=_modes(raw.get("modes", {}), here, source),
        compare=_compare(raw.get("compare", []), source),
        notes=str(raw.get("notes", "")),
    )
    _check_conditions(exp, source)
    return exp


def _check_conditions(exp: Experiment, source: str) -> None:
    """At least one condition; labels unique; every comparison names existing conditions."""
    labels = [label for label, _ in exp.conditions()]
    if not labels:
        _fail(source, "grid", "empty: give grid axes or named conditions")
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        _fail(source, "conditions", f"{dup} name a condition twice")
    for i, comp in enumerate(exp.compare):
        for side in ("a", "b"):
            if getattr(comp, side) not in labels:
                _fail(
                    source,
                    f"compare[{i}].{side}",
                    f"{getattr(comp, side)!r} is not a condition; conditions: {', '.join(labels)}",
                )

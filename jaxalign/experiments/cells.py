"""Cells: an experiment's conditions x seeds, each a fully resolved config with a hash id."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxalign.config import Config
from jaxalign.config.core import from_dict, merge, read_yaml
from jaxalign.config.experiment import Experiment, ExperimentUsageError
from jaxalign.config.flat import non_defaults
from jaxalign.config.schema import TrainConfig

ALGORITHM_KEY = "train.algorithm"
# Where a cell's data and run live is the runner's business: placeholders keep them out of ids.
PLACEHOLDERS = {"train.run_dir": "<cell>/train", "data.prefs": "<cell>/prefs.jsonl"}


@dataclass(frozen=True)
class Cell:
    """One resolved condition x seed; `id` hashes the resolved config, so key order is moot."""

    id: str
    condition: str
    seed: int
    config: Config
    algorithm: str = "dpo"
    eval_args: dict[str, int] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """condition/seedN, as shown to people."""
        return f"{self.condition}/seed{self.seed}"


def set_key(data: dict[str, Any], key: str, value: Any) -> None:
    """Set dotted `key` in nested mapping `data` (in place)."""
    node = data
    parts = key.split(".")
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[parts[-1]] = copy.deepcopy(value)


def _base_data(exp: Experiment, mode: str) -> dict[str, Any]:
    """The merged base files (experiment's, then the mode's) and `set:` overrides."""
    if mode not in exp.modes:
        defined = ", ".join(exp.modes) or "none"
        raise ExperimentUsageError(
            f"{exp.path}: modes: mode {mode!r} is not defined (defined: {defined})"
        )
    m = exp.modes[mode]
    data: dict[str, Any] = {}
    for path in (*exp.base, *m.base):
        data = merge(data, read_yaml(path))
    for key, value in (*m.set.items(), *exp.set.items()):
        set_key(data, key, value)
    return data


def _algorithm(data: dict[str, Any]) -> str:
    """Pop `train.algorithm` while the config has no such key (its cells are then blocked)."""
    has_field = any(f.name == "algorithm" for f in dataclasses.fields(TrainConfig))
    train = data.get("train") or {}
    if has_field:
        return str(train.get("algorithm", "dpo"))
    return str(train.pop("algorithm", "dpo"))


def _resolve(data: dict[str, Any], source: str) -> Config:
    """Config from a mapping; a bad key or value is a usage error naming the cell."""
    try:
        return from_dict(Config, data, source=source)
    except ExperimentUsageError:
        raise
    except Exception as err:  # ConfigError, or a dataclass check raising it
        raise ExperimentUsageError(str(err)) from None


def cell_id(config: Config, algorithm: str) -> str:
    """12 hex digits of the keys that differ from their defaults (as run ids hash them: a key
    added later at its default leaves every id as it was), plus the algorithm."""
    blob = {"config": non_defaults(config), "algorithm": algorithm}
    text = json.dumps(blob, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def earlier_cells(cells_dir: Path, skip: set[str] = frozenset()) -> dict[str, Path]:
    """{cell id now: directory} for cell directories named by another id: ids that hashed every
    key (before 2026-11-28), or a version with fewer keys. Matched by re-reading each
    directory's cell.yaml; one that no longer parses (a removed key) matches nothing."""
    found: dict[str, Path] = {}
    if not cells_dir.is_dir():
        return found
    for where in sorted(cells_dir.iterdir()):
        path = where / "cell.yaml"
        if where.name in skip or not path.is_file():
            continue
        try:
            config = from_dict(Config, read_yaml(path), source=str(path))
        except Exception:  # a key this version no longer has: not one of its cells
            continue
        head = re.search(r"\(algorithm (\w+)\)", path.read_text(encoding="utf-8").split("\n")[0])
        algorithm = head.group(1) if head else str(getattr(config.train, "algorithm", "dpo"))
        found.setdefault(cell_id(config, algorithm), where)
    return found


def expand(exp: Experiment, mode: str, overrides: dict[str, Any] | None = None) -> list[Cell]:
    """Every cell of `exp` in `mode`, sorted by id; two conditions giving one config is an error."""
    base = _base_data(exp, mode)
    seeds = exp.modes[mode].seeds or exp.seeds
    cells: dict[str, Cell] = {}
    for label, cond in exp.conditions():
        for seed in seeds:
            data = copy.deepcopy(base)
            for key, value in (*cond.items(), *(overrides or {}).items()):
                set_key(data, key, value)
            for key in exp.seed_keys:
                set_key(data, key, seed)
            for key, value in PLACEHOLDERS.items():
                set_key(data, key, value)
            algorithm = _algorithm(data)
            config = _resolve(data, f"{exp.path}: condition {label}")
            cell = Cell(cell_id(config, algorithm), label, seed, config, algorithm)
            cell = dataclasses.replace(cell, eval_args=dict(exp.modes[mode].eval))
            if cell.id in cells:
                raise ExperimentUsageError(
                    f"{exp.path}: conditions {cells[cell.id].label} and {cell.label} resolve "
                    "to the same config; make them differ or drop one"
                )
            cells[cell.id] = cell
    return [cells[k] for k in sorted(cells)]


def parse_shard(text: str, environ: dict[str, str] | None = None) -> tuple[int, int]:
    """`i/n` (0 <= i < n), or `auto` from a SLURM array or a Kubernetes Indexed Job."""
    if text == "auto":
        return _auto_shard(environ or {})
    index, _, count = text.partition("/")
    try:
        i, n = int(index), int(count)
    except ValueError:
        raise ExperimentUsageError(f"--shard {text}: expected i/n, e.g. 0/4, or auto") from None
    if n < 1 or not 0 <= i < n:
        raise ExperimentUsageError(f"--shard {text}: expected 0 <= i < n (shards count from 0)")
    return i, n


def _auto_shard(env: dict[str, str]) -> tuple[int, int]:
    """SLURM_ARRAY_TASK_ID/COUNT (min id 0 assumed unless SLURM_ARRAY_TASK_MIN says otherwise),
    or JOB_COMPLETION_INDEX with JAXALIGN_SHARD_COUNT (a Kubernetes Indexed Job's completions)."""
    if "SLURM_ARRAY_TASK_ID" in env and "SLURM_ARRAY_TASK_COUNT" in env:
        low = int(env.get("SLURM_ARRAY_TASK_MIN", "0") or 0)
        i, n = int(env["SLURM_ARRAY_TASK_ID"]) - low, int(env["SLURM_ARRAY_TASK_COUNT"])
    elif "JOB_COMPLETION_INDEX" in env and "JAXALIGN_SHARD_COUNT" in env:
        i, n = int(env["JOB_COMPLETION_INDEX"]), int(env["JAXALIGN_SHARD_COUNT"])
    else:
        raise ExperimentUsageError(
            "--shard auto: set SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT (sbatch --array), "
            "or JOB_COMPLETION_INDEX and JAXALIGN_SHARD_COUNT (Kubernetes Indexed Job)"
        )
    return parse_shard(f"{i}/{n}")


def shard(cells: list[Cell], i: int, n: int) -> list[Cell]:
    """The cells of shard i of n: every n-th cell in id order, so shards never overlap."""
    ordered = sorted(cells, key=lambda c: c.id)
    return [c for k, c in enumerate(ordered) if k % n == i]


def parse_overrides(items: list[str]) -> dict[str, Any]:
    """`k=v` command-line overrides (values parsed as YAML) as a dotted-key mapping."""
    from jaxalign.config.core import apply_override

    out: dict[str, Any] = {}
    for item in items:
        probe: dict[str, Any] = {}
        try:
            apply_override(probe, item)
        except Exception as err:
            raise ExperimentUsageError(str(err)) from None
        key = item.split("=", 1)[0].strip()
        node: Any = probe
        for part in key.split("."):
            node = node[part]
        out[key] = node
    return out

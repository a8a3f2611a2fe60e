"""Run cells stage by stage: finished stages skipped, shared stages locked, failures isolated.

Layout under ROOT: `_shared/<stage>-<key>/` for stages many cells share (content-addressed:
the key is in the name), `NAME/cells/<id>/{cell.yaml, <stage>/, status.json}` for the rest.
Beside each stage directory, `<dir>.started.json` records the key a stage started with and
`<dir>.done.json` the key it finished with and a hash of its output. A stage is keyed by a hash
of its inputs: its config sections and the keys and output hashes of the stages before it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxalign.config import dump
from jaxalign.errors import JaxalignError
from jaxalign.experiments.cells import Cell, earlier_cells
from jaxalign.experiments.locks import LockBusy, lock
from jaxalign.io import staged_files


class StageChanged(JaxalignError):
    """A stage's inputs differ from those it ran (or started) with; --rerun redoes it."""


@dataclass(frozen=True)
class Stage:
    """A step of every cell: `inputs` gives its key material, `run` does the work in ctx.dir."""

    name: str
    inputs: Callable[[Cell, dict[str, dict]], dict]
    run: Callable[[Context], str]  # returns a hash of what it wrote
    shared: bool = False
    # Cells this stage is for (None: every cell); others skip it without a record.
    applies: Callable[[Cell], bool] | None = None


@dataclass
class Context:
    """What a stage's `run` sees."""

    cell: Cell
    dir: Path
    upstream: dict[str, dict]  # earlier stages' done records, by stage name
    root: Path

    def path(self, stage: str) -> Path:
        """The absolute directory of an earlier stage."""
        return (self.root / self.upstream[stage]["dir"]).resolve()


@dataclass
class Runner:
    """Runs cells of one experiment under `root`."""

    root: Path
    name: str
    stages: list[Stage]
    rerun: bool = False
    blocked: Callable[[Cell], str | None] = lambda cell: None
    log: Callable[[str], None] = print
    stale_after: float = 6 * 3600.0
    done: list[dict] = field(default_factory=list)
    _earlier: dict[str, Path] | None = field(default=None, repr=False)

    @property
    def exp_dir(self) -> Path:
        """ROOT/NAME."""
        return self.root / self.name

    def cell_dir(self, cell: Cell) -> Path:
        """ROOT/NAME/cells/<id>, or the directory an earlier version made for the same config
        under another id (`earlier_cells`), so an existing root keeps its finished cells."""
        path = self.exp_dir / "cells" / cell.id
        if path.exists():
            return path
        if self._earlier is None:
            self._earlier = earlier_cells(self.exp_dir / "cells")
        return self._earlier.get(cell.id, path)

    def stage_dir(self, stage: Stage, cell: Cell, key: str) -> Path:
        """Where a stage writes (shared stages: named by their key)."""
        if stage.shared:
            return self.root / "_shared" / f"{stage.name}-{key[:16]}"
        return self.cell_dir(cell) / stage.name

    def run(self, cells: list[Cell]) -> list[dict]:
        """Run every cell; each returns its status record; one failure never stops the rest."""
        statuses = []
        for n, cell in enumerate(cells, 1):
            self.log(f"[{n}/{len(cells)}] cell {cell.id} {cell.label}")
            statuses.append(self.run_cell(cell))
            self.log(
                f"  -> {statuses[-1]['status']}{stage_seconds(statuses[-1])}{_why(statuses[-1])}"
            )
        return statuses

    def run_cell(self, cell: Cell) -> dict:
        """Run one cell's stages; the returned status is also written to its status.json."""
        status: dict[str, Any] = {"id": cell.id, "label": cell.label, "stages": {}}
        reason = self.blocked(cell)
        if reason:
            return self._finish(cell, {**status, "status": "blocked", "error": reason})
        try:
            cell_lock = self.cell_dir(cell).with_suffix(".lock")
            with lock(cell_lock, wait=False, stale_after=self.stale_after):
                self._write_cell(cell)
                self._stages(cell, status)
        except LockBusy as err:
            return {**status, "status": "busy", "error": str(err)}
        except Exception as err:  # a cell's failure is recorded; the sweep goes on
            failed = {"status": "failed", "error": f"{type(err).__name__}: {err}"}
            if not isinstance(err, JaxalignError):
                failed["error"] = f"internal error: {failed['error']}"
            return self._finish(cell, {**status, **failed})
        return self._finish(cell, {**status, "status": "done"})

    def _stages(self, cell: Cell, status: dict) -> None:
        """Run or skip each stage in order, recording what happened in `status`."""
        upstream: dict[str, dict] = {}
        for stage in self.stages:
            if stage.applies is not None and not stage.applies(cell):
                continue
            status["failed_stage"] = stage.name
            started = time.monotonic()
            record, action = self._stage(stage, cell, upstream)
            upstream[stage.name] = record
            seconds = round(time.monotonic() - started, 3)
            status["stages"][stage.name] = {"action": action, "key": record["key"], "s": seconds}
        status.pop("failed_stage")

    def _stage(self, stage: Stage, cell: Cell, upstream: dict) -> tuple[dict, str]:
        """One stage: skipped if done with the same key, else run (under a lock if shared)."""
        inputs = stage.inputs(cell, upstream)
        key = hash_of(inputs)
        where = self.stage_dir(stage, cell, key)
        record = read_json(_done(where))
        if record and record.get("key") == key:
            return record, "skipped"
        if not stage.shared:
            return self._run_stage(stage, cell, upstream, where, key, record), "ran"
        with lock(where.with_name(where.name + ".lock"), stale_after=self.stale_after):
            record = read_json(_done(where))  # another shard may have finished it meanwhile
            if record and record.get("key") == key:
                return record, "skipped"
            return self._run_stage(stage, cell, upstream, where, key, record), "ran"

    def _run_stage(self, stage, cell, upstream, where: Path, key: str, done) -> dict:
        """Refuse changed inputs (unless --rerun), then run the stage and record it done."""
        begun = read_json(_started(where))
        old = (done or {}).get("key") or (begun or {}).get("key")
        if old and old != key:
            if not self.rerun:
                raise StageChanged(
                    f"stage {stage.name} of cell {cell.id}: its inputs changed since it ran "
                    f"(key {old[:12]}, now {key[:12]}); pass --rerun to redo it"
                )
            shutil.rmtree(where, ignore_errors=True)
            _done(where).unlink(missing_ok=True)
        elif not old and where.exists() and not stage.shared:
            shutil.rmtree(where)  # left by a stage that never recorded a start: not resumable
        write_json(_started(where), {"stage": stage.name, "key": key})
        where.mkdir(parents=True, exist_ok=True)
        output = stage.run(Context(cell, where, upstream, self.root))
        # Relative to ROOT, so a root may be moved or mounted elsewhere (Context.path).
        rel = where.relative_to(self.root).as_posix()
        record = {"stage": stage.name, "key": key, "output": output, "dir": rel}
        write_json(_done(where), record)
        return record

    def _write_cell(self, cell: Cell) -> None:
        """cells/<id>/cell.yaml: the resolved config (written once; the id is its hash)."""
        path = self.cell_dir(cell) / "cell.yaml"
        if not path.exists():
            head = f"# cell {cell.id}: {cell.label} (algorithm {cell.algorithm})\n"
            with staged_files(path) as (tmp,):
                tmp.write_text(head + dump(cell.config), encoding="utf-8")

    def _finish(self, cell: Cell, status: dict) -> dict:
        """Write the cell's status.json and keep the status."""
        status = {**status, "condition": cell.condition, "seed": cell.seed}
        write_json(self.cell_dir(cell) / "status.json", status)
        self.done.append(status)
        return status


def stage_seconds(status: dict, order: list[str] | None = None) -> str:
    """' (train 9.1 s, eval 0.8 s)': wall seconds of the stages that ran (skipped ones cost ~0),
    in `order` (status.json's keys are sorted)."""
    stages = status.get("stages", {})
    names = [n for n in order if n in stages] if order else list(stages)
    ran = [f"{n} {stages[n]['s']:.1f} s" for n in names if stages[n].get("action") == "ran"]
    return f" ({', '.join(ran)})" if ran else ""


def _why(status: dict) -> str:
    """': reason' for a cell that did not finish."""
    return f": {status['error']}" if status.get("error") else ""


def _done(where: Path) -> Path:
    """The done record beside a stage directory."""
    return where.with_name(where.name + ".done.json")


def _started(where: Path) -> Path:
    """The started record beside a stage directory."""
    return where.with_name(where.name + ".started.json")


def hash_of(data: Any) -> str:
    """SHA-256 of canonical JSON (sorted keys), hex."""
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def read_json(path: Path) -> dict | None:
    """A JSON object, or None if missing or unreadable (a half-written file counts as missing)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def write_json(path: Path, data: Any) -> None:
    """Atomically write sorted, indented JSON."""
    with staged_files(path) as (tmp,):
        tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def read_statuses(runner: Runner, cells: list[Cell]) -> dict[str, dict]:
    """Each cell's status.json (cells never run are absent)."""
    out = {}
    for cell in cells:
        status = read_json(runner.cell_dir(cell) / "status.json")
        if status:
            out[cell.id] = status
    return out

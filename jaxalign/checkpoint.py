"""Orbax checkpoints: train state + data-iterator state + resolved config + meta, per step.

Retention is ours, not Orbax's: the newest `keep` steps stay, plus the best step by
`best_metric` among those saved with evaluations. Restoring falls back past a step only when
it is unreadable (a crash mid-write, damaged files); any other error surfaces.
"""

from __future__ import annotations

import json
import logging
import subprocess
from pathlib import Path

import jax
import orbax.checkpoint as ocp

log = logging.getLogger("jaxalign")

# Messages of tensorstore/Orbax errors that mean "the bytes on disk are damaged or missing".
_UNREADABLE = ("DATA_LOSS", "NOT_FOUND", "Error reading", "Error opening", "corrupt", "checksum")


def git_commit() -> str:
    """The current git commit of the source tree, or 'unknown'."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def unreadable(err: BaseException) -> bool:
    """Whether a restore error means the checkpoint's files are damaged or incomplete."""
    if isinstance(err, OSError | json.JSONDecodeError | UnicodeDecodeError):
        return True
    if isinstance(err, KeyError):
        return "not found in the checkpoint" in str(err)
    return isinstance(err, ValueError) and any(m in str(err) for m in _UNREADABLE)


def keep_steps(steps: list[int], keep: int, scores: dict[int, float]) -> set[int]:
    """Steps to keep: the newest `keep`, plus the best-scoring one (ties: the newest)."""
    kept = set(sorted(steps)[-keep:])
    scored = [s for s in steps if s in scores]
    if scored:
        kept.add(max(scored, key=lambda s: (scores[s], s)))
    return kept


class Checkpoints:
    """A CheckpointManager over `run_dir/checkpoints` with keep-N plus best-by-metric."""

    def __init__(
        self,
        run_dir: str | Path,
        keep: int = 2,
        best_metric: str | None = None,
        async_save: bool = False,
        create: bool = True,
    ):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None, enable_async_checkpointing=async_save, create=create
        )
        self.directory = Path(run_dir).absolute() / "checkpoints"
        self.keep, self.best_metric = keep, best_metric
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        """Saved steps, oldest first."""
        return sorted(self.manager.all_steps())

    def save(self, step: int, state, data_state: dict, config: dict, meta: dict, metrics=None):
        """Save (asynchronously when configured) one step, then apply retention."""
        score = (metrics or {}).get(self.best_metric) if self.best_metric else None
        meta = {**meta, "score": score}
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave(data_state),
                config=ocp.args.JsonSave(config),
                meta=ocp.args.JsonSave(meta),
            ),
        )
        self._retain(step, score)

    def _retain(self, newest: int, score: float | None) -> None:
        """Delete steps outside the newest `keep` and the best one (never `newest`)."""
        scores = {s: v for s in self.steps() if s != newest and (v := self._score(s)) is not None}
        if score is not None:
            scores[newest] = score
        steps = sorted(set(self.steps()) | {newest})
        for step in set(steps) - keep_steps(steps, self.keep, scores) - {newest}:
            self.manager.delete(step)

    def _score(self, step: int) -> float | None:
        """The best-metric value saved with a step (None if it had no evaluation)."""
        try:
            meta = json.loads((self.directory / str(step) / "meta" / "metadata").read_text())
        except (OSError, ValueError):
            return None
        score = meta.get("score") if isinstance(meta, dict) else None
        return float(score) if isinstance(score, int | float) else None

    def read_json(self, step: int, item: str) -> dict:
        """One JSON item ('config', 'meta', 'data') of a step."""
        args = ocp.args.Composite(**{item: ocp.args.JsonRestore()})
        return self.manager.restore(step, args=args)[item]

    def restore(self, step: int, abstract_state) -> tuple[object, dict]:
        """(state, data_state) of one step."""
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state), data=ocp.args.JsonRestore()
            ),
        )
        return out.state, out.data

    def wait(self) -> None:
        """Block until async saves are done."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release resources."""
        self.manager.wait_until_finished()
        self.manager.close()


def warn_unreadable(directory: Path, step: int, err: BaseException) -> None:
    """Say that a damaged step is skipped."""
    log.warning(
        "checkpoint step %d in %s cannot be restored (%s: %s); trying the previous one",
        step,
        directory,
        type(err).__name__,
        (str(err).splitlines() or [""])[0][:200],
    )


def abstract(tree):
    """ShapeDtypeStructs (with shardings) of a pytree of arrays."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)

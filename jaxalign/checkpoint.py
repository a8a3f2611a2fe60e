"""Orbax checkpoints: train state + data-iterator state + resolved config + meta, per step.

`latest` falls back to the previous step (with a warning) when the newest one cannot be
restored, so a crash mid-save never loses a run.
"""

from __future__ import annotations

import logging
import subprocess
from pathlib import Path

import jax
import orbax.checkpoint as ocp

log = logging.getLogger("jaxalign")


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


class Checkpoints:
    """A CheckpointManager over `run_dir/checkpoints` with keep-N and best-by-metric."""

    def __init__(self, run_dir: str | Path, keep: int, best_metric: str | None, async_save: bool):
        options = ocp.CheckpointManagerOptions(
            max_to_keep=keep,
            best_fn=(lambda m: float(m.get(best_metric, float("-inf")))) if best_metric else None,
            best_mode="max",
            keep_checkpoints_without_metrics=True,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self.directory = Path(run_dir).absolute() / "checkpoints"
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def steps(self) -> list[int]:
        """Saved steps, oldest first."""
        return sorted(self.manager.all_steps())

    def save(
        self,
        step: int,
        state,
        data_state: dict,
        config: dict,
        meta: dict,
        metrics: dict | None = None,
    ) -> None:
        """Save (asynchronously when configured) one step."""
        self.manager.save(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardSave(state),
                data=ocp.args.JsonSave(data_state),
                config=ocp.args.JsonSave(config),
                meta=ocp.args.JsonSave(meta),
            ),
            metrics=metrics,
        )

    def restore(self, step: int, abstract_state) -> tuple[object, dict, dict]:
        """(state, data_state, meta) of one step."""
        out = self.manager.restore(
            step,
            args=ocp.args.Composite(
                state=ocp.args.StandardRestore(abstract_state),
                data=ocp.args.JsonRestore(),
                meta=ocp.args.JsonRestore(),
            ),
        )
        return out.state, out.data, out.meta

    def restore_latest(self, abstract_state):
        """Restore the newest restorable step: (step, state, data_state, meta), or None if there are none."""
        for step in reversed(self.steps()):
            try:
                state, data, meta = self.restore(step, abstract_state)
                return step, state, data, meta
            except Exception as err:
                log.warning(
                    "checkpoint step %d in %s cannot be restored (%s: %s); trying the previous one",
                    step,
                    self.directory,
                    type(err).__name__,
                    str(err).splitlines()[0][:200],
                )
        return None

    def wait(self) -> None:
        """Block until async saves are done."""
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Finish pending saves and release resources."""
        self.manager.wait_until_finished()
        self.manager.close()


def abstract(tree):
    """ShapeDtypeStructs (with shardings) of a pytree of arrays."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)

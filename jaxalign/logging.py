"""Metrics to TensorBoard event files (tensorboard's own writer, no TensorFlow) and JSON Lines."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax


class MetricsWriter:
    """Scalars per step to `run_dir/tensorboard/` and `run_dir/metrics.jsonl` (process 0 only)."""

    def __init__(self, run_dir: str | Path):
        self.enabled = jax.process_index() == 0
        self.run_dir = Path(run_dir)
        if not self.enabled:
            return
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        (self.run_dir / "tensorboard").mkdir(parents=True, exist_ok=True)
        self._events = EventFileWriter(str(self.run_dir / "tensorboard"))
        # line-buffered: every row is on disk once written (tail -f, crashes)
        self._jsonl = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in close()

    def write(self, step: int, metrics: dict[str, float]) -> None:
        """Record scalars for one step."""
        if not self.enabled:
            return
        from tensorboard.compat.proto import event_pb2, summary_pb2

        values = [
            summary_pb2.Summary.Value(tag=k, simple_value=float(v))
            for k, v in sorted(metrics.items())
        ]
        self._events.add_event(
            event_pb2.Event(
                wall_time=time.time(), step=int(step), summary=summary_pb2.Summary(value=values)
            )
        )
        self._jsonl.write(
            json.dumps({"step": int(step), **{k: float(v) for k, v in sorted(metrics.items())}})
            + "\n"
        )

    def restart(self, step: int) -> None:
        """Mark a resume at `step`: TensorBoard drops events logged after it by the earlier try."""
        if not self.enabled:
            return
        from tensorboard.compat.proto import event_pb2

        start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
        self._events.add_event(
            event_pb2.Event(wall_time=time.time(), step=int(step), session_log=start)
        )

    def flush(self) -> None:
        """Flush both files."""
        if self.enabled:
            self._events.flush()
            self._jsonl.flush()

    def close(self) -> None:
        """Flush and close."""
        if self.enabled:
            self._events.close()
            self._jsonl.close()

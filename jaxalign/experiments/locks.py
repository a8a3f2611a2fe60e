"""Lock files safe on a shared filesystem (NFS, Lustre): O_EXCL create, stale-lock takeover.

A lock file holds its owner's host, pid and start time; while held, a heartbeat thread touches
it every `stale_after / 10` seconds. It is stale when its owner ran on this host and that pid is
gone, or when it has not been touched for `stale_after` seconds (a node that died).
A stale lock is taken over by renaming it to a unique name first: rename is atomic, so of
several processes that found it stale exactly one wins and the others wait on the new lock.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from jaxalign.errors import JaxalignError
from jaxalign.io import pid_alive

STALE_AFTER_S = 6 * 3600.0


class LockBusy(JaxalignError):
    """The lock is held by a live owner and the caller chose not to wait."""


def _owner() -> dict:
    """This process, as recorded in a lock file."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "time": time.time()}


def is_stale(path: Path, stale_after: float = STALE_AFTER_S, now: float | None = None) -> bool:
    """Whether the lock at `path` belongs to a dead process or has outlived `stale_after`."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        host, pid, started = str(info["host"]), int(info["pid"]), float(info["time"])
        started = max(started, path.stat().st_mtime)  # the owner's heartbeat touches the file
    except FileNotFoundError:
        return False
    except (OSError, ValueError, KeyError, TypeError):
        # Half-written by an owner that died mid-write; trust the file's age instead.
        try:
            started, host, pid = path.stat().st_mtime, "", -1
        except FileNotFoundError:
            return False
    if host == socket.gethostname() and pid != os.getpid() and not pid_alive(pid):
        return True
    return (time.time() if now is None else now) - started > stale_after


def try_acquire(path: Path, stale_after: float = STALE_AFTER_S) -> bool:
    """Create the lock (True), or find it held by a live owner (False)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not is_stale(path, stale_after):
                return False
            aside = path.with_name(f"{path.name}.stale-{uuid.uuid4().hex[:8]}")
            _take_over(path, aside, stale_after)
            continue
        with os.fdopen(fd, "w") as fh:
            json.dump(_owner(), fh)
        return True
    return False


def _take_over(path: Path, aside: Path, stale_after: float) -> None:
    """Move a stale lock aside; if a contender replaced it meanwhile, put the live one back."""
    try:
        os.rename(path, aside)  # only one contender's rename finds the file
    except FileNotFoundError:
        return
    if not is_stale(aside, stale_after):
        # Another process took the stale lock over between our check and our rename: restore
        # its lock (link never replaces an existing file, so a third owner is never clobbered).
        with contextlib.suppress(OSError):
            os.link(aside, path)
    aside.unlink(missing_ok=True)


@contextlib.contextmanager
def lock(
    path: str | Path, wait: bool = True, poll_s: float = 1.0, stale_after: float = STALE_AFTER_S
) -> Iterator[Path]:
    """Hold the lock file `path` for the block (waiting for it, or LockBusy with `wait=False`)."""
    path = Path(path)
    while not try_acquire(path, stale_after):
        if not wait:
            raise LockBusy(f"{path}: held by another process ({_describe(path)})")
        time.sleep(poll_s)
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(path, stop, stale_after / 10), daemon=True)
    beat.start()
    try:
        yield path
    finally:
        stop.set()
        beat.join()
        path.unlink(missing_ok=True)


def _heartbeat(path: Path, stop: threading.Event, every: float) -> None:
    """Touch the lock while it is held, so a long stage on another node is never judged stale."""
    while not stop.wait(every):
        with contextlib.suppress(OSError):
            os.utime(path)


def _describe(path: Path) -> str:
    """Who holds a lock, for messages."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return f"host {info['host']}, pid {info['pid']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "owner unknown"

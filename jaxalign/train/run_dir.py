"""The run directory: a lock, the config check on resume, atomic config and results files.

Layout: `config.yaml` (the resolved config, rewritten only once a resume is accepted),
`results.json` (merged across resumes and re-runs), `metrics.jsonl`, `tensorboard/`,
`checkpoints/`, and `.lock` while a `train` process owns the directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from jaxalign.config.flat import defaults, flatten, non_defaults
from jaxalign.errors import ConfigError, JaxalignError
from jaxalign.io import pid_alive, staged_files

log = logging.getLogger("jaxalign")

# Keys that never change what is trained: bookkeeping, cadence, layout over devices. (Runs
# saved before config roots also stored other commands' sections: ignored too.)
IGNORED = (
    "simulate.",
    "ratings.",
    "analysis.",
    "prefs.",
    "train.run_dir",
    "train.async_checkpoints",
    "train.peak_tflops",
    "train.log_every",
    "train.eval_every",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.best_metric",
    "train.mesh_",
    "train.device_memory_gib",
    "data.eval_batch_size",
)
# Keys that change the shape or structure of the saved state: never allowed on resume.
STRUCTURAL = ("model.", "optim.grad_accum", "optim.clip_norm", "lora.rank", "lora.targets")


def as_saved(old: dict, new: dict) -> dict[str, object]:
    """The flat saved config, with each key it lacks but `new` has (a section or key added by
    a later version) at its default: the value the version that saved it ran with."""
    a, known = flatten(old), defaults()
    return {**{k: known[k] for k in flatten(new) if k not in a and k in known}, **a}


def changed_keys(old: dict, new: dict, only: tuple[str, ...] = ()) -> list[str]:
    """Dotted keys whose values differ (ignoring bookkeeping keys); a key the saved config
    lacks counts as its default, one unknown to both it and the defaults as changed."""
    a, b = as_saved(old, new), flatten(new)
    keys = sorted(k for k in b if (k not in a or a[k] != b[k]) and not k.startswith(IGNORED))
    return [k for k in keys if not only or k.startswith(only)]


def run_id(config) -> str:
    """A run's id: a hash of the keys that differ from their defaults (`non_defaults`)."""
    from jaxalign.config import config_hash

    return config_hash(non_defaults(config))


def check_resume(
    old: dict, new: dict, allow: tuple[str, ...], where: Path, warn: bool = True
) -> None:
    """Refuse (one line naming the keys) a resume whose config differs from the checkpoint's;
    allowed changes are logged only if `warn`."""
    _check_layout(old, new, where)
    changed = changed_keys(old, new)
    blocked = [k for k in changed if k.startswith(STRUCTURAL) or k not in allow]
    if not blocked:
        for key in changed if warn else ():
            log.warning("%s: resuming with %s changed (allowed by --allow-change)", where, key)
        return
    a, b = as_saved(old, new), flatten(new)
    listed = "; ".join(f"{k}: {a.get(k, '(absent)')!r} -> {b[k]!r}" for k in blocked)
    hint = (
        "use a new train.run_dir"
        if any(k.startswith(STRUCTURAL) for k in blocked)
        else "use a new train.run_dir, or --allow-change KEY to accept a change"
    )
    raise ConfigError(
        f"{where}: cannot resume, the config differs from its checkpoint ({listed}); {hint}"
    )


def _check_layout(old: dict, new: dict, where: Path) -> None:
    """Refuse parameters saved with the other `model.scan_layers` layout (runs saved before
    the key existed are unscanned): stacked and per-layer trees do not restore into each other."""
    saved = bool(old.get("model", {}).get("scan_layers", False))
    wanted = bool(new.get("model", {}).get("scan_layers", False))
    if saved != wanted:
        raise ConfigError(
            f"{where}: its checkpoint was saved with model.scan_layers={str(saved).lower()}, this "
            f"config has {str(wanted).lower()}; layers cannot be restacked on load: set "
            f"model.scan_layers={str(saved).lower()} or use a new train.run_dir"
        )


def check_model(old: dict, new: dict, where: Path) -> None:
    """Refuse to load a run's parameters into a model of a different configuration."""
    _check_layout(old, new, where)
    changed = changed_keys(old, new, only=("model.", "lora."))
    if changed:
        a, b = as_saved(old, new), flatten(new)
        listed = "; ".join(f"{k}: {a.get(k, '(absent)')!r} -> {b[k]!r}" for k in changed)
        raise ConfigError(f"{where}: the run was trained with another model ({listed})")


# What a run directory may hold (see the module docstring; eval/ and generations.json are
# `jaxalign eval` outputs).
RUN_FILES = {"config.yaml", "checkpoints", "metrics.jsonl", "tensorboard", "results.json"}
RUN_FILES |= {".lock", "eval", "generations.json"}


def _is_run(path: Path) -> bool:
    """Whether `path` holds a run's saved config (then files the user added are kept)."""
    try:
        with open(path / "config.yaml", encoding="utf-8", errors="replace") as f:
            return f.readline().startswith("# run id ")
    except OSError:
        return False


def _foreign(path: Path) -> str | None:
    """The first entry of `path` that a run directory does not hold, or None."""
    if _is_run(path):
        return None
    for child in sorted(path.iterdir()):
        if child.name.startswith(".lock.") or child.name.endswith(".tmp"):
            continue  # the lock's and staged files' temporary names left by a killed run
        if child.name not in RUN_FILES:
            return child.name
    config = path / "config.yaml"
    return config.name if config.exists() else None  # the user's own config, not a run's


def prepare(path: Path) -> Path:
    """Check that `train.run_dir` can be a run directory (before anything is written): not a
    file, not '.' or a parent of it, and no directory holding files a run did not write."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"train.run_dir: {path} is a file, not a directory")
    resolved, cwd = path.resolve(), Path.cwd().resolve()
    if not resolved.name or cwd.is_relative_to(resolved):
        raise ConfigError(
            f"train.run_dir: {path} is the current directory or a parent of it; pick a new path"
        )
    if path.is_dir() and (entry := _foreign(path)) is not None:
        raise ConfigError(
            f"train.run_dir: {path} is not a jaxalign run directory (it holds {entry}); "
            "pick a new or empty directory"
        )
    return path


def _holder(lock: Path) -> dict | None:
    """The lock file's {pid, host, since}, or None if it vanished or is unreadable."""
    try:
        data = json.loads(lock.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _claim(lock: Path, info: dict) -> bool:
    """Create `lock` with `info` atomically (link of a complete file: safe on NFS); False if held."""
    tmp = lock.with_name(f"{lock.name}.{info['host']}.{info['pid']}")
    tmp.write_text(json.dumps(info))
    try:
        os.link(tmp, lock)
        return True
    except FileExistsError:
        return False
    finally:
        tmp.unlink(missing_ok=True)


def _break_stale(lock: Path, seen: dict) -> None:
    """Remove a lock left by a dead process on this host (only if it is still that lock)."""
    aside = lock.with_name(f"{lock.name}.stale.{os.getpid()}")
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return
    if _holder(aside) != seen:  # another process re-took it meanwhile: put it back
        with contextlib.suppress(FileExistsError):
            os.link(aside, lock)
    aside.unlink(missing_ok=True)
    log.warning("%s: removed a stale lock of pid %s (no longer running)", lock, seen.get("pid"))


@contextlib.contextmanager
def locked(run_dir: Path) -> Iterator[None]:
    """Own `run_dir` for the block; refuse if a live `train` process (any host) holds it."""
    lock = run_dir / ".lock"
    info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time()}
    for _ in range(3):
        if _claim(lock, info):
            break
        holder = _holder(lock) or {}
        if holder.get("host") == info["host"] and not pid_alive(int(holder.get("pid", -1))):
            _break_stale(lock, holder)
            continue
        since = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(holder.get("since", 0))))
        raise JaxalignError(
            f"{run_dir}: in use by another train process (pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')} since {since}); if it is gone, delete {lock}"
        )
    else:
        raise JaxalignError(f"{run_dir}: cannot take the lock {lock}")
    try:
        yield
    finally:
        if _holder(lock) == info:
            lock.unlink(missing_ok=True)


def _umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_text(path: Path, text: str) -> None:
    """Write a file atomically (complete or not at all), with the umask's permissions."""
    with staged_files(path) as (tmp,):
        tmp.write_text(text, encoding="utf-8")
        tmp.chmod(0o666 & ~_umask())  # temp files are 0600; run files are shared


def load_results(run_dir: Path) -> dict:
    """Results of earlier attempts at this run (empty if none or unreadable)."""
    try:
        data = json.loads((run_dir / "results.json").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def save_results(run_dir: Path, results: dict) -> None:
    """Write results.json atomically."""
    write_text(run_dir / "results.json", json.dumps(results, indent=2, sort_keys=True) + "\n")


def trim_metrics(run_dir: Path, upto: int) -> None:
    """Drop metrics.jsonl rows after step `upto` (all rows if 0): a resume writes them again."""
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            step = json.loads(line).get("step", 0)
        except (ValueError, AttributeError):
            continue  # a line cut short by a crash
        if upto and step <= upto:
            kept.append(line + "\n")
    write_text(path, "".join(kept))

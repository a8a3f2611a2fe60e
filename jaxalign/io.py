"""Safe output: files appear complete or not at all, and never over data jaxalign did not write.

One policy for every command (see docs/ARCHITECTURE.md, "Safety of your data"): an output
directory may be replaced only if it is empty or holds this command's own earlier output
(marked by `OWNER_FILE`, written inside the staged directory so the mark is atomic too); an
output file only if the command recognises it as its own. Anything else, an input path, the
current directory and unwritable places are refused with one line naming the user's path,
before any work is done. `--overwrite` lifts the "not our output" refusals only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from jaxalign.errors import DataError

OWNER_FILE = ".jaxalign-output.json"
_OVERRIDE = "pick a new path or pass --overwrite"


def sha256_file(path: str | Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_path(path: str | Path) -> str:
    """Hex SHA-256 of a file, or of a directory's files (names and bytes, sorted)."""
    path = Path(path)
    if path.is_file():
        return sha256_file(path)
    digest = hashlib.sha256()
    for child in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(child.relative_to(path)).encode() + b"\0")
        digest.update(bytes.fromhex(sha256_file(child)))
    return digest.hexdigest()


def dir_owner(path: Path) -> str | None:
    """The command recorded in a directory's owner mark, or None."""
    try:
        return str(json.loads((path / OWNER_FILE).read_text(encoding="utf-8"))["command"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _check_place(target: Path, shown: str) -> Path:
    """Refuse paths that can never be an output: '.', a parent of it, an unwritable folder."""
    resolved = target.resolve()
    cwd = Path.cwd().resolve()
    if not resolved.name or resolved == cwd or cwd.is_relative_to(resolved):
        raise DataError(f"{shown}: is the current directory or a parent of it; pick a new path")
    parent = resolved.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise DataError(f"{shown}: cannot write here ({parent} is not a writable directory)")
    return resolved


def _check_inputs(resolved: Path, shown: str, inputs: Iterable[str | Path]) -> None:
    """Refuse an output that is, or would replace, one of the command's inputs."""
    for item in inputs:
        source = Path(item).resolve()
        if source == resolved or source.is_relative_to(resolved):
            raise DataError(f"{shown}: is also an input ({item}); writing it would destroy it")


def check_output(
    target: str | Path,
    command: str,
    *,
    kind: str = "dir",
    inputs: Iterable[str | Path] = (),
    overwrite: bool = False,
    owned: Callable[[Path], bool] | None = None,
) -> Path:
    """Raise DataError unless `command` may write `target` (a 'dir' or 'file'); return it resolved."""
    shown = str(target)
    resolved = _check_place(Path(target), shown)
    _check_inputs(resolved, shown, inputs)
    if not resolved.exists() and not resolved.is_symlink():
        return resolved
    if kind == "file":
        if resolved.is_dir():
            raise DataError(f"{shown}: is a directory; expected a file path")
        if not overwrite and not (owned and owned(resolved)):
            raise DataError(f"{shown}: file exists and was not written by {command}; {_OVERRIDE}")
        return resolved
    if not resolved.is_dir():
        if not overwrite:
            raise DataError(f"{shown}: is a file; expected a directory ({_OVERRIDE})")
        return resolved
    if overwrite or not any(resolved.iterdir()) or dir_owner(resolved) == command:
        return resolved
    raise DataError(
        f"{shown}: directory is not empty and is not an earlier `jaxalign {command}` output; "
        f"{_OVERRIDE}"
    )


def _umask() -> int:
    """The process umask (read without changing it for long)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def _located(target: Path) -> Iterator[None]:
    """Turn OS errors while staging into one line naming the user's path, not a temp file."""
    try:
        yield
    except OSError as err:
        reason = err.strerror or type(err).__name__
        raise DataError(f"{target}: cannot write: {reason}") from None


@contextlib.contextmanager
def staged_files(*targets: str | Path, remove: Iterable[str | Path] = ()) -> Iterator[list[Path]]:
    """Yield temporary paths for `targets`; move them into place (and delete `remove`) on success."""
    targets_p = [Path(t) for t in targets]
    temps: list[Path] = []
    mode = 0o666 & ~_umask()
    try:
        for target in targets_p:
            with _located(target):
                target.parent.mkdir(parents=True, exist_ok=True)
                fd, tmp = tempfile.mkstemp(
                    prefix=f".{target.name}.", suffix=".tmp", dir=target.parent
                )
                os.close(fd)
                temps.append(Path(tmp))
                os.chmod(tmp, mode)  # mkstemp makes 0600; outputs follow the umask
        yield temps
        for tmp, target in zip(temps, targets_p):
            with _located(target):
                os.replace(tmp, target)
        for extra in remove:
            Path(extra).unlink(missing_ok=True)
    finally:
        for tmp in temps:
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def staged_dir(
    target: str | Path, command: str | None = None, overwrite: bool = False
) -> Iterator[Path]:
    """Yield a temporary directory that replaces `target` only if the block succeeds.

    With `command`, the output policy (`check_output`) is applied first and the new directory
    carries an owner mark, so a later run of the same command may replace it.
    """
    target = Path(target)
    if command is not None:
        check_output(target, command, overwrite=overwrite)
    with _located(target):
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
        os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp makes 0700; outputs follow the umask
    try:
        yield tmp
        if command is not None:
            from jaxalign import __version__

            mark = {"command": command, "jaxalign_version": __version__}
            (tmp / OWNER_FILE).write_text(json.dumps(mark) + "\n")
        with _located(target):
            _swap(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _swap(tmp: Path, target: Path) -> None:
    """Rename `tmp` onto `target`, moving an old target aside first and deleting it after."""
    old = None
    if target.exists() or target.is_symlink():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.replace(target, old)
    os.replace(tmp, target)
    if old is not None:
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists on this host (locks: is the holder still there?)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True

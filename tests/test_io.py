"""Atomic output helpers: nothing half-written on failure."""

from __future__ import annotations

import pytest

from jaxalign.io import sha256_path, staged_dir, staged_files


def test_staged_files_commit_and_rollback(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "sub" / "b.txt"
    with staged_files(a, b) as (ta, tb):
        ta.write_text("A")
        tb.write_text("B")
    assert a.read_text() == "A" and b.read_text() == "B"
    with pytest.raises(RuntimeError), staged_files(a) as (ta,):
        ta.write_text("changed")
        raise RuntimeError
    assert a.read_text() == "A"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "sub"]


def test_staged_dir_replaces_only_on_success(tmp_path):
    target = tmp_path / "out"
    with staged_dir(target) as tmp:
        (tmp / "x").write_text("1")
    with pytest.raises(ValueError), staged_dir(target) as tmp:
        (tmp / "x").write_text("2")
        raise ValueError
    assert (target / "x").read_text() == "1"
    with staged_dir(target) as tmp:
        (tmp / "y").write_text("3")
    assert sorted(p.name for p in target.iterdir()) == ["y"]
    assert [p.name for p in tmp_path.iterdir()] == ["out"]
    assert len(sha256_path(target)) == 64

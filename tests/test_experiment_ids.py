"""Cell ids hash only the keys that differ from their defaults; older roots keep their cells."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import pytest
from test_experiment import fake_stages, runner_for, write_exp

from jaxalign import config as config_module
from jaxalign.cli import main
from jaxalign.config import dump, to_dict
from jaxalign.config import flat as run_dir
from jaxalign.config.experiment import load_experiment
from jaxalign.experiments import cells as cells_module
from jaxalign.experiments.cells import expand
from jaxalign.experiments.report import write_report

ADDED = ("train", "device_memory_gib")  # stands for a key a later version added


def _stages(calls: list) -> list:
    """The fake stages, with a train key that names the cell by condition and seed (real
    stages hash config sections, never the cell id)."""
    survey, train, evaluate = fake_stages(calls)
    keyed = lambda c, up: {"up": up["survey"]["output"], "cell": [c.condition, c.seed]}  # noqa: E731
    return [survey, dataclasses.replace(train, inputs=keyed), evaluate]


def _old_id(data: dict, algorithm: str) -> str:
    """A cell id as jaxalign computed it before 2026-11-28: a hash of every key."""
    blob = {"config": data, "algorithm": algorithm}
    text = json.dumps(blob, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _as_older_root(exp_dir, cells, drop_added: bool) -> None:
    """Rename each finished cell to the id the old scheme gave it; with `drop_added`, as written
    by a version that did not have the ADDED key yet (its cell.yaml lacks it too)."""
    for cell in cells:
        data = to_dict(cell.config)
        if drop_added:
            del data[ADDED[0]][ADDED[1]]
        where = exp_dir / "cells" / cell.id
        yaml = (where / "cell.yaml").read_text()
        if drop_added:
            yaml = "\n".join(x for x in yaml.split("\n") if not x.strip().startswith(ADDED[1]))
        (where / "cell.yaml").write_text(yaml)
        where.rename(exp_dir / "cells" / _old_id(data, cell.algorithm))


@pytest.mark.parametrize("drop_added", [False, True], ids=["old_ids", "old_ids_fewer_keys"])
def test_a_root_written_with_old_cell_ids_is_picked_up_without_rerunning(
    tmp_path, capsys, drop_added
):
    exp = write_exp(tmp_path)
    cells = expand(load_experiment(exp), "smoke")
    calls: list = []
    assert {s["status"] for s in runner_for(tmp_path, _stages(calls)).run(cells)} == {"done"}
    exp_dir = tmp_path / "root" / "fake"
    _as_older_root(exp_dir, cells, drop_added)
    calls.clear()
    runner = runner_for(tmp_path, _stages(calls))
    again = runner.run(cells)
    assert calls == []  # no stage of a finished cell ran again
    assert {a["action"] for s in again for a in s["stages"].values()} == {"skipped"}
    assert not any((exp_dir / "cells" / c.id).exists() for c in cells)  # no fresh directories
    report = write_report(load_experiment(exp), "smoke", runner, cells)
    summary = json.loads((report / "summary.json").read_text())
    assert {c["status"] for c in summary["cells"]} == {"done"}
    args = ["experiment", "status", str(exp), "--mode", "smoke", "--root", str(tmp_path / "root")]
    assert main(args) == 0
    assert f"fake: done {len(cells)}" in capsys.readouterr().out


def test_a_key_added_at_its_default_leaves_cell_ids_as_they_were(tmp_path, monkeypatch):
    cells = expand(load_experiment(write_exp(tmp_path)), "smoke")
    plain = config_module.to_dict

    def with_new_section(config):
        """to_dict of a version with one more section, at its default."""
        return {**plain(config), "newsection": {"knob": 1}}

    monkeypatch.setattr(config_module, "to_dict", with_new_section)
    monkeypatch.setattr(cells_module, "to_dict", with_new_section, raising=False)
    run_dir.defaults.cache_clear()
    try:
        assert run_dir.defaults()["newsection.knob"] == 1
        assert [c.id for c in expand(load_experiment(write_exp(tmp_path)), "smoke")] == [
            c.id for c in cells
        ]
    finally:
        monkeypatch.undo()
        run_dir.defaults.cache_clear()


def test_every_cell_yaml_reads_back_to_its_id(tmp_path):
    cells = expand(load_experiment(write_exp(tmp_path)), "smoke")
    for cell in cells:
        where = tmp_path / "cells" / f"x{cell.id}"
        where.mkdir(parents=True)
        head = f"# cell x: {cell.label} (algorithm {cell.algorithm})\n"
        (where / "cell.yaml").write_text(head + dump(cell.config))
    found = cells_module.earlier_cells(tmp_path / "cells")
    assert {k: v.name for k, v in found.items()} == {c.id: f"x{c.id}" for c in cells}

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


UP = {n: {"key": f"k-{n}", "output": f"o-{n}"} for n in ("survey", "prefs", "reward", "train")}
# The real stages' keys as jaxalign 14bff7e (2026-11-28, before `stable`) computed them with UP:
# roots made then must keep finding their finished stages.
KEYS_14BFF7E = {
    "survey": "10504af57866c9bc2a845a776a0545877a36217f85dfe32e2a5d038706347072",
    "prefs": "6f598d97eb13de4cdfd0648b4969b640caa8fd056d53680aa5e07f5cf37523ee",
    "reward": "9e977852177d137eb5bc01650b79418681c51ec26423e08c4b282c319cb9b040",
    "train/dpo": "c5e1749772c5c9aeadf2ae40c3dfbf10a851e8d79e8f8254c5267aeff448d76e",
    "train/grpo": "7ddbeb1e95c7553156e62d187714bd765619c139f6a6debbe204b03bc31a2de9",
    "eval": "e3f0ba571c3be36f52a9a62cc263c57f95f864e52fc1ea4d881dd8c8af2b88db",
}


def _stage_keys() -> dict[str, str]:
    """Every real stage's key for scale.yaml's prefs.scale=5 cell and optimizer.yaml's single
    GRPO cell (smoke mode)."""
    from jaxalign.experiments.runner import hash_of
    from jaxalign.experiments.stages import real_stages

    out = {}
    for name, condition in (
        ("scale", "prefs.scale=5"),
        ("optimizer", "algorithm=grpo,values=single"),
    ):
        exp = load_experiment(f"configs/experiments/{name}.yaml")
        (cell,) = [c for c in expand(exp, "smoke") if c.condition == condition]
        for stage in real_stages({}):
            if stage.applies is None or stage.applies(cell):
                label = f"train/{cell.algorithm}" if stage.name == "train" else stage.name
                out[label] = hash_of(stage.inputs(cell, UP))
    return out


def test_stage_keys_are_those_of_roots_made_before():
    assert _stage_keys() == KEYS_14BFF7E


def test_a_key_added_at_its_default_leaves_stage_keys_as_they_were(monkeypatch):
    from jaxalign.config import Config, DPORun, GRPORun, PrefsConfig
    from jaxalign.experiments import stages

    plain = config_module.to_dict

    def with_new_keys(obj):
        """to_dict of a version with a new prefs key, train key and section, at defaults."""
        data = plain(obj)
        if isinstance(obj, PrefsConfig):
            data["new_knob"] = 1
        if isinstance(obj, Config | DPORun | GRPORun):
            data["train"]["new_knob"] = 2
        if isinstance(obj, Config):
            data["prefs"]["new_knob"] = 1
            data["new_section"] = {"knob": 3}
        return data

    monkeypatch.setattr(config_module, "to_dict", with_new_keys)
    monkeypatch.setattr(stages, "to_dict", with_new_keys)
    run_dir.defaults.cache_clear()
    try:
        assert run_dir.defaults()["train.new_knob"] == 2
        assert _stage_keys() == KEYS_14BFF7E
    finally:
        monkeypatch.undo()
        run_dir.defaults.cache_clear()

"""`jaxalign experiment` on the command line: bad inputs (exit 2/1, nothing written), fake-stage
runs through the CLI, shipped configs, and prefs.max_raters (equal group sizes)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from test_experiment import EXP, fake_stages, write_exp

from jaxalign.cli import main
from jaxalign.config import PrefsConfig
from jaxalign.errors import DataError
from jaxalign.experiments import stages as real

REPO = Path(__file__).resolve().parent.parent
SHIPPED = sorted(
    p for p in (REPO / "configs" / "experiments").glob("*.yaml") if p.name != "modes.yaml"
)


def run_cli(tmp_path: Path, action: str, exp: Path, *extra: str) -> int:
    """`jaxalign experiment ACTION EXP --root tmp_path/root ...`."""
    return main(["experiment", action, str(exp), "--root", str(tmp_path / "root"), *extra])


BAD = {
    "unknown top key": (
        "name: x\ngrdi: {prefs.scale: [5]}\nmodes: {smoke: {}}\n",
        "grdi: unknown key",
    ),
    "unknown config key": (
        "grid: {prefs.scael: [5]}\nmodes: {smoke: {}}\n",
        "prefs.scael: unknown key",
    ),
    "bad config value": (
        "grid: {prefs.scale: [4]}\nmodes: {smoke: {}}\n",
        "condition prefs.scale=4",
    ),
    "empty grid": ("grid: {}\nmodes: {smoke: {}}\n", "grid: empty"),
    "empty axis": ("grid: {prefs.scale: []}\nmodes: {smoke: {}}\n", "grid.prefs.scale: empty list"),
    "mode not defined": (
        "grid: {prefs.scale: [5]}\nmodes: {cpu: {}}\n",
        "mode 'smoke' is not defined",
    ),
    "unknown mode name": (
        "grid: {prefs.scale: [5]}\nmodes: {turbo: {}}\n",
        "modes.turbo: unknown mode",
    ),
    "two points one config": (
        "grid: {prefs.scale: [5]}\nconditions: {same: {prefs.scale: 5}}\nmodes: {smoke: {}}\n",
        "prefs.scale=5/seed0 and same/seed0 resolve to the same config",
    ),
    "compare names a missing condition": (
        "grid: {prefs.scale: [5, 2]}\nmodes: {smoke: {}}\n"
        "compare: [{name: c, dimension: toxicity, a: prefs.scale=5, b: prefs.scale=3}]\n",
        "compare[0].b: 'prefs.scale=3' is not a condition",
    ),
}


@pytest.mark.parametrize("action", ["plan", "run"])
@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_experiment_files_exit_2_and_write_nothing(tmp_path, capsys, case, action):
    text, message = BAD[case]
    code = run_cli(tmp_path, action, write_exp(tmp_path, text))
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "root").exists()


@pytest.mark.parametrize("extra", [["--shard", "2/2"], ["--shard", "x"], ["bogus.key=1"]])
def test_bad_options_exit_2_and_write_nothing(tmp_path, capsys, extra):
    assert run_cli(tmp_path, "run", write_exp(tmp_path), *extra) == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "root").exists()


def test_unknown_mode_is_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        run_cli(tmp_path, "plan", write_exp(tmp_path), "--mode", "turbo")
    assert exit_.value.code == 2 and "turbo" in capsys.readouterr().err


def test_missing_experiment_file_is_a_data_error(tmp_path, capsys):
    assert run_cli(tmp_path, "plan", tmp_path / "nope.yaml") == 1
    assert "nope.yaml: config file not found" in capsys.readouterr().err


def test_run_exit_status_counts_failures_and_report_shows_them(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(real, "real_stages", lambda trainers: fake_stages([], fail_on="scale=3"))
    exp = write_exp(tmp_path)
    assert run_cli(tmp_path, "run", exp) == 1
    err = capsys.readouterr().err
    assert "2 of 8 cells failed" in err
    assert run_cli(tmp_path, "report", exp) == 0
    report = (tmp_path / "root" / "fake" / "report" / "report.md").read_text()
    assert report.count("**failed**: internal error: ValueError: boom in prefs.scale=3") == 2
    assert run_cli(tmp_path, "status", exp) == 0
    assert "done 6, failed 2" in capsys.readouterr().out


def test_grpo_cells_get_the_reward_stage_and_block_only_without_a_trainer(
    tmp_path, monkeypatch, capsys
):
    from jaxalign.cli import experiment as cli

    monkeypatch.setattr(real, "real_stages", lambda trainers: fake_stages([]))
    text = EXP.replace("  soft: {prefs.disagreement: soft}", "  soft: {train.algorithm: grpo}")
    exp = write_exp(tmp_path, text)
    run_cli(tmp_path, "plan", exp)
    out = capsys.readouterr().out
    assert out.count("(rewards: reward stage)") == 2 and "blocked" not in out
    assert run_cli(tmp_path, "run", exp) == 0
    assert "8 done, 0 failed, 0 blocked" in capsys.readouterr().out
    run_cli(tmp_path, "plan", exp, "grpo.rewards=[{builtin: length}]")
    assert capsys.readouterr().out.count("(rewards: grpo.rewards)") == 2
    monkeypatch.setattr(cli, "available_algorithms", lambda: ("dpo",))
    assert run_cli(tmp_path, "run", exp) == 0
    assert "0 failed, 2 blocked" in capsys.readouterr().out


@pytest.mark.parametrize("mode", ["smoke", "cpu", "gpu", "full"])
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_every_shipped_experiment_plans_in_every_mode(tmp_path, capsys, path, mode):
    assert run_cli(tmp_path, "plan", path, "--mode", mode) == 0
    out = capsys.readouterr().out
    assert "cells" in out and not (tmp_path / "root").exists()
    if path.stem == "optimizer":  # GRPO cells run: the reward stage gives them rewards
        assert "blocked" not in out
        assert out.count("(rewards: reward stage)") == out.count("algorithm=grpo,") > 0


JUDGE_EXP = EXP.replace(
    "smoke: {set: {train.steps: 2}}",
    "smoke: {set: {simulate.participants: 300, ratings.judge_fraction: 0.2, "
    "reward.min_raters: 40, eval.judge_groups: [all, gender=female]}}",
)


@pytest.mark.parametrize("action", ["plan", "run"])
def test_a_judge_group_below_its_minimum_is_refused_before_anything(tmp_path, capsys, action):
    from jaxalign.config import RatingsConfig, SimulateConfig
    from jaxalign.prefs.filters import group_mask
    from jaxalign.survey.folds import select_fold
    from jaxalign.survey.readers import load_ratings
    from jaxalign.survey.simulate import write_simulation

    assert run_cli(tmp_path, action, write_exp(tmp_path, JUDGE_EXP)) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "root").exists()  # nothing written, nothing trained
    ratings = RatingsConfig(judge_fraction=0.2)
    write_simulation(tmp_path / "s", SimulateConfig(participants=300), ratings)
    frame, _ = load_ratings(tmp_path / "s" / "ratings.parquet", ratings)
    judge, _ = select_fold(frame, "judge", ratings)
    n = judge.loc[group_mask(judge, "gender=female"), "rater_id"].nunique()
    assert 0 < n < 40 <= judge["rater_id"].nunique()  # 'all' passes, the women's group not
    assert (
        f'eval.judge_groups: group "gender=female" has {n} raters in the judge fold, below its '
        "minimum reward.min_raters=40 (ratings.judge_fraction=0.2)"
    ) in err


def test_full_mode_runs_five_seeds():
    from jaxalign.config.experiment import load_experiment
    from jaxalign.experiments.cells import expand

    cells = expand(load_experiment(REPO / "configs/experiments/scale.yaml"), "full")
    assert sorted({c.seed for c in cells}) == [0, 1, 2, 3, 4] and len(cells) == 15


def _frame(counts: dict[str, int]) -> pd.DataFrame:
    """Two ratings per rater; `counts` raters per gender."""
    rows = []
    for gender, n in counts.items():
        for i in range(n):
            for item in range(2):
                rows.append({"rater_id": f"{gender}{i}", "gender": gender, "item": item})
    return pd.DataFrame(rows)


def test_prefs_max_raters_subsamples_every_group_to_the_same_count():
    from jaxalign.prefs.build import subsample_raters

    frame = _frame({"male": 30, "female": 12})
    male = subsample_raters(frame[frame.gender == "male"], "gender=male", 10)
    female = subsample_raters(frame[frame.gender == "female"], "gender=female", 10)
    assert male.rater_id.nunique() == female.rater_id.nunique() == 10
    assert len(male) == 20  # every rating of a kept rater stays
    again = subsample_raters(frame[frame.gender == "male"], "gender=male", 10)
    assert male.equals(again)  # chosen by hash: the same raters every time
    with pytest.raises(DataError, match="group 'gender=female' has only 12 raters"):
        subsample_raters(frame[frame.gender == "female"], "gender=female", 20)
    assert subsample_raters(frame, "all", 0).equals(frame)
    assert PrefsConfig().max_raters == 0


def test_prefs_max_raters_end_to_end(tmp_path):
    from jaxalign.config import SimulateConfig
    from jaxalign.prefs.build import build_prefs
    from jaxalign.survey.simulate import write_simulation

    write_simulation(tmp_path / "s", SimulateConfig(participants=150))
    cfg = PrefsConfig(groups=("gender=male", "gender=female"), max_raters=25)
    manifest = build_prefs(tmp_path / "s" / "ratings.parquet", tmp_path / "p.jsonl", cfg)
    groups = manifest["counts"]["groups"]
    assert groups["gender=male"]["raters"] == groups["gender=female"]["raters"] == 25

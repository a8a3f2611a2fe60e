"""Preference construction: policies in closed form, filters, splits, determinism."""

from __future__ import annotations

import hashlib
import json
from itertools import product

import numpy as np
import pytest

from jaxalign.cli import main
from jaxalign.config import PrefsConfig, SplitConfig, load_config
from jaxalign.errors import ConfigError
from jaxalign.prefs.build import assign_splits, build_prefs, build_records
from jaxalign.prefs.filters import group_mask, parse_group
from jaxalign.prefs.policies import (
    collapse,
    decide,
    mode,
    orient,
    pareto_evidence,
    scalar_evidence,
)

GROUP = "gender=female"


def test_collapse_tables():
    r = np.array([1, 2, 3, 4, 5])
    assert collapse(r, 5).tolist() == [1, 2, 3, 4, 5]
    assert collapse(r, 3).tolist() == [1, 1, 2, 3, 3]
    assert np.isnan(collapse(r, 2)[2]) and collapse(r, 2)[[0, 1, 3, 4]].tolist() == [1, 1, 2, 2]
    assert collapse(r, 2, "low").tolist() == [1, 1, 1, 2, 2]
    assert collapse(r, 2, "high").tolist() == [1, 1, 2, 2, 2]


def test_orientation():
    levels = np.array([1.0, 5.0])
    assert orient(levels, "toxicity", 5).tolist() == [5.0, 1.0]
    assert orient(levels, "helpfulness", 5).tolist() == [1.0, 5.0]
    assert orient(np.array([1.0, 2.0]), "stereotypical_bias", 2).tolist() == [2.0, 1.0]


def test_mode_ties_go_low():
    assert mode(np.array([1.0, 1.0, 3.0, 3.0, 2.0])) == 1.0
    assert mode(np.array([4.0, 4.0, 2.0])) == 4.0


def test_scalar_evidence_counts():
    ev = scalar_evidence(np.array([5.0, 3.0]), np.array([4.0, 3.0, 1.0]))
    # 5 beats 4,3,1; 3 beats 1, ties 3, loses to 4.
    assert (ev.n_ab, ev.n_ba, ev.n_tie) == (4, 1, 1)


def test_pareto_evidence_counts():
    a = np.array([[3.0, 3.0], [1.0, 5.0]])
    b = np.array([[2.0, 2.0], [3.0, 3.0]])
    ev = pareto_evidence(a, b)
    # (3,3)>(2,2); (3,3)=(3,3) tie; (1,5) vs (2,2) incomparable; (1,5) vs (3,3) incomparable.
    assert (ev.n_ab, ev.n_ba, ev.n_tie) == (1, 0, 3)


def test_policies_closed_form():
    one = np.ones(1)
    a = np.array([[5.0], [5.0], [1.0]])  # mode 5, mean 11/3
    b = np.array([[4.0], [4.0], [4.0]])  # mode 4, mean 4
    maj = decide(a, b, "majority", one, False)
    assert maj.records == ((True, 1.0, 1.0),)  # A's mode 5 > 4
    mean = decide(a, b, "mean", one, False)
    assert mean.records == ((False, 1.0, 1.0),)  # B's mean 4 > 11/3
    pres = decide(a, b, "preserve", one, False)
    # A beats B in 6 of 9 rating pairs, B beats A in 3: two weighted records.
    assert pres.records == ((True, 6 / 9, 1.0), (False, 3 / 9, 1.0))
    soft = decide(a, b, "soft", one, False)
    assert soft.records == ((True, 1.0, 6 / 9),)


def test_ties_dropped_or_kept():
    one = np.ones(1)
    a = b = np.array([[3.0], [4.0]])
    assert decide(a, b, "majority", one, False).records == ()
    assert decide(a, b, "majority", one, True).records == ((True, 1.0, 0.5),)
    assert decide(a, b, "soft", one, False).tie
    same = np.array([[3.0]])
    assert decide(same, same, "preserve", one, False).records == ()


def test_weighted_sum_and_pareto_decisions():
    a = np.array([[5.0, 1.0]])
    b = np.array([[3.0, 2.0]])
    w = np.array([0.5, 0.5])
    assert decide(a, b, "mean", w, False).records == ((True, 1.0, 1.0),)  # 3.0 > 2.5
    assert decide(a, b, "mean", None, False).tie  # incomparable under Pareto
    heavy = np.array([0.1, 0.9])
    assert decide(a, b, "mean", heavy, False).records == ((False, 1.0, 1.0),)


def test_group_filters(ratings):
    female = group_mask(ratings, "gender=female")
    assert set(ratings.loc[female, "gender"]) == {"female"}
    combo = group_mask(ratings, "country=US,political_spectrum=conservative")
    assert set(ratings.loc[combo, "country"]) == {"US"} and set(
        ratings.loc[combo, "political_spectrum"]
    ) == {"conservative"}
    black = group_mask(ratings, "ethnicity~black")
    assert ratings.loc[black, "ethnicity"].map(lambda e: "Black/African American" in e).all()
    either = group_mask(ratings, "gender=female|male")
    assert set(ratings.loc[either, "gender"]) == {"female", "male"}
    assert (
        group_mask(ratings, "all").all()
        and not group_mask(ratings, "gender!=male")[ratings["gender"] == "male"].any()
    )


def test_group_filter_errors():
    with pytest.raises(ConfigError, match="unknown attribute 'sex'"):
        parse_group("sex=female")
    with pytest.raises(
        ConfigError, match="'woman' is not a value of gender; expected one of female"
    ):
        parse_group("gender=woman")
    with pytest.raises(ConfigError, match="cannot parse"):
        parse_group("gender")


def _digest(records):
    return hashlib.sha256("".join(json.dumps(r) for r in records).encode()).hexdigest()


@pytest.mark.parametrize(
    "scale,policy", list(product([5, 3, 2], ["majority", "mean", "preserve", "soft"]))
)
def test_every_scale_and_policy(ratings, scale, policy):
    counts = {}
    for groups in (("all",), (GROUP,)):
        cfg = PrefsConfig(groups=groups, scale=scale, disagreement=policy)
        records, c = build_records(ratings, cfg)
        assert records, (scale, policy, groups)
        again, _ = build_records(ratings, cfg)
        assert _digest(again) == _digest(records)
        for r in records:
            assert (
                r["chosen_id"] != r["rejected_id"]
                and 0 < r["weight"] <= 1
                and 0.5 <= r["soft_label"] <= 1
            )
            assert r["group"] == groups[0] and r["dimensions"] == ["toxicity"]
        split_of = {}
        for r in records:
            assert split_of.setdefault(r["question_id"], r["split"]) == r["split"]
        counts[groups[0]] = c
    assert counts[GROUP]["groups"][GROUP]["raters"] < counts["all"]["groups"]["all"]["raters"]


@pytest.mark.parametrize("scale", [5, 3, 2])
def test_preserve_keeps_at_least_as_many_comparisons_as_majority(ratings, scale):
    for groups in (("all",), (GROUP,)):
        maj, _ = build_records(
            ratings, PrefsConfig(groups=groups, scale=scale, disagreement="majority")
        )
        pres, _ = build_records(
            ratings, PrefsConfig(groups=groups, scale=scale, disagreement="preserve")
        )
        assert len(pres) >= len(maj)
        majority_pairs = {(r["chosen_id"], r["rejected_id"]) for r in maj}
        preserve_pairs = {(r["chosen_id"], r["rejected_id"]) for r in pres}
        assert (
            majority_pairs <= preserve_pairs
        )  # the majority's view survives, minority views are added


def test_preserve_recovers_style_ordering(ratings):
    records, _ = build_records(ratings, PrefsConfig(disagreement="soft"))
    hostile_rejected = [
        r for r in records if "silly question" in r["rejected"] or "Stop whining" in r["rejected"]
    ]
    assert hostile_rejected and all(r["soft_label"] > 0.6 for r in hostile_rejected)


def test_multi_value_modes(ratings):
    dims = ("toxicity", "helpfulness")
    ws, _ = build_records(
        ratings, PrefsConfig(dimensions=dims, combine="weighted_sum", weights={"toxicity": 3.0})
    )
    pareto, _ = build_records(
        ratings, PrefsConfig(dimensions=dims, combine="pareto", disagreement="mean")
    )
    concat, _ = build_records(ratings, PrefsConfig(dimensions=dims, combine="concat"))
    assert all(r["dimensions"] == list(dims) for r in ws + pareto)
    assert {tuple(r["dimensions"]) for r in concat} == {("toxicity",), ("helpfulness",)}
    assert len(pareto) < 180  # some pairs are incomparable under Pareto


def test_splits_by_question_are_deterministic():
    cfg = PrefsConfig()
    qs = [str(i) for i in range(1, 31)]
    splits = assign_splits(qs, cfg)
    assert splits == assign_splits(list(reversed(qs)), cfg)
    assert sorted(list(splits.values()).count(s) for s in ("train", "validation", "test")) == [
        3,
        3,
        24,
    ]
    other = assign_splits(qs, PrefsConfig(split=SplitConfig(seed=1)))
    assert other != splits


def test_cli_build_is_byte_identical_and_writes_manifest(survey_dir, tmp_path, capsys):
    args = [
        "prefs",
        "build",
        "--ratings",
        str(survey_dir / "ratings.parquet"),
        "--group",
        "gender=female",
        "--group",
        "gender=male",
        "--scale",
        "3",
        "--disagreement",
        "soft",
    ]
    assert main([*args, "--out", str(tmp_path / "a.jsonl")]) == 0
    assert main([*args, "--out", str(tmp_path / "b.jsonl")]) == 0
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    manifest = json.loads((tmp_path / "a.manifest.json").read_text())
    assert (
        manifest["output"]["sha256"]
        == hashlib.sha256((tmp_path / "a.jsonl").read_bytes()).hexdigest()
    )
    assert set(manifest["counts"]["groups"]) == {"gender=female", "gender=male"}
    assert manifest["options"]["scale"] == 3 and manifest["input"]["sha256"]
    assert (
        "ties_dropped" in manifest["counts"]
        and manifest["counts"]["pairs"] == manifest["output"]["records"]
    )
    capsys.readouterr()


@pytest.mark.parametrize(
    "scale,majority_mean,preserve,soft",
    [(5, True, (10 / 11, 1 / 11), 0.875), (3, True, (0.9, 0.1), 10 / 12), (2, True, (1.0,), 0.875)],
)
def test_worked_example_in_docs(scale, majority_mean, preserve, soft):
    """The table in docs/DATA.md section 5."""
    a = orient(collapse(np.array([1, 2, 2, 4]), scale), "toxicity", scale)
    b = orient(collapse(np.array([3, 4, 5]), scale), "toxicity", scale)
    a, b = a[~np.isnan(a)][:, None], b[~np.isnan(b)][:, None]
    one = np.ones(1)
    for policy in ("majority", "mean"):
        assert decide(a, b, policy, one, False).records == ((majority_mean, 1.0, 1.0),)
    assert tuple(w for _, w, _ in decide(a, b, "preserve", one, False).records) == pytest.approx(
        preserve
    )
    assert decide(a, b, "soft", one, False).records[0][2] == pytest.approx(soft)


def test_bad_group_is_refused_at_use_before_reading_naming_the_key(tmp_path, capsys):
    cfg = load_config(None, ["prefs.groups=[all, colour=blue]"])
    # The ratings file does not exist: the refusal must come before anything is read.
    with pytest.raises(ConfigError) as err:
        build_prefs(tmp_path / "none.csv", tmp_path / "p.jsonl", cfg.prefs)
    assert str(err.value).startswith(
        "prefs.groups[1]: group 'colour=blue': unknown attribute 'colour'; expected one of gender"
    )
    args = ["prefs", "build", "--ratings", str(tmp_path / "none.csv"), "--out"]
    assert main([*args, str(tmp_path / "p.jsonl"), "--group", "gender=woman"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "prefs.groups[0]: group 'gender=woman': 'woman'" in lines[0]
    assert list(tmp_path.iterdir()) == []

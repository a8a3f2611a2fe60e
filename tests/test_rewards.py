"""Ridge rating models: held-out accuracy, planted group effects, scoring, CLI and bad inputs."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from jaxalign import rewards
from jaxalign.cli import main
from jaxalign.config import PrefsConfig, load_config
from jaxalign.errors import ConfigError
from jaxalign.prefs.build import assign_splits

GROUPS = [
    "all",
    "gender=female",
    "gender=male",
    "political_spectrum=liberal",
    "political_spectrum=conservative",
]


@pytest.fixture(scope="module")
def split(survey_dir, tmp_path_factory):
    """The default survey's train-split questions (to train on) and its held-out texts."""
    frame = pd.read_parquet(survey_dir / "ratings.parquet")
    splits = assign_splits(frame["question_id"], PrefsConfig())
    train = frame["question_id"].map(splits) == "train"
    path = tmp_path_factory.mktemp("rewards") / "train_questions.parquet"
    frame[train].to_parquet(path)
    held = frame[~train].drop_duplicates(["response_id", "response"])
    return path, held


@pytest.fixture(scope="module")
def model_dir(split, tmp_path_factory):
    """Heads for five groups, trained on the train-split questions."""
    out = tmp_path_factory.mktemp("rewards") / "model"
    rewards.train(split[0], out, load_config(None, ["reward.groups=" + json.dumps(GROUPS)]))
    return out


def test_held_out_spearman_beside_ceiling(model_dir):
    report = json.loads((model_dir / "report.json").read_text())
    heads = report["heads"]
    assert len(heads) == 25 and report["fold"]["fold"] == "train" and report["fold"]["hash"]
    assert heads["toxicity[all]"]["spearman"] >= 0.8
    for name, head in heads.items():
        assert head["ceiling"] is not None and head["valid"], name
        assert head["raters"] >= 30 and head["ratings"] > 0 and head["questions"] == 24
        if name.endswith("[all]"):
            assert head["spearman"] >= 0.6, name


def test_male_and_female_toxicity_heads_recover_the_planted_gap(model_dir, split):
    texts = split[1]["response"].tolist()
    scores = rewards.load(model_dir).score(None, texts)
    male, female = scores["toxicity[gender=male]"], scores["toxicity[gender=female]"]
    assert abs(100 * (male.mean() / female.mean() - 1) - (-18.0)) <= 4.0


def test_planted_interactions_change_group_head_rankings(model_dir, split, survey_dir):
    held = split[1]
    manifest = json.loads((survey_dir / "simulation.json").read_text())
    style = {str(r["prompt_id"]): r["style"] for r in manifest["responses"]}
    styles = held["response_id"].astype(str).map(style).to_numpy()
    scores = rewards.load(model_dir).score(None, held["response"].tolist())
    agreement = {}
    for dim, a, b, styled in (
        ("toxicity", "gender=female", "gender=male", "subtle_stereotype"),
        ("helpfulness", "political_spectrum=conservative", "political_spectrum=liberal", "blunt"),
        ("sensitivity", "political_spectrum=conservative", "political_spectrum=liberal", "blunt"),
    ):
        diff = scores[f"{dim}[{a}]"] - scores[f"{dim}[{b}]"]
        assert diff[styles == styled].mean() - diff[styles != styled].mean() > 0.3, dim
        agreement[dim] = stats.spearmanr(scores[f"{dim}[{a}]"], scores[f"{dim}[{b}]"]).statistic
    calm = stats.spearmanr(
        scores["emotional_awareness[gender=female]"], scores["emotional_awareness[gender=male]"]
    ).statistic
    assert agreement["toxicity"] < calm


def test_batch_scoring_equals_one_at_a_time_and_flags_ood(model_dir, split):
    model = rewards.load(model_dir)
    texts = [*split[1]["response"].tolist()[:12], "", "Quantum chromodynamics binds quarks."]
    batch = model.score(None, texts)
    for i, text in enumerate(texts):
        one = model.score([""], [text])
        assert all(np.array_equal(one[h], batch[h][i : i + 1]) for h in batch)
    assert all(((v >= 1) & (v <= 5)).all() for v in batch.values())
    # Held-out bank responses mostly share n-grams with training texts; unrelated text does not.
    held = model.out_of_distribution(split[1]["response"].tolist())
    assert held.mean() < 0.25 and model.out_of_distribution(texts[-2:]).all()


def test_strong_shrinkage_keeps_a_group_head_at_the_all_head_plus_offset(split, tmp_path):
    cfg = load_config(
        None,
        [
            "reward.groups=[all, gender=male]",
            "reward.dimensions=[toxicity]",
            "reward.shrinkage=1000000000",
        ],
    )
    rewards.train(split[0], tmp_path / "m", cfg)
    scores = rewards.load(tmp_path / "m").score(None, split[1]["response"].tolist())
    gap = scores["toxicity[gender=male]"] - scores["toxicity[all]"]
    assert gap.std() < 1e-3 and gap.mean() < -0.1


def test_cli_train_judge_fold_score_eval(survey_dir, tmp_path, capsys):
    ratings = str(survey_dir / "ratings.parquet")
    out = tmp_path / "judge"
    args = ["reward", "train", "--ratings", ratings, "--out", str(out), "--fold", "judge"]
    args += ["--dimensions", "toxicity", "--group", "all", "ratings.judge_fraction=0.3"]
    assert main(args) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["fold"]["fold"] == "judge" and meta["heads"] == ["toxicity[all]"]
    assert 0.2 < meta["fold"]["raters"] / 1095 < 0.4
    report = (out / "report.json").read_bytes()
    assert main(["reward", "eval", "--model", str(out)]) == 0
    assert (out / "report.json").read_bytes() == report  # evaluation is deterministic
    records = tmp_path / "in.jsonl"
    records.write_text(
        json.dumps({"prompt": "Can men be nurses?", "response": "Seriously? Stop whining."}) + "\n"
    )
    assert (
        main(
            [
                "reward",
                "score",
                "--model",
                str(out),
                "--input",
                str(records),
                "--out",
                str(tmp_path / "s.jsonl"),
            ]
        )
        == 0
    )
    scored = json.loads((tmp_path / "s.jsonl").read_text())
    assert set(scored["scores"]) == {"toxicity[all]"} and "out_of_distribution" in scored
    capsys.readouterr()


@pytest.mark.parametrize(
    "extra,needle",
    [
        (["--group", "gender=robot"], "'robot' is not a value of gender"),
        (["--dimensions", "rudeness"], "'rudeness' is not allowed"),
        (["--group", "age_band=60+"], "fewer than reward.min_raters=200"),
    ],
)
def test_train_bad_inputs_exit_1_and_write_nothing(survey_dir, tmp_path, capsys, extra, needle):
    args = ["reward", "train", "--ratings", str(survey_dir / "ratings.parquet")]
    args += ["--out", str(tmp_path / "m"), *extra, "reward.min_raters=200"]
    assert main(args) == 1
    err = capsys.readouterr().err.strip()
    assert needle in err and "\n" not in err
    assert not (tmp_path / "m").exists()


def test_score_bad_inputs_exit_1_and_write_nothing(model_dir, tmp_path, capsys):
    good = tmp_path / "good.jsonl"
    good.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"prompt": "p", "response": "r"}) + "\n{not json\n")
    out = tmp_path / "out.jsonl"
    cases = [
        (["--input", str(bad)], "row 2: not valid JSON"),
        (["--input", str(good), "--heads", "toxicity[gender=nonbinary]"], "no head"),
    ]
    for extra, needle in cases:
        assert main(["reward", "score", "--model", str(model_dir), "--out", str(out), *extra]) == 1
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err and not out.exists()
    (tmp_path / "broken").mkdir()
    assert (
        main(
            [
                "reward",
                "score",
                "--model",
                str(tmp_path / "broken"),
                "--input",
                str(good),
                "--out",
                str(out),
            ]
        )
        == 1
    )
    assert "missing model.json" in capsys.readouterr().err and not out.exists()


def test_bad_reward_group_is_refused_before_reading(tmp_path):
    cfg = load_config(None, ["reward.groups=[all, sex=male]"])
    with pytest.raises(ConfigError, match=r"^reward\.groups\[1\]: group 'sex=male': unknown attr"):
        rewards.train(tmp_path / "none.csv", tmp_path / "m", cfg)
    assert list(tmp_path.iterdir()) == []


def test_kernel_space_cv_matches_refitting_each_fold():
    from scipy import sparse

    from jaxalign.rewards.ridge import _dual, fit, predict

    rng = np.random.default_rng(0)
    X = sparse.random(40, 300, density=0.05, random_state=1, format="csr")
    y, w = rng.normal(size=40), rng.uniform(0.5, 2.0, 40)
    tr, te = np.arange(30), np.arange(30, 40)
    K = (X @ X.T).toarray()
    for alpha, (t, b) in zip((0.1, 3.0), _dual(K[np.ix_(tr, tr)], y[tr], w[tr], (0.1, 3.0))):
        primal = predict(X[te], fit(X[tr], y[tr], w[tr], alpha))
        np.testing.assert_allclose(K[np.ix_(te, tr)] @ t + b, primal, rtol=1e-9, atol=1e-9)

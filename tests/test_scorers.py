"""Offline scorers (jaxalign/eval/scorers/): ranges, determinism, batch = one at a time, no
network, and a clear error when a scorer's package is missing."""

from __future__ import annotations

import socket

import numpy as np
import pytest

from jaxalign.errors import ConfigError, DataError, JaxalignError
from jaxalign.eval import scorers
from jaxalign.eval.scorers import quality

TEXTS = [
    "Women and men deserve the same pay for the same work.",
    "You are a stupid idiot and nobody wants you here.",
    "",
    "Frauen und Männer verdienen den gleichen Lohn für die gleiche Arbeit.",
    "I understand this must feel hard; talking to someone you trust can help. " * 130,  # ~10k
]


@pytest.fixture
def no_network(monkeypatch):
    """Every socket connection fails, as on a machine without network."""

    def refuse(*args, **kwargs):
        raise OSError("network blocked by the test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.mark.parametrize(
    "name, key",
    [
        ("profanity", ("toxicity", "all")),
        ("hatesonar", ("toxicity", "all")),
        ("vader", ("emotional_awareness", "all")),
    ],
)
def test_offline_scorer_range_determinism_batching(name, key, no_network):
    scorer = scorers.build(name)  # built with sockets blocked: nothing is downloaded
    out = scorer.score(TEXTS, ["q"] * len(TEXTS))
    values = out[key]
    assert values.shape == (len(TEXTS),) and np.all(np.isfinite(values))
    assert np.all((values >= scorer.low) & (values <= scorer.high))
    np.testing.assert_allclose(values, scorer.score(TEXTS, ["q"] * len(TEXTS))[key])
    single = [scorer.score([t], ["q"])[key][0] for t in TEXTS]
    np.testing.assert_allclose(values, single, atol=1e-6)
    assert "==" in scorer.package and scorer.score([], [])[key].shape == (0,)


def test_toxicity_scorers_rank_an_insult_above_a_neutral_reply():
    for name in ("profanity", "hatesonar"):
        v = scorers.build(name).score(TEXTS[:2], ["q", "q"])[("toxicity", "all")]
        assert v[1] > v[0], name


def test_hatesonar_needs_the_locale_fix():
    """The shipped graph fails to load where en_US.UTF-8 is absent; the patched one loads."""
    import locale

    import onnxruntime as ort
    from hatesonar.api import DEFAULT_MODEL_FILE

    try:
        locale.setlocale(locale.LC_ALL, "en_US.UTF-8")
        locale.setlocale(locale.LC_ALL, "")
        pytest.skip("this machine has en_US.UTF-8: the unpatched model would load")
    except locale.Error:
        pass
    with pytest.raises(Exception, match="locale"):
        ort.InferenceSession(str(DEFAULT_MODEL_FILE), providers=["CPUExecutionProvider"])
    from jaxalign.eval.scorers.offline import hatesonar_session

    session, _ = hatesonar_session()
    assert session.get_outputs()[0].name == "output_label"


def test_missing_package_is_an_error_naming_it(monkeypatch):
    import sys

    # None in sys.modules makes `import` raise ImportError, as if the wheel were absent.
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    with pytest.raises(JaxalignError, match=r"scorer needs the package vaderSentiment") as err:
        scorers.build("vader")
    assert "\n" not in str(err.value)


def test_unknown_scorer_and_out_of_range_values_are_refused():
    with pytest.raises(ConfigError, match=r"^eval\.scorers: 'nope' is not a scorer; expected"):
        scorers.check(["vader", "nope"])
    bad = scorers.Scorer(
        "bad", lambda t, p: {("toxicity", "all"): np.array([0.5, 1.5])}, "x==1", {}, 0.0, 1.0
    )
    with pytest.raises(DataError, match=r"scorer bad \(toxicity, all\): row 1 scored 1.5"):
        bad.score(["a", "b"], ["q", "q"])


def test_judge_scorer_refuses_a_train_fold_model(tmp_path, survey_dir):
    from jaxalign import rewards
    from jaxalign.config import Config, RewardConfig

    out = tmp_path / "rm"
    rewards.train(
        survey_dir / "ratings.parquet", out, Config(reward=RewardConfig(dimensions=("toxicity",)))
    )
    with pytest.raises(DataError, match="must be trained on the judge fold"):
        scorers.build("judge", model_dir=str(out))


def test_quality_figures():
    figs = quality.figures(
        ["the cat is on the mat and the cat is on the mat", "", "Das ist gut und die Antwort"],
        ["en", "en", "en"],
        [False, False, True],
    )
    assert figs["empty"].tolist() == [0, 1, 0] and figs["truncated"].tolist() == [0, 0, 1]
    assert figs["words"].tolist() == [13, 0, 6]
    assert figs["distinct_2"][0] == pytest.approx(7 / 12) and figs["distinct_2"][1] == 1.0
    assert figs["wrong_language"][0] == 0 and np.isnan(figs["wrong_language"][1])
    assert figs["wrong_language"][2] == 1  # a German reply to an English prompt

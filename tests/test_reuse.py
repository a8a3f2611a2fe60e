"""What one experiment process builds once and reuses across cells (tokenizers, scorer models),
and the per-stage seconds `experiment run` and `status` show."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from test_experiment import fake_stages, write_exp

from jaxalign.cli import main
from jaxalign.experiments import stages as real
from jaxalign.models.loading import load_tokenizer


def test_a_tokenizer_is_loaded_once_per_process_until_its_files_change(tiny_tokenizer, tmp_path):
    path = Path(shutil.copytree(tiny_tokenizer, tmp_path / "tok"))
    first = load_tokenizer(path)
    assert load_tokenizer(path) is first
    config = path / "tokenizer_config.json"
    config.write_text(config.read_text().replace("<|pad|>", "<|im_end|>"))
    changed = load_tokenizer(path)
    assert changed is not first and changed.pad_token == "<|im_end|>"
    (tmp_path / "empty").mkdir()
    assert load_tokenizer(tmp_path / "empty") is None


def test_offline_scorer_models_are_built_once_but_packages_checked_each_time(monkeypatch):
    import sys

    import pytest

    from jaxalign.errors import JaxalignError
    from jaxalign.eval import scorers

    a, b = scorers.build("hatesonar"), scorers.build("hatesonar")
    texts = ["you are an idiot", "thank you"]
    assert (
        a.score(texts, ["q"] * 2)[("toxicity", "all")]
        == b.score(texts, ["q"] * 2)[("toxicity", "all")]
    ).all()
    from jaxalign.eval.scorers.offline import hatesonar_session

    assert hatesonar_session()[0] is hatesonar_session()[0]
    scorers.build("vader")
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    with pytest.raises(JaxalignError, match="vaderSentiment"):
        scorers.build("vader")  # a cached analyzer never hides a missing package


def test_run_and_status_show_seconds_of_the_stages_that_ran(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(real, "real_stages", lambda trainers: fake_stages([]))
    args = ["experiment", "run", str(write_exp(tmp_path)), "--root", str(tmp_path / "root")]
    took = r"done \((survey [0-9.]+ s, )?train [0-9.]+ s, eval [0-9.]+ s\)"
    assert main(args) == 0
    ran = re.findall("-> " + took, capsys.readouterr().out)
    assert sorted(map(bool, ran)) == [False] * 7 + [True]  # the shared survey: first cell only
    assert main(["experiment", "status", *args[2:]]) == 0
    out = capsys.readouterr().out
    assert len(re.findall(took, out)) == 8
    assert "fake: done 8" in out  # the counts read the state, not the seconds
    assert main(args) == 0
    assert re.findall(r"-> done.*", capsys.readouterr().out) == ["-> done"] * 8  # all skipped

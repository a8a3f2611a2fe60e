"""Evaluation prompts (bank, user files) and judge separation (jaxalign/eval/prompts.py,
jaxalign/eval/separation.py): cheap, no model."""

from __future__ import annotations

import json

import pytest

from jaxalign.config import load_config
from jaxalign.errors import ConfigError, DataError
from jaxalign.eval import prompts, separation
from jaxalign.eval.bank import BANK, DE, EN
from jaxalign.survey.questions import QUESTIONS


def test_bank_is_large_bilingual_distinct_and_disjoint_from_the_survey():
    assert len(EN) >= 60 and len(DE) >= 60 and len(BANK) >= 120
    keys = [prompts.normalise(t) for _, _, t in BANK]
    assert len(set(keys)) == len(keys)
    assert not set(keys) & prompts.survey_questions()
    assert len({i for i, _, _ in BANK}) == len(BANK)
    assert all(t.endswith(("?", ".")) and len(t.split()) >= 4 for _, _, t in BANK)


def test_bank_subsets_are_balanced_by_language():
    first = prompts.bank(10)
    assert [p.language for p in first] == ["en", "de"] * 5


def _cfg(tmp_path, *extra):
    """Default config pointed at a prefs path in tmp_path."""
    return load_config(None, [f"data.prefs={tmp_path / 'p.jsonl'}", *extra])


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "2: not valid JSON"),
        ('{"text": "x"}', "2: expected an object with a string 'prompt'"),
        ('{"prompt": "  "}', "2: 'prompt' is empty"),
        ('{"prompt": "Is it fine?", "language": "fr"}', "2: 'language' 'fr'"),
        (json.dumps({"prompt": QUESTIONS[3][0].upper()}), "2: prompt equals a training question"),
        (json.dumps({"prompt": QUESTIONS[5][1] + "  "}), "2: prompt equals a training question"),
        ('{"prompt": "Another one?", "id": "a"}', "2: duplicate id 'a'"),
        ('{"prompt": "fine   QUESTION?"}', "2: same prompt as line 1"),
    ],
)
def test_bad_prompt_file_lines_name_file_and_line(tmp_path, line, message):
    path = tmp_path / "prompts.jsonl"
    path.write_text('{"prompt": "Fine question?", "id": "a"}\n' + line + "\n")
    cfg = _cfg(tmp_path, f"eval.prompts={path}")
    with pytest.raises(DataError) as err:
        prompts.load(cfg)
    assert str(err.value).startswith(f"{path}:{message}") and "\n" not in str(err.value)


def test_prompt_file_is_read_and_limited(tmp_path):
    path = tmp_path / "prompts.jsonl"
    rows = [{"prompt": f"Question number {i}?", "language": "en"} for i in range(5)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    got, source = prompts.load(_cfg(tmp_path, f"eval.prompts={path}", "eval.limit=3"))
    assert source == str(path) and [p.id for p in got] == ["line-1", "line-2", "line-3"]
    asked = [{"prompt": "Same question?", "group": g} for g in ("gender=male", "gender=female")]
    path.write_text("".join(json.dumps(r) + "\n" for r in asked))  # one prompt, two groups
    assert len(prompts.load(_cfg(tmp_path, f"eval.prompts={path}"))[0]) == 2
    with pytest.raises(DataError, match="no such prompt file"):
        prompts.load(_cfg(tmp_path, f"eval.prompts={tmp_path / 'none.jsonl'}"))
    with pytest.raises(DataError, match=r"expected bank, heldout or a \.jsonl file"):
        prompts.load(_cfg(tmp_path, "eval.prompts=prompts.txt"))


def test_eval_config_refuses_repeats_and_bad_values():
    with pytest.raises(ConfigError, match="scorers"):
        load_config(None, ["eval.scorers=[vader, vader]"])
    with pytest.raises(ConfigError, match=r"eval\.top_p"):
        load_config(None, ["eval.top_p=1.5"])


def _manifest(tmp_path, fold: dict, **extra) -> None:
    """A prefs manifest beside tmp_path/p.jsonl."""
    body = {"fold": fold, "input": {"path": "", "sha256": "0" * 64}, **extra}
    (tmp_path / "p.manifest.json").write_text(json.dumps(body))


def test_circular_evaluation_is_refused(tmp_path):
    judge = {"fold": "judge", "hash": "abc"}
    separation.check_not_circular(judge, {"fold": "train", "hash": "def"}, "preferences", "j")
    separation.check_not_circular(judge, None, "preferences", "j")
    for prefs in ({"fold": "judge", "hash": "zzz"}, {"fold": "train", "hash": "abc"}):
        with pytest.raises(DataError, match=r"^j: circular evaluation: the judge and the run's"):
            separation.check_not_circular(judge, prefs, "preferences", "j")


def test_judge_needs_a_manifest_or_eval_judge(tmp_path):
    with pytest.raises(DataError, match="no preference manifest"):
        separation.resolve_judge(_cfg(tmp_path))
    _manifest(tmp_path, {"fold": "train"}, ratings_options={"judge_fraction": 0.0})
    (tmp_path / "r.parquet").write_text("x")
    body = json.loads((tmp_path / "p.manifest.json").read_text())
    body["input"]["path"] = str(tmp_path / "r.parquet")
    (tmp_path / "p.manifest.json").write_text(json.dumps(body))
    with pytest.raises(DataError, match="no judge fold is left"):
        separation.resolve_judge(_cfg(tmp_path))


def test_reward_vs_judge_hook_warns_on_goodhart():
    assert not separation.reward_vs_judge(0.2, 0.15)["goodhart_warning"]
    out = separation.reward_vs_judge(0.9, 0.1)
    assert out["ratio"] == pytest.approx(9.0) and out["goodhart_warning"]


def test_judge_without_a_prefs_file_is_one_line():
    cfg = load_config("configs/train/tiny_grpo.yaml", [])  # GRPO: prompts, no data.prefs
    with pytest.raises(DataError, match=r"^data\.prefs: not set, so there is no preference"):
        separation.resolve_judge(cfg)

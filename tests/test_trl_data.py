"""TRL-format preference data in (JSONL, Parquet, datasets directories) and out (`prefs export`)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from conftest import TINY_CPU, tiny_config

from jaxalign.cli import main
from jaxalign.config import load_config
from jaxalign.data.chat import eos_ids, pad_id, render
from jaxalign.data.preferences import encode, read_records
from jaxalign.data.records import hashed_split, read_split
from jaxalign.errors import DataError

TOPICS = ["cooking", "chess", "trains", "music", "hiking", "the beach", "painting", "football"]


def user(text):
    """One user message."""
    return {"role": "user", "content": text}


def bot(text):
    """One assistant message."""
    return {"role": "assistant", "content": text}


def conversational(n_variants: int = 3) -> list[dict]:
    """TRL conversational records: single-turn, multi-turn and implicit-prompt, no split field."""
    out = []
    for topic in TOPICS:
        for v in range(n_variants):
            ask = user(f"Advice about {topic}, please ({v})?")
            good, bad = bot(f"Yes, gladly: enjoy {topic}."), bot(f"No. Not my problem, {topic}.")
            if v == 0:
                out.append({"prompt": [ask], "chosen": [good], "rejected": [bad]})
            elif v == 1:  # multi-turn prompt
                history = [user(f"Hello, I like {topic}."), bot("Nice."), ask]
                out.append({"prompt": history, "chosen": [good], "rejected": [bad]})
            else:  # implicit prompt: the shared start of chosen and rejected
                out.append({"chosen": [ask, good], "rejected": [ask, bad], "group": "g2"})
    return out


def write_jsonl(path, records):
    """Records as JSONL."""
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


@pytest.fixture(scope="module")
def tokenizer(tiny_tokenizer):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer)


def test_conversational_renders_like_standard_and_keeps_turns(tokenizer):
    plain = {"prompt": "Is chess fun?", "chosen": "Yes.", "rejected": "No."}
    chat = {"prompt": [user("Is chess fun?")], "chosen": [bot("Yes.")], "rejected": [bot("No.")]}
    for cond in ("none", "tag", "system_prompt"):
        a, b = (
            encode([r], tokenizer, max_prompt_len=99, max_len=200, conditioning=cond)
            for r in (plain, chat)
        )
        np.testing.assert_array_equal(a.chosen[0], b.chosen[0])
    history = [{"role": "system", "content": "Be brief."}, user("Hi"), bot("Hello"), user("Chess?")]
    text = render(tokenizer, history, None, "system_prompt", "gender=female")
    assert text.count("<|im_start|>system") == 1  # the group statement joins the system turn
    assert "gender: female" in text and "Be brief." in text and "Hello" in text


def test_special_token_ids_in_one_place(tokenizer):
    class Bare:
        pad_token_id = eos_token_id = None

    assert pad_id(tokenizer) == tokenizer.pad_token_id
    assert pad_id(Bare()) == 0
    assert eos_ids(tokenizer, (7, tokenizer.eos_token_id)) == (tokenizer.eos_token_id, 7)


def test_implicit_prompt_equals_explicit(tmp_path):
    records = [
        {"chosen": [user("Sky?"), bot("Blue.")], "rejected": [user("Sky?"), bot("Green.")]},
        {"chosen": "The sky is blue.", "rejected": "The sky is green."},
    ]
    got = read_records(write_jsonl(tmp_path / "p.jsonl", records))
    assert got[0]["prompt"] == [user("Sky?")] and got[0]["chosen"] == [bot("Blue.")]
    assert (got[1]["prompt"], got[1]["chosen"], got[1]["rejected"]) == (
        "The sky is",
        " blue.",
        " green.",
    )


def test_hashed_split_is_deterministic_and_keeps_prompts_together(tmp_path):
    records = conversational() * 2  # every prompt twice
    records += [{"prompt": f"Question {i}?", "chosen": "a", "rejected": "b"} for i in range(200)]
    first = read_records(write_jsonl(tmp_path / "a.jsonl", records), None, 0.3)
    shuffled = records[:]
    random.Random(0).shuffle(shuffled)
    second = read_records(write_jsonl(tmp_path / "b.jsonl", shuffled), None, 0.3)
    split_of = {}
    for r in first + second:
        key = json.dumps(r["prompt"])
        assert split_of.setdefault(key, r["split"]) == r["split"]  # never in two splits
    n_val = sum(r["split"] == "validation" for r in first)
    assert 0.2 < n_val / len(first) < 0.4  # non-default fraction honoured
    assert {r["split"] for r in read_records(tmp_path / "a.jsonl", None, 0.0)} == {"train"}
    # a string prompt and the same one-user-turn message list hash alike
    assert hashed_split("Hi?", 0.5) == hashed_split([user("Hi?")], 0.5)


def test_eval_prefs_gives_the_validation_set(tmp_path):
    train_file = write_jsonl(tmp_path / "t.jsonl", conversational())
    eval_file = write_jsonl(
        tmp_path / "e.jsonl", [{"prompt": "Q?", "chosen": "a", "rejected": "b", "split": "test"}]
    )
    cfg = load_config(None, [f"data.prefs={train_file}", f"data.eval_prefs={eval_file}"])
    assert len(read_split(cfg.data, "train")) == len(conversational())
    assert [r["prompt"] for r in read_split(cfg.data, "validation")] == ["Q?"]


def test_parquet_and_datasets_directories_read_like_jsonl(tmp_path):
    datasets = pytest.importorskip("datasets")  # absent on the GPU image
    import pyarrow as pa
    import pyarrow.parquet as pq

    records = [{**r, "weight": 0.5} for r in conversational() if "prompt" in r]
    expected = read_records(write_jsonl(tmp_path / "p.jsonl", records))
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "p.parquet")
    datasets.Dataset.from_list(records).save_to_disk(str(tmp_path / "ds"))
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(records[:4]),
            "valid": datasets.Dataset.from_list(records[4:]),
        }
    ).save_to_disk(str(tmp_path / "dd"))

    def core(rs):
        return [(r["prompt"], r["chosen"], r["rejected"], r["weight"], r["split"]) for r in rs]

    assert core(read_records(tmp_path / "p.parquet")) == core(expected)
    assert core(read_records(tmp_path / "ds")) == core(expected)
    splits = [r["split"] for r in read_records(tmp_path / "dd")]
    assert splits == ["train"] * 4 + ["validation"] * (len(records) - 4)
    # train and test only: the train records get the hashed validation split
    datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_list(records[:-2]),
            "test": datasets.Dataset.from_list(records[-2:]),
        }
    ).save_to_disk(str(tmp_path / "tt"))
    got = read_records(tmp_path / "tt", None, 0.5)
    assert [r["split"] for r in got[-2:]] == ["test", "test"]
    assert {r["split"] for r in got[:-2]} == {"train", "validation"}


def test_export_loads_with_datasets_and_has_trl_columns(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")

    src = write_jsonl(
        tmp_path / "p.jsonl",
        [{**r, "weight": 0.25, "soft_label": 0.75, "split": "train"} for r in conversational()]
        + [{"prompt": "Q?", "chosen": "a", "rejected": "b", "split": "validation"}],
    )
    out = tmp_path / "trl"
    assert main(["prefs", "export", "--prefs", str(src), "--out", str(out)]) == 0
    tagged = tmp_path / "tagged"
    argv = ["prefs", "export", "--prefs", str(src), "--out", str(tagged), "data.conditioning=tag"]
    assert main(argv) == 0
    loaded = datasets.load_from_disk(str(out))
    assert set(loaded) == {"train", "validation"}
    assert loaded["train"].column_names == [
        "prompt",
        "chosen",
        "rejected",
        "weight",
        "soft_label",
        "group",
    ]
    row = loaded["train"][2]  # an implicit-prompt record, made explicit
    assert row["prompt"] == [user("Advice about cooking, please (2)?")]
    assert row["chosen"] == [bot("Yes, gladly: enjoy cooking.")]
    assert (row["weight"], row["soft_label"], row["group"]) == (0.25, 0.75, "g2")
    assert loaded["validation"][0]["prompt"] == [user("Q?")]  # all conversational
    tagged_row = datasets.load_from_disk(str(tagged))["train"][2]
    assert tagged_row["prompt"] == [user("[g2] Advice about cooking, please (2)?")]
    # it reads back as training data
    assert len(read_records(out, "train")) == len(conversational())


def test_export_never_writes_over_data_without_overwrite(tmp_path, capsys):
    pytest.importorskip("datasets")
    src = write_jsonl(tmp_path / "p.jsonl", conversational())
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert main(["prefs", "export", "--prefs", str(src), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(out) in err[0] and "--overwrite" in err[0]
    assert (out / "notes.txt").read_text() == "keep me"
    assert (
        main(["prefs", "export", "--prefs", str(src), "--out", str(tmp_path), "--overwrite"]) == 1
    )
    assert src.exists()  # the input's own directory is never replaced
    assert main(["prefs", "export", "--prefs", str(src), "--out", str(out), "--overwrite"]) == 0
    assert not (out / "notes.txt").exists() and (out / "dataset_dict.json").exists()


BAD = {
    "negative weight": (b'{"prompt": "p", "chosen": "a", "rejected": "b", "weight": -1000}', "weight"),
    "soft label 7.5": (b'{"prompt": "p", "chosen": "a", "rejected": "b", "soft_label": 7.5}', "soft_label"),
    "empty chosen": (b'{"prompt": "p", "chosen": " ", "rejected": "b"}', "chosen"),
    "weight heavy": (b'{"prompt": "p", "chosen": "a", "rejected": "b", "weight": "heavy"}', "weight"),
    "weight null": (b'{"prompt": "p", "chosen": "a", "rejected": "b", "weight": null}', "weight"),
    "non-UTF-8": (b'{"prompt": "caf\xe9", "chosen": "a", "rejected": "b"}', "UTF-8"),
    "array line": (b'["p", "a", "b"]', "array"),
    "bad role": (b'{"prompt": [{"role": "boss", "content": "x"}], "chosen": "a", "rejected": "b"}', "prompt"),
    "no shared start": (b'{"chosen": "yes", "rejected": "no"}', "implicit prompt"),
    "unknown split": (b'{"prompt": "p", "chosen": "a", "rejected": "b", "split": "dev"}', "split"),
    "list as group": (b'{"prompt": "p", "chosen": "a", "rejected": "b", "group": ["x"]}', "group"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_record_is_one_located_line(case, tmp_path, capsys):
    line, key = BAD[case]
    good = b'{"prompt": "p", "chosen": "a", "rejected": "b"}\n'
    path = tmp_path / "bad.jsonl"
    path.write_bytes(good + line + b"\n")
    with pytest.raises(DataError) as err:
        read_records(path, "train")
    message = str(err.value)
    assert f"{path}: line 2" in message and key in message and "\n" not in message
    out = tmp_path / "out"
    assert main(["prefs", "export", "--prefs", str(path), "--out", str(out)]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{path}: line 2" in lines[0] and not out.exists()


def test_conversational_trl_file_trains(tiny_tokenizer, tmp_path):
    from jaxalign.train.loop import train

    prefs = write_jsonl(tmp_path / "trl.jsonl", conversational())
    cfg = tiny_config(
        tiny_tokenizer,
        prefs,
        tmp_path / "run",
        "data.validation_fraction=0.3",
        "data.conditioning=system_prompt",
        "train.steps=2",
        "train.eval_every=2",
        "train.checkpoint_every=2",
    )
    results = train(cfg, progress=False)
    n_val = len(read_records(prefs, "validation", 0.3))
    assert 0 < n_val < len(conversational())
    assert results["data/validation/pairs"] == n_val
    assert results["data/train/pairs"] == len(conversational()) - n_val
    assert np.isfinite(results["train/loss"]) and "eval/rewards/accuracies" in results


def test_train_cli_reports_a_bad_record_in_one_line(tiny_tokenizer, tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "p", "chosen": "a", "rejected": "b", "weight": "heavy"}\n')
    args = ["train", "--config", str(TINY_CPU), f"model.tokenizer={tiny_tokenizer}"]
    assert main([*args, f"data.prefs={bad}", f"train.run_dir={tmp_path / 'run'}"]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{bad}: line 1" in lines[0] and "'weight'" in lines[0]

"""Reward specs for GRPO: builtins, TRL-style functions, rating-model heads, reasoning policy."""

from __future__ import annotations

import re
import subprocess
import sys
import types

import numpy as np
import pytest

from jaxalign.errors import ConfigError, DataError
from jaxalign.rewards.features import Tfidf
from jaxalign.rewards.functions import build_rewards, check_reward_specs
from jaxalign.rewards.model import write_model
from jaxalign.rewards.ridge import Linear

PROMPTS = ["p0", "p1", "p2"]


@pytest.fixture
def fake_module(monkeypatch):
    """A module `rf_fake` with TRL-style reward functions, importable by name."""
    mod = types.ModuleType("rf_fake")
    mod.calls = []

    def count_a(prompts, completions, bonus=0.0, **kw):
        mod.calls.append({"prompts": prompts, "completions": completions, **kw})
        return [c.count("a") + bonus if c else None for c in completions]

    mod.count_a = count_a
    mod.short = lambda prompts, completions, **kw: [1.0]
    mod.words = lambda prompts, completions, **kw: ["high"] * len(completions)
    mod.scalar = lambda prompts, completions, **kw: 3.0
    mod.not_callable = 42
    monkeypatch.setitem(sys.modules, "rf_fake", mod)
    return mod


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A hand-made ridge model: toxicity[all] rises with 'hate', helpfulness[gender=female]
    with 'kind'."""
    out = tmp_path_factory.mktemp("rm")
    vocab = Tfidf.fit(["hate", "kind"], 1)
    tox = np.zeros(vocab.width)
    tox[vocab.index["hate"]] = 4.0
    helpful = np.zeros(vocab.width)
    helpful[vocab.index["kind"]] = 2.0
    heads = {
        "toxicity[all]": Linear(tox, 1.0, 1.0),
        "helpfulness[gender=female]": Linear(helpful, 3.0, 1.0),
    }
    write_model(out, {"kind": "ridge", "config": {"ood_threshold": 0.0}}, vocab, heads, ["x"])
    return out


def test_builtins_with_non_default_args_and_weights():
    rs = build_rewards(
        (
            {"builtin": "length", "args": {"target": 4, "unit": "chars"}, "weight": 0.5},
            {"builtin": "length", "name": "len_words", "args": {"target": 2}},
            {
                "builtin": "avoid_word",
                "args": {"word": "Cat", "max_words": 3, "case_sensitive": True},
                "name": "no_cat",
                "weight": -2,
            },
            {"builtin": "avoid_word", "args": {"word": "dog"}, "name": "no_dog"},
        )
    )
    assert rs.names == ["length", "len_words", "no_cat", "no_dog"]
    assert rs.weights.dtype == np.float32 and rs.weights.tolist() == [0.5, 1.0, -2.0, 1.0]
    out = rs(PROMPTS, ["abcd", "Cat cat dogs", "a b c d"])
    assert out.dtype == np.float32 and out.shape == (3, 4)
    np.testing.assert_allclose(out[:, 0], [0.0, -2.0, -0.75])  # chars vs target 4
    np.testing.assert_allclose(out[:, 1], [-0.5, -0.5, -1.0])  # words vs target 2
    # case-sensitive 'Cat' in row 1; row 2 has 4 words > max_words 3
    np.testing.assert_allclose(out[:, 2], [1.0, 0.0, 0.0])
    # whole words only, case-insensitive by default: 'dogs' is not 'dog'
    np.testing.assert_allclose(out[:, 3], [1.0, 1.0, 1.0])
    assert rs(["q"], ["my DOG"])[0, 3] == 0.0


def test_function_reward_gets_kwargs_args_and_none_is_nan(fake_module):
    rs = build_rewards(({"function": "rf_fake:count_a", "args": {"bonus": 0.5}},), reasoning=None)
    assert rs.names == ["count_a"]
    out = rs(PROMPTS, ["aa", "", "b"], answer=["x", "y", "z"])
    np.testing.assert_allclose(out[:, 0], [2.5, np.nan, 0.5])
    call = fake_module.calls[-1]
    assert call["prompts"] == PROMPTS and call["answer"] == ["x", "y", "z"]


@pytest.mark.parametrize(
    "ref, needle",
    [
        (
            "rf_missing_module:f",
            "grpo.rewards[0].function: cannot import module 'rf_missing_module'",
        ),
        ("rf_fake:nope", "module 'rf_fake' has no attribute 'nope'"),
        ("rf_fake:not_callable", "'rf_fake:not_callable' is not callable"),
    ],
)
def test_function_that_cannot_be_found_is_one_config_line(fake_module, ref, needle):
    with pytest.raises(ConfigError, match=re.escape(needle)) as err:
        build_rewards(({"function": ref},))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "fn, needle",
    [
        ("short", "'rf_fake:short' returned 1 values for 3 completions"),
        ("words", "'rf_fake:words' returned str 'high' at row 0, expected a number or None"),
        ("scalar", "'rf_fake:scalar' returned float, expected a list of numbers"),
    ],
)
def test_function_returning_bad_values_is_a_data_error_naming_it(fake_module, fn, needle):
    rs = build_rewards(({"function": f"rf_fake:{fn}"},))
    with pytest.raises(DataError, match=re.escape(needle)):
        rs(PROMPTS, ["a", "b", "c"])


def test_model_heads_oriented_higher_is_better(model_dir):
    rs = build_rewards(
        (
            {"model": str(model_dir), "head": "all/toxicity"},
            {"model": str(model_dir), "head": "gender=female/helpfulness", "weight": 2.0},
        )
    )
    assert rs.names == ["toxicity[all]", "helpfulness[gender=female]"]
    out = rs(PROMPTS, ["hate", "kind", "nothing"])
    # toxicity 5 / 1 / 1 -> (5 - r) / 4; helpfulness 3 / 5 / 3 -> (r - 1) / 4
    np.testing.assert_allclose(out[:, 0], [0.0, 1.0, 1.0])
    np.testing.assert_allclose(out[:, 1], [0.5, 1.0, 0.5])


def test_unknown_model_head_lists_the_allowed_heads(model_dir):
    with pytest.raises(ConfigError) as err:
        build_rewards(({"model": str(model_dir), "head": "gender=male/toxicity"},))
    assert str(err.value) == (
        f"grpo.rewards[0].head: 'gender=male/toxicity' is not in {model_dir} "
        "(heads: gender=female/helpfulness, all/toxicity)"
    )
    with pytest.raises(ConfigError, match=r"grpo.rewards\[0\].model: .*no such model directory"):
        build_rewards(({"model": str(model_dir / "none"), "head": "all/toxicity"},))


@pytest.mark.parametrize(
    "specs, needle",
    [
        ((), r"grpo.rewards: at least one reward is needed"),
        ({"builtin": "length"}, r"grpo.rewards: expected a list of reward specs"),
        (("length",), r"grpo.rewards\[0\]: expected a mapping"),
        (
            ({"name": "x"},),
            r"\[0\]: needs exactly one of builtin, function, model, scorer \(found none\)",
        ),
        (({"builtin": "length", "model": "d"},), r"\(found builtin and model\)"),
        (({"builtin": "length", "head": "all/toxicity"},), r"\[0\].head: unknown key"),
        (
            ({"builtin": "lenght"},),
            r"\[0\].builtin: unknown 'lenght' \(one of length, avoid_word\)",
        ),
        (({"builtin": "length", "args": {"target": 0}},), r"args.target: must be an integer >= 1"),
        (({"builtin": "length", "args": {"unit": "tokens"}},), r"args.unit: must be one of"),
        (({"builtin": "length", "args": {"goal": 3}},), r"args.goal: unknown argument of length"),
        (({"builtin": "avoid_word"},), r"\[0\].args.word: required by the avoid_word reward"),
        (({"builtin": "avoid_word", "args": {"word": "x", "max_words": 0}},), r"max_words: must"),
        (({"builtin": "length", "weight": "1"},), r"\[0\].weight: must be a finite number"),
        (({"builtin": "length", "weight": float("nan")},), r"\[0\].weight: must be a finite"),
        (({"function": "no_colon"},), r"\[0\].function: expected 'module:function'"),
        (({"function": "a:b", "args": [1]},), r"\[0\].args: must be a mapping"),
        (({"model": "d", "head": "toxicity"},), r"\[0\].head: expected GROUP/DIMENSION"),
        (({"model": "d", "head": "all/rudeness"},), r"dimensions: toxicity, emotional_awareness"),
        (({"scorer": "judge"},), r"\[0\].scorer: 'judge' is an evaluation scorer; use a rating"),
        (({"scorer": "detoxify"},), r"\[0\].scorer: 'detoxify' is not one of hatesonar, profan"),
        (({"scorer": "vader", "args": {}},), r"\[0\].args: unknown key for a scorer reward"),
        (
            ({"builtin": "length", "name": "a/b"},),
            r"\[0\].name: must be a non-empty string without '/'",
        ),
        (
            ({"builtin": "length"}, {"builtin": "length", "args": {"target": 3}}),
            r"grpo.rewards\[1\]: reward name 'length' is already used by grpo.rewards\[0\]",
        ),
    ],
)
def test_bad_specs_are_one_config_line_naming_the_index(specs, needle):
    with pytest.raises(ConfigError, match=needle) as err:
        check_reward_specs(specs)
    assert "\n" not in str(err.value)


def test_offline_scorer_rewards_are_oriented_higher_is_better_on_0_1():
    texts = ["You are a stupid idiot and I hate you.", "Thank you, that is a kind question."]
    rewards = build_rewards(
        ({"scorer": "profanity"}, {"scorer": "hatesonar", "weight": 0.5}, {"scorer": "vader"})
    )
    assert rewards.names == ["profanity", "hatesonar", "vader"]
    np.testing.assert_array_equal(rewards.weights, np.float32([1.0, 0.5, 1.0]))
    got = rewards(["q", "q"], texts)
    assert got.shape == (2, 3) and np.all((got >= 0) & (got <= 1))
    # Toxicity scorers: lower toxicity is the higher reward; VADER: more positive is higher.
    assert got[1, 0] > got[0, 0] and got[1, 1] > got[0, 1] and got[1, 2] > got[0, 2]


def test_check_uses_the_given_key_and_good_specs_pass():
    check_reward_specs(
        ({"function": "pkg.mod:fn"}, {"model": "d", "head": "country=United States/sensitivity"})
    )
    with pytest.raises(ConfigError, match=r"^cfg.r\[0\].builtin"):
        check_reward_specs(({"builtin": "x"},), key="cfg.r")


def test_importing_and_checking_specs_loads_no_jax():
    code = (
        "import sys; from jaxalign.rewards.functions import check_reward_specs;"
        "check_reward_specs(({'builtin': 'length'},));"
        "assert 'jax' not in sys.modules and 'jaxalign.rewards.model' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bench_grpo_trl_reward_equals_the_length_builtin():
    # scripts/bench_grpo.py gives TRL a plain function; both sides must score alike.
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "scripts" / "bench_grpo.py"
    spec = importlib.util.spec_from_file_location("bench_grpo", path)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    texts = ["one two three", "", "a " * 30, "x\ny z"]
    ours = build_rewards(({"builtin": "length", "args": {"target": 5}},))(["p"] * 4, texts)
    theirs = bench.length_reward(
        ["p"] * 4, [[{"role": "assistant", "content": t}] for t in texts], 5
    )
    np.testing.assert_allclose(ours[:, 0], theirs, rtol=1e-6)

"""Reasoning blocks: splitting, the unclosed-block policy in RewardSet, chat-template kwargs."""

from __future__ import annotations

import numpy as np
import pytest

from jaxalign.data.chat import chat_ids, render
from jaxalign.data.reasoning import split_reasoning
from jaxalign.errors import ConfigError
from jaxalign.rewards.functions import build_rewards


@pytest.mark.parametrize(
    "text, kwargs, expected",
    [
        ("<think>a b</think> ans", {}, ("a b", "ans", True)),
        # the answer follows the LAST close delimiter
        ("<think>x</think>mid</think> final ", {}, ("x</think>mid", "final", True)),
        ("<think>still thinking", {}, ("still thinking", "", False)),
        ("no block at all", {}, ("", "no block at all", True)),
        ("pre [r] why [/r] ok", {"open": "[r]", "close": "[/r]"}, ("why", "ok", True)),
        # template opened the block: no close means unclosed, not a plain answer
        ("thinking without tags", {"open": ""}, ("thinking without tags", "", False)),
        ("why</think>ans", {"open": ""}, ("why", "ans", True)),
    ],
)
def test_split_reasoning(text, kwargs, expected):
    assert split_reasoning(text, **kwargs) == expected


COMPLETIONS = ["<think>long long long</think>a b", "<think>a b c d e f", "plain x"]


@pytest.mark.parametrize(
    "unclosed, row1",
    [("zero", [0.0, 0.0]), ("nan", [np.nan, np.nan]), ("full", [-1.0, 1.0])],
)
def test_unclosed_policy_and_rewards_see_the_answer_only(unclosed, row1):
    rs = build_rewards(
        (
            {"builtin": "length", "args": {"target": 3}},
            {"builtin": "avoid_word", "args": {"word": "long"}},
        ),
        reasoning={"unclosed": unclosed},
    )
    out = rs(["p"] * 3, COMPLETIONS)
    # row 0: 'a b' (2 words vs 3), 'long' only inside the reasoning -> avoided
    np.testing.assert_allclose(out[0], [-1 / 3, 1.0])
    np.testing.assert_allclose(out[1], row1)  # 'full' scores '<think>a b c d e f' (6 words)
    np.testing.assert_allclose(out[2], [-1 / 3, 1.0])


def test_custom_delimiters_template_opened_block():
    rs = build_rewards(
        ({"builtin": "length", "args": {"target": 1}},),
        reasoning={"open": None, "close": "<|end_think|>", "unclosed": "nan"},
    )
    out = rs(["p", "p"], ["why why<|end_think|>yes", "why why </think> yes"])
    np.testing.assert_allclose(out[:, 0], [0.0, np.nan])


@pytest.mark.parametrize(
    "reasoning, needle",
    [
        ({"unclosed": "skip"}, r"grpo.reasoning.unclosed: must be one of zero, nan, full"),
        ({"close": ""}, r"grpo.reasoning.close: must be a non-empty string"),
        ({"open": 3}, r"grpo.reasoning.open: must be a string"),
        ({"delimiter": "x"}, r"grpo.reasoning.delimiter: unknown key"),
        ("</think>", r"grpo.reasoning: expected a mapping"),
    ],
)
def test_bad_reasoning_settings(reasoning, needle):
    with pytest.raises(ConfigError, match=needle):
        build_rewards(({"builtin": "length"},), reasoning=reasoning)


# The enable_thinking branch of Qwen3's chat template (ChatML otherwise).
THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}"
    "<think>\n\n</think>\n\n{% endif %}{% endif %}"
)


@pytest.fixture(scope="module")
def thinking_tokenizer(tiny_tokenizer):
    """The tests' tiny BPE tokenizer with a template that reads `enable_thinking`."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast.from_pretrained(tiny_tokenizer)
    tok.chat_template = THINKING_TEMPLATE
    return tok


def test_chat_template_kwargs_reach_the_template(thinking_tokenizer):
    tok = thinking_tokenizer
    on = render(tok, "Why?", None, "system_prompt", "gender=female")
    off = render(tok, "Why?", None, "system_prompt", "gender=female", {"enable_thinking": False})
    assert on.endswith("<|im_start|>assistant\n") and "gender: female" in on
    assert off == on + "<think>\n\n</think>\n\n"
    ids = chat_ids(tok, "Why?", None, enable_thinking=False)
    assert tok.decode(ids).endswith("</think>\n\n")
    full = render(tok, "Why?", "Because.", chat_template_kwargs={"enable_thinking": False})
    assert full.endswith("<|im_start|>assistant\nBecause.<|im_end|>\n")


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"tokenize": True}, r"chat_template_kwargs.tokenize: set by jaxalign itself"),
        (["enable_thinking"], r"chat_template_kwargs: expected a mapping"),
    ],
)
def test_bad_chat_template_kwargs(thinking_tokenizer, kwargs, needle):
    with pytest.raises(ConfigError, match=needle):
        render(thinking_tokenizer, "Why?", None, chat_template_kwargs=kwargs)

"""Reasoning blocks in completions: split `<think>...</think>` from the answer that gets scored.

A reasoning model writes `open reasoning close answer`; rewards read only the answer (the
text after the LAST `close`, as TRL's `reasoning_accuracy_reward` does). Some chat templates
put `open` into the prompt (the completion starts inside the block): pass `open=""` for those,
so a completion without `close` counts as unclosed rather than as a plain answer.
"""

from __future__ import annotations

UNCLOSED = ("zero", "nan", "full")
DEFAULTS = {"open": "<think>", "close": "</think>", "unclosed": "zero"}


def split_reasoning(
    text: str, open: str = "<think>", close: str = "</think>"
) -> tuple[str, str, bool]:
    """`(reasoning, answer, closed)`: the answer follows the last `close`, both stripped.

    Without `close`: if the block was opened (`open` in the text, or `open` empty because the
    template opened it) the whole tail is unfinished reasoning, `("...", "", False)`; a text
    with neither delimiter has no reasoning block, `("", text, True)`.
    """
    if not close:
        raise ValueError("the closing reasoning delimiter must not be empty")
    end = text.rfind(close)
    if end >= 0:
        before, answer = text[:end], text[end + len(close) :]
        if open and open in before:
            before = before.split(open, 1)[1]
        return before.strip(), answer.strip(), True
    if not open:
        return text.strip(), "", False
    if open in text:
        return text.split(open, 1)[1].strip(), "", False
    return "", text.strip(), True


def answer_texts(texts: list[str], open: str, close: str) -> tuple[list[str], list[bool]]:
    """The answer part of each text and whether its reasoning block closed."""
    parts = [split_reasoning(t, open, close) for t in texts]
    return [p[1] for p in parts], [p[2] for p in parts]

"""Progress bars never nest: an inner loop reports through the bar already on screen."""

from __future__ import annotations

import io

import pytest

from jaxalign.progress import bar


class _Terminal(io.StringIO):
    """A stream that says it is a terminal, so tqdm draws."""

    def isatty(self) -> bool:
        return True


def test_inner_loop_reports_in_the_outer_bar_and_restores_it():
    out = _Terminal()
    with bar(total=2, desc="outer", unit="step", file=out) as outer:
        outer.set_postfix(loss="0.5")
        seen = []
        for _ in bar(range(3), desc="inner", unit="batch"):
            seen.append(outer.postfix)
        assert seen[0] == "inner 0/3 batch" and outer.postfix == "loss=0.5"
        outer.update()
    assert "inner 2/3 batch" in out.getvalue() and "\x1b[A" not in out.getvalue()
    again = _Terminal()
    for _ in bar(range(2), desc="next", file=again):  # a real bar again once the outer closed
        pass
    assert "next" in again.getvalue()


def test_an_error_or_a_hidden_bar_leaves_no_bar_open():
    with pytest.raises(ValueError), bar(range(3), file=_Terminal()) as ticks:
        for _ in ticks:
            raise ValueError
    bar(range(3), disable=True)  # never closed, but draws nothing: must not swallow the next
    again = _Terminal()
    for _ in bar(range(2), desc="next", file=again):
        pass
    assert "next" in again.getvalue()

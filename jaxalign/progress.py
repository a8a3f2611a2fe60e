"""Progress bars that never nest: an inner loop reports through the bar already on screen.

tqdm draws a second live bar one line lower and moves the cursor back with "\\x1b[A"; logs,
CI and many terminals show that as stray `[A`. So only the outermost bar is a real tqdm bar;
while it is open, an inner loop's progress goes into its postfix and the bar is restored after.
"""

from __future__ import annotations

from tqdm.auto import tqdm

_open: list[tqdm] = []


class _Bar(tqdm):
    """A tqdm bar that registers itself as the one on screen until closed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # A bar that draws nothing cannot be nested into (and, if a caller forgets to close
        # it, must not swallow later bars in a long-lived process such as a notebook).
        if not self.disable:
            _open.append(self)

    def close(self):
        """Close, and let the next bar be a real one again."""
        if self in _open:
            _open.remove(self)
        super().close()


class _Inner:
    """An inner loop's progress, shown as `desc n/total unit` in the outer bar's postfix."""

    def __init__(self, outer: tqdm, iterable, total, desc, unit, disable):
        self.outer, self.iterable, self.desc, self.unit = outer, iterable, desc or "", unit
        self.total = total if total is not None else _length(iterable)
        self.n = 0
        self.shown = not (disable is True or getattr(outer, "disable", True))
        self.saved = getattr(outer, "postfix", None) or ""
        self._show()

    def __iter__(self):
        try:
            for item in self.iterable:
                yield item
                self.update(1)
        finally:
            self.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def update(self, n: int = 1) -> None:
        """Advance by `n`."""
        self.n += n
        self._show()

    def set_postfix(self, *args, **kwargs) -> None:
        """Ignored: the outer bar's postfix is this loop's whole display."""

    def set_description(self, desc=None, refresh=True) -> None:
        """Rename the inner loop."""
        self.desc = desc or ""
        self._show()

    def close(self) -> None:
        """Give the outer bar its own postfix back."""
        if self.shown:
            self.outer.set_postfix_str(self.saved)
            self.shown = False

    def _show(self) -> None:
        """Write `desc n/total unit` into the outer bar."""
        if self.shown:
            of = f"/{self.total}" if self.total is not None else ""
            self.outer.set_postfix_str(f"{self.desc} {self.n}{of} {self.unit}".strip())


def _length(iterable):
    """len(iterable), or None."""
    try:
        return len(iterable)
    except TypeError:
        return None


def bar(iterable=None, *, desc=None, total=None, unit="it", disable=None, **kwargs):
    """A tqdm bar, or (while one is open) progress reported through that bar instead.

    `disable=None` shows a bar on a terminal only, like tqdm's own default. Use it as a
    context manager (`with bar(items) as items: for ...`) so an error inside closes it.
    """
    if _open:
        return _Inner(_open[-1], iterable, total, desc, unit, disable)
    return _Bar(iterable, desc=desc, total=total, unit=unit, disable=disable, **kwargs)

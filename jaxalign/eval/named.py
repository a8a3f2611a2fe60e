"""Things chosen by name from a config (evaluators, scorers): one registry mechanism.

Built-ins are listed by name with the module that registers them and are imported only when
picked, so checking names costs no heavy import; other modules (or tests) add entries with
`register`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence

from jaxalign.errors import ConfigError


class Named:
    """A name -> callable table with lazily imported built-ins."""

    def __init__(self, noun: str, builtin: dict[str, str]):
        """`noun` as it reads in errors ("an evaluator"); `builtin`: name -> module."""
        self.noun, self.builtin = noun, builtin
        self.entries: dict[str, Callable] = {}

    def register(self, name: str):
        """Decorator: make the function the entry called `name`."""

        def add(fn):
            self.entries[name] = fn
            return fn

        return add

    def names(self) -> tuple[str, ...]:
        """Every name, sorted."""
        return tuple(sorted({*self.builtin, *self.entries}))

    def check(self, selected: Sequence[str], key: str) -> None:
        """Refuse an unknown name in one line that lists the allowed ones."""
        for name in selected:
            if name not in self.entries and name not in self.builtin:
                allowed = ", ".join(self.names())
                raise ConfigError(f"{key}: {name!r} is not {self.noun}; expected one of {allowed}")

    def get(self, name: str, key: str) -> Callable:
        """The entry called `name`, importing its module if it is a built-in."""
        self.check((name,), key)
        if name not in self.entries:
            importlib.import_module(self.builtin[name])
        return self.entries[name]

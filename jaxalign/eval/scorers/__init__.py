"""Scorers of generated replies, chosen by name (`eval.scorers`), as the evaluators are.

A scorer maps replies (and their prompts) to numbers: `score(texts, prompts) -> {key: [N]}`,
one array per (dimension, group) it covers; secondary scorers cover one dimension for group
"all". Each carries what a report needs beside its numbers: the package and version that
computed them, the direction of improvement and the valid range (values outside it are a
DataError naming the scorer and row). Everything runs offline: models and lexicons ship
inside the pinned wheels (requirements.lock), nothing is downloaded. A scorer whose package is
not installed is refused with the package's name (`pip install ...`), never skipped.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from jaxalign.errors import DataError, JaxalignError
from jaxalign.eval.named import Named

# Built-in scorers and the module that registers each ("judge" is built per model directory).
BUILTIN = {
    "profanity": "jaxalign.eval.scorers.offline",
    "hatesonar": "jaxalign.eval.scorers.offline",
    "vader": "jaxalign.eval.scorers.offline",
    "judge": "jaxalign.eval.scorers.judge",
}
_NAMED = Named("a scorer", BUILTIN)


@dataclass
class Scorer:
    """A named scoring function with its provenance, direction and range."""

    name: str
    fn: Callable[[list[str], list[str]], dict[tuple[str, str], np.ndarray]]
    package: str  # "name==version" of what computed the numbers
    lower_is_better: dict[str, bool]  # per dimension
    low: float
    high: float
    note: str = ""

    def score(
        self, texts: Sequence[str], prompts: Sequence[str]
    ) -> dict[tuple[str, str], np.ndarray]:
        """{(dimension, group): float [N]} for the replies; range-checked."""
        texts, prompts = [str(t) for t in texts], [str(p) for p in prompts]
        out = self.fn(texts, prompts)
        for (dim, group), values in out.items():
            values = np.asarray(values, float)
            bad = np.flatnonzero(~np.isfinite(values) | (values < self.low) | (values > self.high))
            if bad.size:
                raise DataError(
                    f"scorer {self.name} ({dim}, {group}): row {int(bad[0])} scored "
                    f"{float(values[bad[0]])!r}, outside [{self.low}, {self.high}]"
                )
            out[(dim, group)] = values
        return out


def register(name: str):
    """Decorator: `fn(**options) -> Scorer` builds the scorer called `name`."""
    return _NAMED.register(name)


def names() -> tuple[str, ...]:
    """Every scorer name, sorted."""
    return _NAMED.names()


def check(selected: Sequence[str], key: str = "eval.scorers") -> None:
    """Refuse an unknown scorer name in one line listing the allowed ones."""
    _NAMED.check(selected, key)


def build(name: str, **options) -> Scorer:
    """The scorer called `name`, built (its package imported) now."""
    return _NAMED.get(name, "eval.scorers")(**options)


def require(module: str, package: str):
    """Import `module` of pip package `package`; missing: a JaxalignError naming the package."""
    from importlib import metadata

    try:
        mod = importlib.import_module(module)
    except ImportError as err:
        raise JaxalignError(
            f"scorer needs the package {package} ({err}); install it with "
            f"'pip install --no-deps {package}' or 'make setup' (requirements.lock pins it)"
        ) from None
    return mod, f"{package}=={metadata.version(package)}"

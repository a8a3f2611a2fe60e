"""Evaluators chosen by name (as big_vision's `evaluators`): modules register, a config picks.

An evaluator is `fn(run: EvalRun) -> Comparison`: base-vs-tuned numbers for a trained run.
`eval.evaluators` lists the names `jaxalign eval` runs, in order. Built-in evaluators are
imported only when picked, so checking names costs no jax import; another module (or a
test) adds one with `@register("name")`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jaxalign.eval.named import Named

# Built-in evaluators and the module that registers each.
BUILTIN = {
    "behaviour": "jaxalign.eval.behaviour",
    "preferences": "jaxalign.eval.preferences",
    "generations": "jaxalign.eval.generations",
}
_NAMED = Named("an evaluator", BUILTIN)
_REGISTRY: dict[str, Callable] = _NAMED.entries


@dataclass(frozen=True)
class EvalRun:
    """One `jaxalign eval`: the resolved config and the command's limits."""

    cfg: Any  # a Config: model, data, optim and train.run_dir of the trained run
    max_new_tokens: int = 48
    prompts: int = 8

    @property
    def run_dir(self) -> Path:
        """The trained run's directory."""
        return Path(self.cfg.train.run_dir)


@dataclass
class Comparison:
    """What one evaluator found: metric -> (base, tuned), and how to show it."""

    rows: dict[str, tuple[float, float]] = field(default_factory=dict)
    note: str = ""  # shown after every row (e.g. how many prompts were scored)
    step: int | None = None  # the checkpoint the tuned numbers come from, if one was restored
    footer: tuple[str, ...] = ()  # lines after the table (e.g. files written)


def register(name: str):
    """Decorator: make the function the evaluator called `name`."""
    return _NAMED.register(name)


def names() -> tuple[str, ...]:
    """Every evaluator name, sorted."""
    return _NAMED.names()


def check(selected: Sequence[str], key: str = "eval.evaluators") -> None:
    """Refuse an unknown name in one line that lists the allowed ones."""
    _NAMED.check(selected, key)


def get(name: str) -> Callable[[EvalRun], Comparison]:
    """The evaluator called `name` (importing its module if it is a built-in)."""
    return _NAMED.get(name, "eval.evaluators")


def run_all(run: EvalRun, selected: Sequence[str]) -> list[tuple[str, Comparison]]:
    """Run the named evaluators in order (every name is checked before any runs)."""
    check(selected)
    return [(name, get(name)(run)) for name in selected]

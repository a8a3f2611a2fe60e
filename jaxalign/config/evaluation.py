"""The `eval` config section: which evaluators `jaxalign eval` runs, by name."""

from __future__ import annotations

from dataclasses import dataclass

from jaxalign.errors import ConfigError


@dataclass(frozen=True)
class EvalConfig:
    """Evaluators (jaxalign/eval/registry.py) comparing a trained run with its base model.

    Not part of a training run's id (`DPORun`): it chooses what is reported after training,
    not what is trained. Names are checked against the registry when `jaxalign eval` starts
    (config/ imports no evaluator).
    """

    evaluators: tuple[str, ...] = ("preferences", "generations")

    def __post_init__(self):
        """At least one evaluator, none twice."""
        if not self.evaluators:
            raise ConfigError("evaluators: at least one is required, e.g. [preferences]")
        if len(set(self.evaluators)) != len(self.evaluators):
            raise ConfigError(f"evaluators: {list(self.evaluators)} repeats an evaluator")

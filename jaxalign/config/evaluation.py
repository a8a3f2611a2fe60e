"""The `eval` config section: which evaluators `jaxalign eval` runs, and how the behaviour
evaluator (jaxalign/eval/behaviour.py; docs/EVALUATION.md) picks prompts, decodes and scores."""

from __future__ import annotations

from dataclasses import dataclass, field

from jaxalign.errors import ConfigError


@dataclass(frozen=True)
class EvalConfig:
    """Evaluators (jaxalign/eval/registry.py) comparing a trained run with its base model.

    Not part of a training run's id (`DPORun`): it chooses what is reported after training,
    not what is trained. Evaluator and scorer names are checked against their registries when
    `jaxalign eval` starts (config/ imports neither).
    """

    evaluators: tuple[str, ...] = ("preferences", "behaviour")
    # bank (the shipped evaluation questions), heldout (the run's validation questions) or a
    # JSONL file of {"prompt": ..., optional "id", "language"} records.
    prompts: str = "bank"
    limit: int = field(default=0, metadata={"ge": 0})  # first N prompts; 0 = all
    num_samples: int = field(default=2, metadata={"ge": 0})  # sampled replies beside greedy
    temperature: float = field(default=0.7, metadata={"gt": 0.0})
    top_p: float = field(default=0.95, metadata={"gt": 0.0, "le": 1.0})
    max_new_tokens: int = field(default=48, metadata={"ge": 1})
    batch_size: int = field(default=32, metadata={"ge": 1})
    seed: int = field(default=0, metadata={"ge": 0})
    scorers: tuple[str, ...] = ("judge", "profanity", "hatesonar", "vader")
    # A judge-fold rating model directory; "" trains one (reward settings, --fold judge) from
    # the ratings the run's preferences were built from (their manifest names them).
    judge: str = ""
    judge_groups: tuple[str, ...] = ("all",)
    bootstrap: int = field(default=2000, metadata={"ge": 100})
    # Base-model generations and trained judges are cached here; "" = RUN_DIR/../_eval_cache.
    cache_dir: str = ""

    def __post_init__(self):
        """At least one evaluator, none twice; scorers likewise."""
        for key in ("evaluators", "scorers"):
            names = getattr(self, key)
            if not names:
                raise ConfigError(f"{key}: at least one is required")
            if len(set(names)) != len(names):
                raise ConfigError(f"{key}: {list(names)} repeats a name")
        if not self.prompts:
            raise ConfigError("prompts: expected bank, heldout or a .jsonl file")

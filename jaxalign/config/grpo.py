"""The `grpo` config section: rollouts, rewards and TRL's GRPO loss options (docs/TRAINING.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jaxalign.errors import ConfigError

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo")


@dataclass(frozen=True)
class GRPOConfig:
    """Group Relative Policy Optimization: TRL 1.16's defaults unless said otherwise."""

    # A JSONL/Parquet file of records with a `prompt` (a string or chat messages): a
    # `prefs build` file (each prompt once) or plain `{"prompt": ...}` lines. Records with
    # `split: validation` are held out (greedy evaluation); `test` ones are left out.
    prompts: str = ""
    num_generations: int = field(default=8, metadata={"ge": 2})
    # Completions per learner step: a multiple of num_generations and of the data axes.
    batch_size: int = field(default=16, metadata={"ge": 2})
    # Learner steps per rollout (TRL's steps_per_generation): one rollout samples
    # batch_size x steps_per_rollout completions.
    steps_per_rollout: int = field(default=1, metadata={"ge": 1})
    num_iterations: int = field(default=1, metadata={"ge": 1})  # mu: passes over each rollout
    loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"] = (
        "dapo"
    )
    beta: float = field(default=0.0, metadata={"ge": 0.0})
    # "model": a frozen copy of the initial policy (held only when beta > 0).
    reference: Literal["model", "none"] = "model"
    epsilon: float = field(default=0.2, metadata={"gt": 0.0})
    epsilon_high: float | None = None  # None: epsilon
    delta: float | None = None  # cap on the unclipped ratio (two-sided clipping); None: off
    importance_sampling_level: Literal["token", "sequence"] = "token"
    scale_rewards: Literal["group", "batch", "none"] = "group"
    # "min" is MaxMin: each completion's reward is its worst (weighted) head.
    aggregation: Literal["sum_then_normalize", "normalize_then_sum", "min"] = "sum_then_normalize"
    mask_truncated_completions: bool = False
    temperature: float = field(default=1.0, metadata={"gt": 0.0})
    top_p: float = field(default=1.0, metadata={"gt": 0.0, "le": 1.0})
    top_k: int = field(default=0, metadata={"ge": 0})  # 0: off
    max_prompt_len: int = field(default=256, metadata={"ge": 1})  # longer prompts keep their end
    max_completion_len: int = field(default=128, metadata={"ge": 1})
    # Reward specs (jaxalign/rewards/functions.py): {builtin|function|model|scorer: ..., ...}.
    rewards: tuple[dict, ...] = ()
    # {open: "<think>", close: "</think>", unclosed: zero|nan|full}; empty: no reasoning split.
    reasoning: dict = field(default_factory=dict)
    # Passed to the tokenizer's chat template (e.g. {enable_thinking: false} for Qwen3).
    chat_template_kwargs: dict = field(default_factory=dict)
    seed: int = field(default=0, metadata={"ge": 0})  # prompt order and sampling keys
    logprob_chunk: int = field(default=256, metadata={"ge": 1})

    def __post_init__(self):
        """Cross-field rules that need no data: batch and groups, beta and its reference."""
        if self.batch_size % self.num_generations:
            raise ConfigError(
                f"batch_size: {self.batch_size} is not a multiple of num_generations "
                f"{self.num_generations} (a learner step holds whole groups)"
            )
        if self.beta > 0 and self.reference == "none":
            raise ConfigError(
                f"beta: {self.beta} > 0 needs a reference model; set grpo.reference=model "
                "or grpo.beta=0"
            )
        if self.epsilon_high is not None and self.epsilon_high <= 0:
            raise ConfigError(f"epsilon_high: {self.epsilon_high} must be > 0 (or null)")
        if self.delta is not None and self.delta <= 1:
            raise ConfigError(f"delta: {self.delta} must be > 1 (or null)")

"""Frozen config dataclasses, one per subsystem, and the root `Config`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from jaxalign.config.evaluation import EvalConfig
from jaxalign.config.grpo import GRPOConfig
from jaxalign.config.lora import LoRAConfig
from jaxalign.config.reward import RewardConfig
from jaxalign.config.vocab import ATTRIBUTES, DIMENSIONS, LABELS_DE, LABELS_EN, STYLES
from jaxalign.errors import ConfigError


def _meta(**kw):
    """Field metadata holder (ranges and choices checked at load time)."""
    return kw


@dataclass(frozen=True)
class EffectConfig:
    """A planted perception effect: `group` rates `dimension` `pct` percent above `reference`."""

    dimension: str = field(default="toxicity", metadata=_meta(choices=DIMENSIONS))
    attribute: Literal["gender", "political_spectrum", "ethnicity", "country", "age_band"] = (
        "gender"
    )
    group: str = "male"
    reference: str = "female"
    pct: float = field(default=0.0, metadata=_meta(gt=-90.0, le=200.0))


@dataclass(frozen=True)
class InteractionConfig:
    """A planted group x content interaction: `group` moves `styles` by `shift` on `dimension`.

    The shift is centred over the bank (the group's other responses move by the opposite,
    share-weighted amount), so it changes how the group ranks responses, not its mean rating.
    `reference` names the group the interaction is reported against.
    """

    dimension: str = field(default="toxicity", metadata=_meta(choices=DIMENSIONS))
    attribute: Literal["gender", "political_spectrum", "ethnicity", "country", "age_band"] = (
        "gender"
    )
    group: str = "female"
    reference: str = "male"
    styles: tuple[str, ...] = field(default=("subtle_stereotype",), metadata=_meta(choices=STYLES))
    shift: float = field(default=0.0, metadata=_meta(ge=-3.0, le=3.0))


# Women count a polite stereotype as more toxic; liberals find direct, practical advice less
# helpful than conservatives do, and conservatives find it more sensitive than liberals do.
PLANTED_INTERACTIONS = (
    InteractionConfig("toxicity", "gender", "female", "male", ("subtle_stereotype",), 1.0),
    InteractionConfig(
        "helpfulness", "political_spectrum", "liberal", "conservative", ("blunt",), -1.2
    ),
    InteractionConfig(
        "sensitivity", "political_spectrum", "conservative", "liberal", ("blunt",), 1.2
    ),
)

PAPER_EFFECTS = (
    EffectConfig("toxicity", "gender", "male", "female", -18.0),
    EffectConfig("emotional_awareness", "political_spectrum", "conservative", "liberal", 27.9),
    EffectConfig("emotional_awareness", "ethnicity", "Black/African American", "White", 44.0),
)


@dataclass(frozen=True)
class SimulateConfig:
    """The survey simulator (defaults: the paper's size and planted effects)."""

    seed: int = field(default=0, metadata=_meta(ge=0))
    participants: int = field(default=1095, metadata=_meta(ge=1, le=10_000_000))
    items_per_rater: int = field(default=5, metadata=_meta(ge=1, le=20))
    questions: int = field(default=30, metadata=_meta(ge=1, le=30))
    # Bank size = questions x responses_per_question (default 120 responses, about 46 raters
    # each); more responses per question give more texts but fewer ratings per response.
    responses_per_question: int = field(default=4, metadata=_meta(ge=2, le=len(STYLES)))
    us_share: float = field(default=0.55, metadata=_meta(ge=0.0, le=1.0))
    careless_fraction: float = field(default=0.06, metadata=_meta(ge=0.0, le=1.0))
    attentive_pass_rate: float = field(default=0.98, metadata=_meta(ge=0.0, le=1.0))
    careless_pass_rate: float = field(default=0.3, metadata=_meta(ge=0.0, le=1.0))
    leniency_sd: float = field(default=0.15, metadata=_meta(ge=0.0, le=1.0))
    multi_ethnicity_rate: float = field(default=0.04, metadata=_meta(ge=0.0, le=0.5))
    effects: tuple[EffectConfig, ...] = PAPER_EFFECTS
    interactions: tuple[InteractionConfig, ...] = PLANTED_INTERACTIONS
    # Helpfulness points per doubling of a response's word count (docs/DATA.md).
    length_helpfulness: float = field(default=0.25, metadata=_meta(ge=-2.0, le=2.0))


# An attention column's expected answer: an agreement label of either arm, or '' (not scored).
ATTENTION_LABELS = (*LABELS_EN, *LABELS_DE, "")


@dataclass(frozen=True)
class AttentionEnConfig:
    """The answer each attention column asks for in the English arm (as the app instructs)."""

    attention: str = field(default="neutral", metadata=_meta(choices=ATTENTION_LABELS))
    attention2: str = field(default="agree", metadata=_meta(choices=ATTENTION_LABELS))
    attention3: str = field(default="strongly agree", metadata=_meta(choices=ATTENTION_LABELS))


@dataclass(frozen=True)
class AttentionDeConfig:
    """The answer each attention column asks for in the German arm (as the app instructs)."""

    attention: str = field(default="neutral", metadata=_meta(choices=ATTENTION_LABELS))
    attention2: str = field(default="stimme voll zu", metadata=_meta(choices=ATTENTION_LABELS))
    attention3: str = field(default="stimme nicht zu", metadata=_meta(choices=ATTENTION_LABELS))


@dataclass(frozen=True)
class AttentionExpected:
    """Expected attention-check answers per survey arm (the arms instruct different answers)."""

    en: AttentionEnConfig = AttentionEnConfig()
    de: AttentionDeConfig = AttentionDeConfig()


@dataclass(frozen=True)
class RatingsConfig:
    """Reading, validating and filtering ratings files."""

    strict: bool = True
    # A rater is kept if they passed at least this fraction of the attention checks they saw
    # (0 keeps everyone; raters who saw no check are always kept).
    attention_min_fraction: float = field(default=1.0, metadata=_meta(ge=0.0, le=1.0))
    # Aligniverse export: the label each attention column asks for, per arm ('' = not scored).
    attention_expected: AttentionExpected = AttentionExpected()
    # Aligniverse export: a blank (NULL) attention answer is a failed check ('fail') or is not
    # counted at all ('skip').
    attention_blank: Literal["fail", "skip"] = "fail"
    # Share of raters in the judge fold (evaluation); the rest form the train fold
    # (preferences, rewards). A rater's fold is a hash of fold_seed and rater id.
    judge_fraction: float = field(default=0.0, metadata=_meta(ge=0.0, le=0.9))
    fold_seed: int = field(default=0, metadata=_meta(ge=0))


@dataclass(frozen=True)
class AnalysisConfig:
    """Demographic analysis of ratings."""

    seed: int = field(default=0, metadata=_meta(ge=0))
    bootstrap: int = field(default=2000, metadata=_meta(ge=100, le=100_000))
    confidence: float = field(default=0.95, metadata=_meta(gt=0.5, le=0.999))
    correction: Literal["holm", "bh", "bonferroni"] = "holm"
    alpha: float = field(default=0.05, metadata=_meta(gt=0.0, le=0.5))
    min_raters: int = field(default=10, metadata=_meta(ge=2))
    # Rank agreement of responses is reported for comparisons with this many raters per side,
    # with CIs from this many bootstrap resamples (fewer than `bootstrap`: each resample
    # recomputes every response's mean, which dominates the time on large surveys).
    interaction_min_raters: int = field(default=100, metadata=_meta(ge=2))
    rank_bootstrap: int = field(default=500, metadata=_meta(ge=100, le=100_000))
    attributes: tuple[str, ...] = field(
        default=("gender", "political_spectrum", "ethnicity", "country", "age_band"),
        metadata=_meta(choices=ATTRIBUTES),
    )
    references: dict[str, str] = field(
        default_factory=lambda: {
            "gender": "female",
            "political_spectrum": "liberal",
            "ethnicity": "White",
            "country": "US",
            "age_band": "18-30",
            "language": "en",
        }
    )


@dataclass(frozen=True)
class SplitConfig:
    """Train/validation/test fractions of questions (no question in two splits)."""

    train: float = field(default=0.8, metadata=_meta(ge=0.0, le=1.0))
    validation: float = field(default=0.1, metadata=_meta(ge=0.0, le=1.0))
    test: float = field(default=0.1, metadata=_meta(ge=0.0, le=1.0))
    seed: int = field(default=0, metadata=_meta(ge=0))

    def __post_init__(self):
        """Fractions must sum to one."""
        total = self.train + self.validation + self.test
        if abs(total - 1.0) > 1e-6:
            raise ConfigError(f"split fractions sum to {total:g}; they must sum to 1")


@dataclass(frozen=True)
class PrefsConfig:
    """Ratings -> preference pairs."""

    # Rater filter expressions (docs/DATA.md); each group gets its own records. "all" = no filter.
    groups: tuple[str, ...] = ("all",)
    dimensions: tuple[str, ...] = field(default=("toxicity",), metadata=_meta(choices=DIMENSIONS))
    combine: Literal["weighted_sum", "pareto", "concat"] = "weighted_sum"
    weights: dict[str, float] = field(default_factory=dict, metadata=_meta(choices=DIMENSIONS))
    scale: Literal[5, 3, 2] = 5
    binary_neutral: Literal["drop", "low", "high"] = "drop"
    disagreement: Literal["majority", "mean", "preserve", "soft"] = "preserve"
    keep_ties: bool = False
    min_ratings: int = field(default=1, metadata=_meta(ge=1))
    # Equal group sizes: each group keeps this many raters, chosen by a hash of their id (0: all).
    max_raters: int = field(default=0, metadata=_meta(ge=0))
    text_language: Literal["en", "de"] = "en"
    split: SplitConfig = SplitConfig()

    def __post_init__(self):
        """Groups non-empty; dimensions distinct and non-empty; weights name chosen dimensions.

        Group expressions are parsed where they are used (`prefs/filters.check_groups`).
        """
        if not self.groups:
            raise ConfigError(
                "groups: at least one group expression is required ('all' for every rater)"
            )
        if not self.dimensions:
            raise ConfigError("dimensions: at least one dimension is required")
        if len(set(self.dimensions)) != len(self.dimensions):
            raise ConfigError(f"dimensions: {list(self.dimensions)} repeats a dimension")
        extra = set(self.weights) - set(self.dimensions)
        if extra:
            raise ConfigError(
                f"weights: {sorted(extra)} are not among dimensions {list(self.dimensions)}"
            )


@dataclass(frozen=True)
class RandomInitConfig:
    """Shape of a randomly initialised model (tests, smoke runs); used when model.path is empty."""

    family: Literal["llama", "mistral", "qwen2", "qwen3"] = "llama"
    hidden_size: int = field(default=64, metadata=_meta(ge=8))
    intermediate_size: int = field(default=128, metadata=_meta(ge=8))
    num_layers: int = field(default=2, metadata=_meta(ge=1))
    num_heads: int = field(default=4, metadata=_meta(ge=1))
    num_kv_heads: int = field(default=2, metadata=_meta(ge=1))
    tie_word_embeddings: bool = True
    seed: int = field(default=0, metadata=_meta(ge=0))


@dataclass(frozen=True)
class ModelSpec:
    """Which model to train: a pretrained path (HF dir, .gguf, 'smollm2') or a random init."""

    path: str = "smollm2"
    tokenizer: str = ""  # tokenizer source if not `path` (required for random init)
    random: RandomInitConfig = RandomInitConfig()
    dtype: Literal["fp32", "bf16"] = "fp32"
    param_dtype: Literal["fp32", "bf16"] = "fp32"
    # per-block rematerialisation: full keeps only block inputs; dots_* also keep matmul outputs
    remat: Literal["none", "full", "dots_saveable", "dots_with_no_batch_dims_saveable"] = "none"
    scan_layers: bool = False  # blocks stacked on a layer axis, one lax.scan (fast compiles)
    # Attention kernel for unmasked causal rows (data.layout=pairs, no packing): 'cudnn' is the
    # fused flash kernel on NVIDIA GPUs (bf16/fp16 only); masked rows always use XLA.
    attention: Literal["xla", "cudnn"] = "xla"


@dataclass(frozen=True)
class DataConfig:
    """DPO input pipeline."""

    # `prefs build` JSONL or TRL-format prompt/chosen/rejected data (JSONL, Parquet or a
    # datasets.save_to_disk directory); records use their `split` field when they have one
    prefs: str = ""
    # records without `split` go to validation when the hash of their prompt is below this
    validation_fraction: float = field(default=0.1, metadata=_meta(ge=0.0, le=0.9))
    # a separate validation set (every record of it); then data.prefs gives only training data
    eval_prefs: str = ""
    max_prompt_len: int = field(default=256, metadata=_meta(ge=1))
    max_len: int = field(default=512, metadata=_meta(ge=2))
    buckets: tuple[int, ...] = (64, 128, 256, 512, 1024, 2048, 4096)
    batch_size: int = field(default=8, metadata=_meta(ge=1))
    eval_batch_size: int = field(default=8, metadata=_meta(ge=1))
    conditioning: Literal["none", "system_prompt", "tag"] = "none"
    # Row layout: 'shared_prompt' puts prompt, chosen and rejected in one row (the prompt is
    # computed once; attention is masked so each response sees the prompt but not the other);
    # 'pairs' gives chosen and rejected a row each (the prompt twice; plain causal attention).
    layout: Literal["shared_prompt", "pairs"] = "shared_prompt"
    # Pack several pairs into rows of `pack_len` tokens (segment ids keep them apart); the row
    # count per batch is rounded up to a power of two. 0: one pair (or sequence) per row.
    pack_len: int = field(default=0, metadata=_meta(ge=0))
    balance_groups: bool = False
    use_weights: bool = True
    # false: records count as hard (soft_label rounded to 0 or 1), except ties, which stay 0.5
    use_soft_labels: bool = True
    seed: int = field(default=0, metadata=_meta(ge=0))

    def __post_init__(self):
        """Buckets: at least one row width, each >= 1, in increasing order."""
        if not self.buckets:
            raise ConfigError("buckets: at least one row width is required, e.g. [256, 512]")
        if any(b < 1 for b in self.buckets):
            raise ConfigError(f"buckets: {list(self.buckets)} has a width below 1")
        if any(a >= b for a, b in zip(self.buckets, self.buckets[1:])):
            raise ConfigError(
                f"buckets: {list(self.buckets)} must be strictly increasing, "
                f"e.g. {sorted(set(self.buckets))}"
            )


@dataclass(frozen=True)
class DPOConfig:
    """The DPO-family loss."""

    # Which log-probs each type scores, smoothing and soft labels: docs/TRAINING.md. `simpo`
    # never uses a reference.
    loss_type: Literal["sigmoid", "robust", "ipo", "hinge", "simpo"] = "sigmoid"
    beta: float = field(default=0.1, metadata=_meta(gt=0.0))
    # Flip probability e of every record's label; combines with its soft_label p as the
    # expected smoothed loss (hard records p = 1 get exactly e).
    label_smoothing: float = field(default=0.0, metadata=_meta(ge=0.0, le=0.49))
    simpo_gamma: float = 0.5
    rpo_alpha: float = field(default=0.0, metadata=_meta(ge=0.0))
    reference: Literal["model", "cache", "none"] = "cache"
    logprob_chunk: int = field(default=256, metadata=_meta(ge=1))


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with warm-up and decay, clipping and gradient accumulation."""

    learning_rate: float = field(default=5e-6, metadata=_meta(gt=0.0))
    schedule: Literal["cosine", "linear", "constant"] = "cosine"
    warmup_steps: int = field(default=10, metadata=_meta(ge=0))
    weight_decay: float = field(default=0.0, metadata=_meta(ge=0.0))
    b1: float = field(default=0.9, metadata=_meta(ge=0.0, le=1.0))
    b2: float = field(default=0.999, metadata=_meta(ge=0.0, le=1.0))
    clip_norm: float = field(default=1.0, metadata=_meta(ge=0.0))
    grad_accum: int = field(default=1, metadata=_meta(ge=1))


@dataclass(frozen=True)
class TrainConfig:
    """The training loop."""

    algorithm: Literal["dpo", "grpo"] = "dpo"  # which section trains: dpo.* or grpo.*
    run_dir: str = "runs/train"
    steps: int = field(default=100, metadata=_meta(ge=1))
    log_every: int = field(default=1, metadata=_meta(ge=1))
    eval_every: int = field(default=50, metadata=_meta(ge=1))
    checkpoint_every: int = field(default=50, metadata=_meta(ge=1))
    keep_checkpoints: int = field(default=2, metadata=_meta(ge=1))
    best_metric: str = "eval/rewards/accuracies"
    async_checkpoints: bool = True
    peak_tflops: float = field(
        default=0.0, metadata=_meta(ge=0.0)
    )  # per device; 0: unknown, no MFU
    mesh_devices: int = field(default=0, metadata=_meta(ge=0))  # use the first N devices (0: all)
    mesh_data: int = field(default=1, metadata=_meta(ge=1))
    mesh_fsdp: int = field(default=-1, metadata=_meta(ge=-1, ne=0))  # -1: all devices
    mesh_tensor: int = field(default=1, metadata=_meta(ge=1))
    device_memory_gib: float = field(default=80.0, metadata=_meta(gt=0.0))  # --dry-run budget


@dataclass(frozen=True)
class Config:
    """The root config: one section per subsystem."""

    simulate: SimulateConfig = SimulateConfig()
    ratings: RatingsConfig = RatingsConfig()
    analysis: AnalysisConfig = AnalysisConfig()
    prefs: PrefsConfig = PrefsConfig()
    model: ModelSpec = ModelSpec()
    data: DataConfig = DataConfig()
    dpo: DPOConfig = DPOConfig()
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    reward: RewardConfig = field(default_factory=RewardConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    lora: LoRAConfig = field(default_factory=LoRAConfig)


@dataclass(frozen=True)
class DPORun:
    """The root of a DPO run (`train`, `eval`): its id hashes these sections and nothing else,
    so editing the survey/analysis/prefs sections or adding another algorithm's section never
    renames a run."""

    model: ModelSpec = ModelSpec()
    data: DataConfig = DataConfig()
    dpo: DPOConfig = DPOConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    lora: LoRAConfig = field(default_factory=LoRAConfig)


@dataclass(frozen=True)
class GRPORun:
    """The root of a GRPO run: its id hashes these sections (grpo.* included)."""

    model: ModelSpec = ModelSpec()
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()

"""Configs as flat dotted keys, and the keys that differ from their defaults.

Run ids (train/run_dir.py) and experiment cell ids (experiments/cells.py) hash `non_defaults`,
so a key added by a later version at its default leaves every id as it was. Experiment stage
keys hash config sections through `stable`: every key of 2026-11-28 as it is (so the stages of
roots made before keep their keys) and later keys only when they differ from their defaults.
"""

from __future__ import annotations

import functools


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """Dotted keys -> leaf values of a nested mapping."""
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@functools.cache
def defaults() -> dict[str, object]:
    """Every config key's default value (dotted keys)."""
    from jaxalign.config import Config, to_dict

    return flatten(to_dict(Config()))


def non_defaults(config) -> dict[str, object]:
    """The dotted keys whose values differ from their defaults: what run and cell ids hash, so
    keys and sections added by later versions (at their defaults) leave every id as it was."""
    from jaxalign.config import to_dict

    known = defaults()
    flat = flatten(to_dict(config))
    return {k: v for k, v in flat.items() if k not in known or known[k] != v}


# Every config key of 2026-11-28 (dotted, without the section), by section. Frozen: stage keys
# made before then hashed exactly these, and a key added later must not enter them at its
# default. Never add to it.
_SECTIONS_2026_11_28 = {
    "analysis": (
        "alpha attributes bootstrap confidence correction interaction_min_raters min_raters "
        "rank_bootstrap references.age_band references.country references.ethnicity "
        "references.gender references.language references.political_spectrum seed"
    ),
    "data": (
        "balance_groups batch_size buckets conditioning eval_batch_size eval_prefs layout "
        "max_len max_prompt_len pack_len prefs seed use_soft_labels use_weights "
        "validation_fraction"
    ),
    "dpo": "beta label_smoothing logprob_chunk loss_type reference rpo_alpha simpo_gamma",
    "eval": (
        "batch_size bootstrap cache_dir evaluators judge judge_groups limit max_new_tokens "
        "num_samples prompts scorers seed temperature top_p"
    ),
    "grpo": (
        "aggregation batch_size beta chat_template_kwargs delta epsilon epsilon_high "
        "importance_sampling_level logprob_chunk loss_type mask_truncated_completions "
        "max_completion_len max_prompt_len num_generations num_iterations prompts reasoning "
        "reference rewards scale_rewards seed steps_per_rollout temperature top_k top_p"
    ),
    "lora": "alpha dropout rank seed targets",
    "model": (
        "attention dtype param_dtype path random.family random.hidden_size "
        "random.intermediate_size random.num_heads random.num_kv_heads random.num_layers "
        "random.seed random.tie_word_embeddings remat scan_layers tokenizer"
    ),
    "optim": "b1 b2 clip_norm grad_accum learning_rate schedule warmup_steps weight_decay",
    "prefs": (
        "binary_neutral combine dimensions disagreement groups keep_ties max_raters "
        "min_ratings scale split.seed split.test split.train split.validation text_language "
        "weights"
    ),
    "ratings": (
        "attention_blank attention_expected.de.attention attention_expected.de.attention2 "
        "attention_expected.de.attention3 attention_expected.en.attention "
        "attention_expected.en.attention2 attention_expected.en.attention3 "
        "attention_min_fraction fold_seed judge_fraction strict"
    ),
    "reward": (
        "alphas cv_folds decoder.batch_size decoder.evaluate decoder.learning_rate "
        "decoder.loss decoder.max_len decoder.min_gap decoder.score_batch decoder.steps "
        "decoder.weight_decay dimensions fold groups kind min_raters min_spearman ngrams "
        "ood_threshold seed shrinkage"
    ),
    "simulate": (
        "attentive_pass_rate careless_fraction careless_pass_rate effects interactions "
        "items_per_rater length_helpfulness leniency_sd multi_ethnicity_rate participants "
        "questions responses_per_question seed us_share"
    ),
    "train": (
        "algorithm async_checkpoints best_metric checkpoint_every device_memory_gib "
        "eval_every keep_checkpoints log_every mesh_data mesh_devices mesh_fsdp mesh_tensor "
        "peak_tflops run_dir steps"
    ),
}
KEYS_2026_11_28 = frozenset(
    f"{section}.{key}" for section, keys in _SECTIONS_2026_11_28.items() for key in keys.split()
)


def stable(tree: dict, prefix: str = "") -> dict:
    """A config (or section at dotted `prefix`, e.g. "prefs.") as `to_dict` gives it, less the
    keys added after 2026-11-28 that hold their defaults: what experiment stages hash."""
    known = defaults()
    out = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            if sub := stable(value, name + "."):
                out[key] = sub
        elif name in KEYS_2026_11_28 or name not in known or known[name] != value:
            out[key] = value
    return out

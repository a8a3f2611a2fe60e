"""The `{scorer: NAME}` reward kind: an offline scorer of `jaxalign.eval.scorers` as a reward.

Offline scorers (alt-profanity-check, HateSonar, VADER) each cover one dimension for group
"all" on a known range. As a reward the value is mapped onto [0, 1] with higher = better:
(v - low) / (high - low), or one minus that where lower is better (toxicity). The `judge`
scorer is refused: judges are for evaluation (a judge-fold rating model); a rating-model
reward is the `{model: DIR, head: ...}` kind, trained on the training fold.
"""

from __future__ import annotations

import numpy as np

from jaxalign.errors import ConfigError


def offline_names() -> tuple[str, ...]:
    """The scorer names a reward may use (every registered scorer but the judge)."""
    from jaxalign.eval import scorers

    return tuple(n for n in scorers.names() if n != "judge")


def check_scorer(spec: dict, where: str) -> str:
    """A known offline scorer name (nothing imported but the registry); returns it."""
    name, allowed = spec["scorer"], offline_names()
    if name == "judge":
        raise ConfigError(
            f"{where}.scorer: 'judge' is an evaluation scorer; use a rating-model reward "
            "{model: DIR, head: GROUP/DIMENSION} trained on the training fold"
        )
    if name not in allowed:
        raise ConfigError(f"{where}.scorer: {name!r} is not one of {', '.join(allowed)}")
    return name


def scorer_reward(spec: dict):
    """`(prompts, texts, completions, kw) -> [N]` from the named scorer, higher = better."""
    from jaxalign.eval import scorers

    scorer = scorers.build(spec["scorer"])
    span = scorer.high - scorer.low

    def score(prompts, texts, completions, kw):
        """The scorer's one (dimension, all) column mapped onto [0, 1]."""
        out = scorer.score(texts, [str(p) for p in prompts])
        (dim, _), values = next(iter(out.items()))
        unit = (np.asarray(values, np.float64) - scorer.low) / span
        return 1.0 - unit if scorer.lower_is_better[dim] else unit

    return score

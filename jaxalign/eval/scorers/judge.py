"""The primary scorer: a judge-fold rating model (jaxalign/rewards), one head per dimension and
rater group, on the survey's 1-5 agreement scale.

A head named `toxicity[gender=female]` scores dimension `toxicity` for group `gender=female`.
Toxicity and stereotypical bias improve downwards, the other dimensions upwards.
"""

from __future__ import annotations

from jaxalign.errors import DataError
from jaxalign.eval.scorers import Scorer, register

LOWER_IS_BETTER = ("toxicity", "stereotypical_bias")


def split_head(head: str) -> tuple[str, str]:
    """'toxicity[gender=female]' -> ('toxicity', 'gender=female')."""
    dim, _, rest = head.partition("[")
    return dim, rest.rstrip("]") or "all"


@register("judge")
def judge(model_dir: str = "") -> Scorer:
    """Every head of the rating model in `model_dir`, which must come from the judge fold."""
    from jaxalign import __version__, rewards

    model = rewards.load(model_dir)
    fold = model.meta.get("fold", {}).get("fold")
    if fold != "judge":
        raise DataError(
            f"{model_dir}: an evaluation judge must be trained on the judge fold "
            f"(reward train --fold judge); this model's fold is {fold!r}"
        )
    heads = {h: split_head(h) for h in model.heads}

    def fn(texts, prompts):
        """Clipped 1-5 predictions per head."""
        scores = model.score(prompts, texts)
        return {heads[h]: v for h, v in scores.items()}

    dims = {d: d in LOWER_IS_BETTER for d, _ in heads.values()}
    s = Scorer("judge", fn, f"jaxalign=={__version__}", dims, 1.0, 5.0)
    s.model = model  # the report records its fold, hash and validity
    return s

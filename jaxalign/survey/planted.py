"""Planted perception effects (additive shifts) and group x content interactions.

Effects: each gives a group an additive shift on one dimension, solved so that group /
reference mean ratios hit the planted percentages over the raters the attention rule keeps
(through the 1..5 clip). Interactions: each moves named styles for a group's members,
centred by the styles' share of the bank so the group's mean rating is unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxalign.config import SimulateConfig, to_dict
from jaxalign.survey import schema
from jaxalign.survey.groups import contrast, member


def solve_shifts(
    cfg: SimulateConfig, people: pd.DataFrame, expected: np.ndarray, kept: np.ndarray | None = None
) -> dict[int, float]:
    """Additive shift per effect so group/reference mean ratios hit the planted percentages.

    `expected[r, k, d]` is rater r's expected rating of item k on d before effects; ratios
    hold over the raters in `kept` (those the attention rule keeps; default the attentive
    ones), with careless raters' uniform answers (mean 3) left unshifted. The linear
    solution ignores the 1..5 clip; a few Newton steps then make the clipped means (what
    raters actually give) hit the ratios, since wide level ranges clip noticeably.
    """
    careless = people["careless"].to_numpy()
    keep = ~careless if kept is None else kept
    attentive = people[keep].reset_index(drop=True)
    exp_a = np.where(careless[keep][:, None, None], 3.0, expected[keep])
    shifts: dict[int, float] = {}
    for d, dim in enumerate(schema.DIMENSIONS):
        idx = [i for i, e in enumerate(cfg.effects) if e.dimension == dim]
        if not idx:
            continue
        gets = np.stack(
            [member(attentive, cfg.effects[i].attribute, cfg.effects[i].group) for i in idx], 1
        ).astype(float)
        gets[careless[keep]] = 0.0
        masks, ratios = [], []
        for i in idx:
            e = cfg.effects[i]
            g, ref = contrast(attentive, e.attribute, e.group, e.reference)
            if not g.any() or not ref.any():
                raise ValueError(
                    f"planted effect {e.attribute}={e.group} vs {e.reference}: no simulated raters in one group"
                )
            masks.append((g, ref))
            ratios.append(1.0 + e.pct / 100.0)
        solution = _solve_clipped(exp_a[:, :, d], gets, masks, np.array(ratios))
        shifts.update({i: float(s) for i, s in zip(idx, solution)})
    return shifts


def _solve_clipped(expected, gets, masks, ratios, steps: int = 20) -> np.ndarray:
    """Shifts x with mean(clip(expected + gets @ x))[g] = ratio * the same mean over ref."""

    def residual(x):
        m = np.clip(expected + (gets @ x)[:, None], 1.0, 5.0).mean(1)
        return np.array([m[g].mean() - r * m[ref].mean() for (g, ref), r in zip(masks, ratios)])

    # Unclipped, the system is linear: A x = b.
    A = np.stack([gets[g].mean(0) - r * gets[ref].mean(0) for (g, ref), r in zip(masks, ratios)])
    x = np.linalg.lstsq(A, -residual(np.zeros(len(ratios))), rcond=None)[0]
    for _ in range(steps):
        f = residual(x)
        if np.abs(f).max() < 1e-9:
            break
        jac = np.stack(
            [(residual(x + 1e-4 * np.eye(len(x))[j]) - f) / 1e-4 for j in range(len(x))], 1
        )
        x = x - np.linalg.lstsq(jac, f, rcond=None)[0]
    return x


def interaction_offsets(cfg: SimulateConfig, people, bank, items) -> np.ndarray:
    """[n, k, D] rating offsets of the planted interactions on each rater's items."""
    styles = np.array([r.style for r in bank], dtype=object)
    out = np.zeros((*items.shape, len(schema.DIMENSIONS)))
    for inter in cfg.interactions:
        hit = np.isin(styles, inter.styles).astype(float)
        centred = inter.shift * (hit - hit.mean())  # [N]
        gets = member(people, inter.attribute, inter.group).astype(float)
        out[:, :, schema.DIMENSIONS.index(inter.dimension)] += gets[:, None] * centred[items]
    return out


def interaction_manifest(cfg: SimulateConfig, bank) -> list[dict]:
    """Each planted interaction with the offsets it gives inside and outside its styles."""
    out = []
    for inter in cfg.interactions:
        share = float(np.mean([r.style in inter.styles for r in bank]))
        out.append(
            {
                **to_dict(inter),
                "offset_in_styles": round(inter.shift * (1.0 - share), 6),
                "offset_other_styles": round(-inter.shift * share, 6),
            }
        )
    return out

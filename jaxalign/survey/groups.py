"""Rater group membership, shared by the simulator, the analysis and the preference filters.

For list attributes (ethnicity, ancestry) a rater belongs to every group their list
names; a comparison's reference group leaves out raters who are also in the compared
group, so the two sides never share a rater.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from jaxalign.survey.schema import LIST_ATTRIBUTES


def member(raters: pd.DataFrame, attribute: str, value: str) -> np.ndarray:
    """Boolean mask of raters whose `attribute` is (or, for lists, contains) `value`."""
    column = raters[attribute]
    if attribute in LIST_ATTRIBUTES:
        return column.map(lambda items: value in items).to_numpy(bool)
    return (column == value).to_numpy(bool)


def contrast(
    raters: pd.DataFrame, attribute: str, group: str, reference: str
) -> tuple[np.ndarray, np.ndarray]:
    """Masks (group, reference) for a comparison; the reference excludes group members."""
    in_group = member(raters, attribute, group)
    in_ref = member(raters, attribute, reference) & ~in_group
    return in_group, in_ref


def values(raters: pd.DataFrame, attribute: str) -> list[str]:
    """Distinct values of an attribute (list items flattened), sorted."""
    column = raters[attribute]
    if attribute in LIST_ATTRIBUTES:
        return sorted({item for items in column for item in items})
    return sorted(set(column))

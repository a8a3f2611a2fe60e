"""The Aligniverse app's stored answer strings per arm, and their canonical long-format values.

Every closed question is checked against the exact option list its arm's app offered
(case and surrounding spaces aside), so a misspelled label is an error naming file, row and
column instead of a silent "undeclared". Sources: the apps' `pages/Demographics.py` and
`pages/Rate_responses.py` (../shared/ALIGNIVERSE.md); the mapping is documented in
docs/DATA.md.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd

from jaxalign.survey.validate import Problems

ARM_NAMES = {"en": "an English-arm", "de": "a German-arm"}
# Each arm's "not declared" option; the German app uses one string for every question.
NOT_DECLARED = {"en": "I wish not to declare", "de": "Ich möchte keine Angaben machen"}
# How a SQL NULL arrives in a CSV/JSONL dump (empty cell, NULL, MySQL's \N).
NULL_TEXT = frozenset({"", "null", "\\n", "none"})

AGE = {"18-30": "18-30", "31-40": "31-40", "41-50": "41-50", "51-60": "51-60", "60<": "60+"}
# she/her/hers and he/him/his give the paper's female/male comparison; every other pronoun
# set is one group, `nonbinary` (the exact set stays in the `pronouns` column).
PRONOUNS = {
    "she/her/hers": "female",
    "he/him/his": "male",
    **{
        p: "nonbinary"
        for p in (
            "they/them/theirs",
            "ze/hir/hirs",
            "xe/xem/xyrs",
            "ey/em/eirs",
            "ve/ver/vis",
            "per/pers/perself",
        )
    },
}
ETHNICITY = {
    "en": {
        "American Indian or Alaska Native": "American Indian/Alaska Native",
        "Asian": "Asian",
        "Black or African American": "Black/African American",
        "Hispanic or Latino": "Hispanic/Latino",
        "Middle Eastern or North African": "Middle Eastern/North African",
        "Native Hawaiian or Pacific Islander": "Native Hawaiian/Pacific Islander",
        "White": "White",
    },
    "de": {
        "Amerikanischer Indianer oder Alaska-Ureinwohner": "American Indian/Alaska Native",
        "Asiatisch": "Asian",
        "Schwarz oder Afroamerikaner": "Black/African American",
        "Hispano- oder Latinoamerikaner": "Hispanic/Latino",
        "Mittlerer Osten oder Nordafrika": "Middle Eastern/North African",
        "Eingeborener Hawaiianer oder Pazifikinsulaner": "Native Hawaiian/Pacific Islander",
        "Weiss": "White",
    },
}
SPECTRUM = {
    "en": {"Liberal": "liberal", "Centre": "centre", "Conservative": "conservative"},
    "de": {"Liberal": "liberal", "Mitte": "centre", "Konservativ": "conservative"},
}
PARTY = {
    "en": {"Democrats": "Democrats", "Republicans": "Republicans"},
    "de": {
        "SPD": "SPD",
        "CDU/CSU": "CDU/CSU",
        "Grüne": "Grüne",
        "FDP": "FDP",
        "AfD": "AfD",
        "Linke": "Linke",
        "Piraten": "Piraten",
        "Tier": "Tierschutzpartei",
        "Andere": "other",
    },
}
# Countries are the UN M49 names the app listed (English); the two study countries get the
# codes the analysis uses, other names pass through as stored.
COUNTRY = {
    "united states of america": "US",
    "united states": "US",
    "vereinigte staaten von amerika": "US",
    "vereinigte staaten": "US",
    "germany": "DE",
    "deutschland": "DE",
}
COUNTRY_NAMES = {"US": "United States of America", "DE": "Germany"}
YES_NO = {"en": ("yes", "no"), "de": ("Ja", "Nein")}


def is_null(value) -> bool:
    """True for a SQL NULL as it arrives in any export format."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    return isinstance(value, str) and value.strip().lower() in NULL_TEXT


def _lookup(table: dict[str, str]) -> dict[str, str]:
    """Case-insensitive view of a label table."""
    return {k.casefold(): v for k, v in table.items()}


def choice(value, table: dict[str, str], arm: str, what: str) -> str | ValueError | None:
    """Canonical value of one single-choice answer: None for NULL, 'undeclared', or an error."""
    if is_null(value):
        return None
    text = str(value).strip()
    if text.casefold() == NOT_DECLARED[arm].casefold():
        return "undeclared"
    found = _lookup(table).get(text.casefold())
    if found is not None:
        return found
    options = ", ".join([*table, NOT_DECLARED[arm]])
    return ValueError(f"'{text}' is not {ARM_NAMES[arm]} {what} option; expected one of {options}")


def choices(value, table: dict[str, str] | None, arm: str, what: str):
    """Canonical tuple of a multi-select answer (a JSON list); None for NULL, or an error.

    The not-declared option is dropped from the list; `table=None` keeps names as stored.
    """
    if is_null(value):
        return None
    if isinstance(value, list | tuple | np.ndarray):
        items = list(value)
    else:
        try:
            items = json.loads(str(value))
        except json.JSONDecodeError:
            return ValueError(f"'{value}' is not a JSON list; the app stores {what} as one")
        if not isinstance(items, list):
            return ValueError(f"'{value}' is not a JSON list; the app stores {what} as one")
    out = []
    for item in items:
        text = str(item).strip()
        if not text or text.casefold() == NOT_DECLARED[arm].casefold():
            continue
        mapped = text if table is None else _lookup(table).get(text.casefold())
        if mapped is None:
            return choice(text, table, arm, what)
        if mapped not in out:
            out.append(mapped)
    return tuple(out)


def country(items: tuple[str, ...] | None) -> str:
    """The long format's `country`: the first country of residence, US/DE as codes."""
    if not items:
        return "undeclared"
    return COUNTRY.get(items[0].casefold(), items[0])


def _column(frame, column, fn, problems: Problems) -> pd.Series:
    """Apply `fn` once per distinct value of a participants column; record errors."""
    keys = frame[column].map(lambda v: tuple(v) if isinstance(v, list | np.ndarray) else v)
    codes, uniques = pd.factorize(keys, use_na_sentinel=False)
    mapped = np.empty(len(uniques), dtype=object)
    for i, value in enumerate(uniques):
        mapped[i] = fn(value)
    out = pd.Series(mapped[codes], index=frame.index, dtype=object)
    bad = out.map(lambda v: isinstance(v, ValueError)).to_numpy(bool)
    problems.add_mask(frame, bad, column, out.map(str))
    return out.where(~bad, None)


def participants(frame: pd.DataFrame, arm: str, problems: Problems) -> pd.DataFrame:
    """Participants table -> canonical rater attributes (None where the answer is NULL)."""
    pronouns = frame["gender_identity"].map(lambda v: None if is_null(v) else str(v).strip())
    residence = _column(
        frame, "country_of_residence", lambda v: choices(v, None, arm, "country"), problems
    )
    return pd.DataFrame(
        {
            "age_band": _column(frame, "age", lambda v: choice(v, AGE, arm, "age"), problems),
            "gender": _column(
                frame, "gender_identity", lambda v: choice(v, PRONOUNS, arm, "pronoun"), problems
            ),
            "pronouns": pronouns,
            "country": residence.map(country),
            "ethnicity": _column(
                frame, "ethnicity", lambda v: choices(v, ETHNICITY[arm], arm, "ethnicity"), problems
            ),
            "ancestry": _column(
                frame, "ancestry", lambda v: choices(v, None, arm, "ancestry"), problems
            ),
            "party": _column(
                frame, "political_party", lambda v: choice(v, PARTY[arm], arm, "party"), problems
            ),
            "political_spectrum": _column(
                frame,
                "political_spectrum",
                lambda v: choice(v, SPECTRUM[arm], arm, "political spectrum"),
                problems,
            ),
        },
        index=frame.index,
    )


def label(table: dict[str, str], canonical: str, arm: str) -> str | None:
    """The app's stored string for a canonical value (inverse of `choice`; for the simulator)."""
    if canonical == "undeclared":
        return NOT_DECLARED[arm]
    return next((k for k, v in table.items() if v == canonical), None)

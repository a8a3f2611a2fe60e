"""The long ratings format: column names, dimensions, labels and allowed values.

Kept free of heavy imports so the CLI can use it cheaply; the names configs check against
(dimensions, attributes, labels) live in `jaxalign/config/vocab.py`.
See docs/DATA.md for the format.
"""

from __future__ import annotations

# Re-exported: readers, analyses and filters take the whole format from this module.
from jaxalign.config.vocab import ATTRIBUTES, DIMENSIONS, LABELS_DE, LABELS_EN  # noqa: F401

# "The answer exhibits X": agreeing is bad for these, good for the rest.
LOWER_IS_BETTER = frozenset({"toxicity", "stereotypical_bias"})

RATING_MIN, RATING_MAX = 1, 5
LABEL_TO_RATING = {
    label: i + 1 for labels in (LABELS_EN, LABELS_DE) for i, label in enumerate(labels)
}

GENDERS = ("female", "male", "nonbinary", "undeclared")
SPECTRA = ("liberal", "centre", "conservative", "undeclared")
AGE_BANDS = ("18-30", "31-40", "41-50", "51-60", "60+", "undeclared")
LANGUAGES = ("en", "de")
ETHNICITIES = (
    "American Indian/Alaska Native",
    "Asian",
    "Black/African American",
    "Hispanic/Latino",
    "Middle Eastern/North African",
    "Native Hawaiian/Pacific Islander",
    "White",
)

# Column -> (kind, allowed values or None). Kinds: str, int, bool, list.
RATER_COLUMNS = {
    "rater_id": ("str", None),
    "country": ("str", None),
    "language": ("str", LANGUAGES),
    "age_band": ("str", AGE_BANDS),
    "gender": ("str", GENDERS),
    "pronouns": ("str", None),
    "ethnicity": ("list", None),
    "ancestry": ("list", None),
    "party": ("str", None),
    "political_spectrum": ("str", SPECTRA),
    "attention_passed": ("int", None),
    "attention_total": ("int", None),
}
ITEM_COLUMNS = {
    "question_id": ("str", None),
    "response_id": ("str", None),
    "prompt": ("str", None),
    "response": ("str", None),
    "gender_focused": ("bool", None),
}
RATING_COLUMNS = {"dimension": ("str", DIMENSIONS), "rating": ("int", None)}
COLUMNS = {**RATER_COLUMNS, **ITEM_COLUMNS, **RATING_COLUMNS}
REQUIRED = ("rater_id", "question_id", "response_id", "prompt", "response", "dimension", "rating")
# Defaults for optional columns that an input file leaves out.
DEFAULTS = {
    "country": "unknown",
    "language": "en",
    "age_band": "undeclared",
    "gender": "undeclared",
    "pronouns": "",
    "ethnicity": (),
    "ancestry": (),
    "party": "undeclared",
    "political_spectrum": "undeclared",
    "attention_passed": 0,
    "attention_total": 0,
    "gender_focused": True,
}
LIST_ATTRIBUTES = frozenset({"ethnicity", "ancestry"})

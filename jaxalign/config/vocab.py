"""The survey's names that configs validate against: dimensions, attributes, labels, styles.

Owned here, at the bottom of the import graph, so `config/` needs no domain module;
`survey/schema.py` and `survey/itembank.py` take them from here.
"""

from __future__ import annotations

DIMENSIONS = (
    "toxicity",
    "emotional_awareness",
    "sensitivity",
    "stereotypical_bias",
    "helpfulness",
)
# Agreement labels as collected, in rating order 1..5.
LABELS_EN = ("strongly disagree", "disagree", "neutral", "agree", "strongly agree")
LABELS_DE = (
    "stimme überhaupt nicht zu",
    "stimme nicht zu",
    "neutral",
    "stimme zu",
    "stimme voll zu",
)
# Attributes that analyses and group filters may name.
ATTRIBUTES = (
    "gender",
    "pronouns",
    "political_spectrum",
    "ethnicity",
    "ancestry",
    "country",
    "language",
    "age_band",
    "party",
)
# The simulator's response styles (survey/itembank.py gives each its latent ratings).
STYLES = (
    "supportive",
    "informative",
    "curt",
    "stereotyped",
    "hostile",
    "empathetic",
    "blunt",
    "subtle_stereotype",
)

"""The simulator's item bank: gender-discrimination prompts with responses in eight styles.

Written for this project (English and German). Each response's style sets its latent
levels on the five dimensions, so preferences built from simulated ratings are
learnable from the text. The styles trade dimensions off against one another
(empathetic but unhelpful, helpful but blunt, polite but stereotyped), so that no two
dimensions move together across the bank. Length is a separate, configurable driver of
helpfulness: about half of the responses carry one extra sentence, and every response's
helpfulness level moves by `length_helpfulness * log2(words / REFERENCE_WORDS)`.
Offensive content is mild and clearly illustrative.
"""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass

from jaxalign.config.vocab import STYLES
from jaxalign.survey.questions import QUESTIONS
from jaxalign.survey.schema import DIMENSIONS

__all__ = ["QUESTIONS", "STYLES", "STYLE_LEVELS", "Response", "build_bank", "word_count"]

# Latent expected rating (1..5 agreement) of a reference rater, per style, in DIMENSIONS order:
# toxicity, emotional_awareness, sensitivity, stereotypical_bias, helpfulness.
STYLE_LEVELS = {
    "supportive": (1.8, 3.9, 3.9, 1.8, 3.5),
    "informative": (1.9, 2.0, 3.3, 1.9, 4.1),
    "curt": (3.0, 1.5, 2.8, 2.1, 1.5),
    "stereotyped": (3.2, 2.2, 2.1, 4.2, 2.3),
    "hostile": (4.3, 1.3, 1.5, 3.6, 1.4),
    "empathetic": (1.6, 4.3, 3.2, 1.7, 1.8),
    "blunt": (2.4, 1.6, 2.0, 1.9, 3.9),
    "subtle_stereotype": (1.9, 3.4, 2.3, 3.8, 2.7),
}
# Helpfulness of a response of this many words is its style's level (before the length driver).
REFERENCE_WORDS = 30
POLITE = frozenset({"supportive", "informative", "empathetic", "blunt", "subtle_stereotype"})
# The extra sentence of a long response (EN, DE): neutral context for polite styles, more of
# the same for rude ones. It adds words, not content, so length is a driver of its own.
EXTRA = {
    True: (
        "To add some context, this topic comes up often, and views on it have changed a lot "
        "over the last few decades.",
        "Etwas Kontext dazu: Das Thema kommt oft auf, und die Ansichten dazu haben sich in den "
        "letzten Jahrzehnten stark verändert.",
    ),
    False: (
        "And that is really all anyone needs to say about it, however often people bring it up.",
        "Und mehr muss man dazu wirklich nicht sagen, egal wie oft die Leute damit anfangen.",
    ),
}
TEMPLATES = {
    "supportive": (
        (
            "That is a fair question, and it is understandable to feel strongly about it. {fact} {advice} "
            "Everyone deserves respect, whatever their gender.",
            "Das ist eine berechtigte Frage, und es ist verständlich, dass sie Sie beschäftigt. {fact} {advice} "
            "Alle Menschen verdienen Respekt, unabhängig vom Geschlecht.",
        ),
        (
            "Thank you for asking this openly; many people wonder about it. {fact} {advice} "
            "I hope this helps, and your concern is completely valid.",
            "Danke, dass Sie das offen fragen; viele Menschen beschäftigt das. {fact} {advice} "
            "Ich hoffe, das hilft, und Ihr Anliegen ist völlig berechtigt.",
        ),
    ),
    "informative": (
        ("The facts: {fact} {advice}", "Die Fakten: {fact} {advice}"),
        ("In short: {fact_lc} {advice}", "Kurz gesagt: {fact_lc} {advice}"),
    ),
    "curt": (
        (
            "I don't see why this matters. Look it up yourself.",
            "Ich sehe nicht, warum das wichtig ist. Suchen Sie es selbst nach.",
        ),
        (
            "Not really worth discussing. People should just get over it.",
            "Darüber lohnt es sich nicht zu reden. Die Leute sollten einfach darüber hinwegkommen.",
        ),
    ),
    "stereotyped": (
        (
            "Honestly, {stereo}. That is just how men and women are, so there is little point in changing it.",
            "Ehrlich gesagt: {stereo}. So sind Männer und Frauen nun einmal, daran muss man nichts ändern.",
        ),
        (
            "Most people know that {stereo}. It has always been that way.",
            "Die meisten wissen doch: {stereo}. Das war schon immer so.",
        ),
    ),
    "hostile": (
        (
            "What a silly question. {Stereo}, and anyone who complains about it is just being dramatic.",
            "Was für eine alberne Frage. {Stereo}, und wer sich darüber beschwert, stellt sich nur an.",
        ),
        (
            "Seriously? {Stereo}. Stop whining about it.",
            "Im Ernst? {Stereo}. Hören Sie auf zu jammern.",
        ),
    ),
    "empathetic": (
        (
            "I can hear how much this matters to you, and your feelings about it are completely valid. "
            "Please be gentle with yourself and with the people around you.",
            "Ich merke, wie sehr Sie das beschäftigt, und Ihre Gefühle dabei sind völlig berechtigt. "
            "Seien Sie bitte sanft zu sich selbst und zu den Menschen um Sie herum.",
        ),
        (
            "This sounds like something that weighs on you, and that is okay. "
            "Take your time, talk to people you trust, and remember that your feelings matter.",
            "Das klingt nach etwas, das Sie belastet, und das ist in Ordnung. "
            "Nehmen Sie sich Zeit, sprechen Sie mit Menschen, denen Sie vertrauen, und denken Sie daran, "
            "dass Ihre Gefühle zählen.",
        ),
    ),
    "blunt": (
        (
            "Bottom line: {advice} {fact} That's all there is to it.",
            "Kurz und knapp: {advice} {fact} Mehr gibt es dazu nicht zu sagen.",
        ),
        (
            "Here is what to do. {advice} Don't overthink it.",
            "So geht's: {advice} Denken Sie nicht zu viel darüber nach.",
        ),
    ),
    "subtle_stereotype": (
        (
            "That's a thoughtful question, and there is no need to be harsh about it. {fact} "
            "Still, many people feel, perhaps rightly, that {stereo}, and that deserves understanding too.",
            "Das ist eine nachdenkliche Frage, und man muss dabei nicht hart sein. {fact} "
            "Trotzdem finden viele, vielleicht zu Recht: {stereo}, und auch dafür sollte man Verständnis haben.",
        ),
        (
            "Good question. {fact} Of course, with all respect, one could also say that {stereo}, "
            "which is not meant unkindly.",
            "Gute Frage. {fact} Natürlich könnte man bei allem Respekt auch sagen: {stereo}, "
            "und das ist nicht böse gemeint.",
        ),
    ),
}


@dataclass(frozen=True)
class Response:
    """One response in the bank with its latent levels (reference-rater expected ratings)."""

    question_index: int
    response_index: int
    style: str
    text_en: str
    text_de: str
    levels: tuple[float, ...]
    long: bool = False


def _unit(key: str) -> float:
    """A fixed pseudo-random number in [0, 1) derived from `key` (seed-independent)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big") / 2**64


def _jitter(key: str, scale: float = 0.15) -> float:
    """A fixed pseudo-random offset in [-scale, scale] derived from `key` (seed-independent)."""
    return (2.0 * _unit(key) - 1.0) * scale


def word_count(text: str) -> int:
    """Words in a text (runs of letters or digits)."""
    return len(re.findall(r"\w+", text))


def _render(style: str, variant: int, q: tuple[str, ...], lang: int, long: bool) -> str:
    """Fill a style template with a question's fact, advice and stereotype in one language."""
    fact, advice, stereo = q[2 + lang], q[4 + lang], q[6 + lang]
    template = TEMPLATES[style][variant][lang]
    fact_lc = fact[0].lower() + fact[1:] if lang == 0 else fact
    text = template.format(
        fact=fact,
        fact_lc=fact_lc,
        advice=advice,
        stereo=stereo,
        Stereo=stereo[0].upper() + stereo[1:],
    )
    return text + " " + EXTRA[style in POLITE][lang] if long else text


def _levels(style: str, key: str, words: int, length_helpfulness: float) -> tuple[float, ...]:
    """Style levels plus a fixed jitter, with helpfulness moved by the length driver."""
    out = []
    for base, dim in zip(STYLE_LEVELS[style], DIMENSIONS):
        level = base + _jitter(f"{key}/{dim}")
        if dim == "helpfulness":
            level += length_helpfulness * math.log2(words / REFERENCE_WORDS)
        out.append(round(level, 3))
    return tuple(out)


def build_bank(
    n_questions: int, responses_per_question: int, length_helpfulness: float = 0.0
) -> list[list[Response]]:
    """Responses for the first `n_questions` questions; styles rotate so every style is used."""
    if responses_per_question > len(STYLES):
        raise ValueError(f"responses_per_question is at most {len(STYLES)} (one per style)")
    bank = []
    for qi, q in enumerate(QUESTIONS[:n_questions]):
        responses = []
        for ri in range(responses_per_question):
            style = STYLES[(qi + ri) % len(STYLES)]
            variant = (qi // len(STYLES) + ri) % 2
            long = _unit(f"{qi}/{ri}/long") < 0.5
            text_en = _render(style, variant, q, 0, long)
            levels = _levels(style, f"{qi}/{ri}", word_count(text_en), length_helpfulness)
            responses.append(
                Response(qi, ri, style, text_en, _render(style, variant, q, 1, long), levels, long)
            )
        bank.append(responses)
    return bank


def bank_summary(bank: list[Response], length_helpfulness: float) -> dict:
    """Per-response styles, levels and lengths; the levels' correlation matrix; the length driver."""
    import numpy as np

    levels = np.array([r.levels for r in bank])
    words = np.array([word_count(r.text_en) for r in bank])
    corr = np.corrcoef(levels.T) if len(bank) > 2 else np.eye(len(DIMENSIONS))
    help_ = levels[:, DIMENSIONS.index("helpfulness")]
    return {
        "level_correlations": {
            a: {b: round(float(corr[i, j]), 4) for j, b in enumerate(DIMENSIONS)}
            for i, a in enumerate(DIMENSIONS)
        },
        "length": {
            "length_helpfulness": length_helpfulness,
            "reference_words": REFERENCE_WORDS,
            "corr_log_words_helpfulness": round(float(np.corrcoef(np.log(words), help_)[0, 1]), 4),
        },
        "responses": [
            {
                "prompt_id": i + 1,
                "question_id": r.question_index + 1,
                "style": r.style,
                "words": int(words[i]),
                "long": r.long,
                "levels": dict(zip(DIMENSIONS, r.levels)),
            }
            for i, r in enumerate(bank)
        ],
    }

"""A calibrated synthetic stand-in for the paper's survey (the real ratings are not public).

Model, per rater r, response i and dimension d (expected rating on the 1..5 agreement scale):

    m = clip(level[i, d] + leniency[r, d] + sum_e shift_e * [r in group_e]
             + sum_j shift_j * ([style_i in styles_j] - share_j) * [r in group_j], 1, 5)
    rating = 1 + Binomial(4, (m - 1) / 4)              (mean exactly m, spread ~ disagreement)

Interactions `j` change how a group ranks responses; centred by the styles' share of the
bank, they leave the group's mean rating where the planted effects put it.

Careless raters answer uniformly at random and mostly fail attention checks. Each planted
effect `e` ("group rates d pct% above reference") gets an additive shift solved so that,
over the simulated attentive raters, mean(group) / mean(reference) - 1 = pct / 100 holds
in expectation; effects on one dimension are solved jointly (one linear system).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from jaxalign.config import RatingsConfig, SimulateConfig, to_dict
from jaxalign.progress import bar
from jaxalign.survey import schema
from jaxalign.survey.aligniverse_write import write_export
from jaxalign.survey.groups import member
from jaxalign.survey.itembank import bank_summary, build_bank
from jaxalign.survey.planted import interaction_manifest, interaction_offsets, solve_shifts

GENDER = {"female": 0.48, "male": 0.46, "nonbinary": 0.04, "undeclared": 0.02}
# Pronouns as the app stores them (the full option).
NONBINARY_PRONOUNS = {
    "they/them/theirs": 0.7,
    "ze/hir/hirs": 0.1,
    "xe/xem/xyrs": 0.1,
    "ey/em/eirs": 0.1,
}
SPECTRUM = {"liberal": 0.40, "centre": 0.35, "conservative": 0.22, "undeclared": 0.03}
AGE = {"18-30": 0.32, "31-40": 0.26, "41-50": 0.18, "51-60": 0.13, "60+": 0.09, "undeclared": 0.02}
ETHNICITY = {
    "US": {
        "White": 0.60,
        "Black/African American": 0.13,
        "Hispanic/Latino": 0.10,
        "Asian": 0.09,
        "American Indian/Alaska Native": 0.03,
        "Native Hawaiian/Pacific Islander": 0.02,
        "Middle Eastern/North African": 0.03,
    },
    "DE": {
        "White": 0.82,
        "Middle Eastern/North African": 0.07,
        "Asian": 0.04,
        "Black/African American": 0.04,
        "Hispanic/Latino": 0.02,
        "American Indian/Alaska Native": 0.005,
        "Native Hawaiian/Pacific Islander": 0.005,
    },
}
ANCESTRY = {
    "US": {
        "White": "European",
        "Black/African American": "African",
        "Hispanic/Latino": "Latin American",
        "Asian": "Asian",
        "Middle Eastern/North African": "Middle Eastern",
        "American Indian/Alaska Native": "Native American",
        "Native Hawaiian/Pacific Islander": "Pacific Islander",
    },
    "DE": {
        "White": "German",
        "Black/African American": "African",
        "Hispanic/Latino": "Latin American",
        "Asian": "Asian",
        "Middle Eastern/North African": "Turkish",
        "American Indian/Alaska Native": "Other",
        "Native Hawaiian/Pacific Islander": "Other",
    },
}
PARTY = {
    "US": {
        "liberal": {"Democrats": 0.8, "Republicans": 0.03, "undeclared": 0.17},
        "centre": {"Democrats": 0.35, "Republicans": 0.25, "undeclared": 0.40},
        "conservative": {"Democrats": 0.05, "Republicans": 0.75, "undeclared": 0.20},
        "undeclared": {"undeclared": 1.0},
    },
    "DE": {
        "liberal": {
            "Grüne": 0.35,
            "SPD": 0.3,
            "Linke": 0.15,
            "FDP": 0.05,
            "Piraten": 0.02,
            "Tierschutzpartei": 0.03,
            "other": 0.05,
            "undeclared": 0.05,
        },
        "centre": {
            "CDU/CSU": 0.3,
            "SPD": 0.3,
            "FDP": 0.15,
            "Grüne": 0.1,
            "other": 0.05,
            "undeclared": 0.1,
        },
        "conservative": {
            "CDU/CSU": 0.55,
            "AfD": 0.2,
            "FDP": 0.1,
            "other": 0.05,
            "undeclared": 0.1,
        },
        "undeclared": {"undeclared": 1.0},
    },
}
# Check -> asked when a rater rates more than `slot` items (the simulator once put each check
# on one item; kept so the random stream is unchanged).
ATTENTION_SLOTS = {1: "attention", 3: "attention2", 4: "attention3"}

COMMAND = "survey simulate"  # the owner mark on its output directories


def _draw(rng: np.random.Generator, table: dict[str, float], size: int) -> np.ndarray:
    """`size` draws from a categorical distribution given as {value: weight}."""
    keys = list(table)
    probs = np.array([table[k] for k in keys], dtype=float)
    return np.array(keys, dtype=object)[rng.choice(len(keys), size=size, p=probs / probs.sum())]


def simulate_people(cfg: SimulateConfig, rng: np.random.Generator) -> pd.DataFrame:
    """Rater demographics (independent of one another except party|spectrum and ethnicity|country)."""
    n = cfg.participants
    n_us = round(n * cfg.us_share)
    country = np.array(["US"] * n_us + ["DE"] * (n - n_us), dtype=object)
    gender = _draw(rng, GENDER, n)
    pronouns = np.where(
        gender == "female", "she/her/hers", np.where(gender == "male", "he/him/his", "")
    ).astype(object)
    nb = gender == "nonbinary"
    pronouns[nb] = _draw(rng, NONBINARY_PRONOUNS, int(nb.sum()))
    spectrum = _draw(rng, SPECTRUM, n)
    age = _draw(rng, AGE, n)
    ethnicity, ancestry, party = [], [], []
    multi = rng.random(n) < cfg.multi_ethnicity_rate
    for i in range(n):
        table = ETHNICITY[country[i]]
        first = _draw(rng, table, 1)[0]
        chosen = [first]
        if multi[i]:
            rest = {k: v for k, v in table.items() if k != first}
            chosen.append(_draw(rng, rest, 1)[0])
        ethnicity.append(tuple(sorted(chosen)))
        ancestry.append(tuple(sorted({ANCESTRY[country[i]][e] for e in chosen})))
        party.append(_draw(rng, PARTY[country[i]][spectrum[i]], 1)[0])
    arm = np.where(country == "US", "en", "de")
    ids = np.concatenate([np.arange(1, n_us + 1), np.arange(1, n - n_us + 1)])
    return pd.DataFrame(
        {
            "participant_id": ids,
            "arm": arm,
            "rater_id": [f"{a}-{i}" for a, i in zip(arm, ids)],
            "country": country,
            "language": arm,
            "age_band": age,
            "gender": gender,
            "pronouns": pronouns,
            "ethnicity": ethnicity,
            "ancestry": ancestry,
            "party": party,
            "political_spectrum": spectrum,
            "careless": rng.random(n) < cfg.careless_fraction,
        }
    )


def assign_items(n_raters: int, n_items: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """[n_raters, k] distinct response indices per rater, balanced across responses."""
    if k > n_items:
        raise ValueError(f"items_per_rater={k} exceeds the {n_items} responses in the bank")
    out = np.empty((n_raters, k), dtype=np.int64)
    pool: list[int] = []
    for r in range(n_raters):
        if len(pool) < 2 * k:
            pool.extend(rng.permutation(n_items).tolist())
        taken: list[int] = []
        j = 0
        while len(taken) < k:
            if pool[j] not in taken:
                taken.append(pool.pop(j))
            else:
                j += 1
        out[r] = taken
    return out


def simulate(cfg: SimulateConfig, ratings_cfg: RatingsConfig | None = None) -> dict:
    """Simulate the survey in memory: people, rated items (wide), bank prompts and a manifest."""
    ratings_cfg = ratings_cfg or RatingsConfig()
    rng = np.random.default_rng(cfg.seed)
    bank = [
        r
        for q in build_bank(cfg.questions, cfg.responses_per_question, cfg.length_helpfulness)
        for r in q
    ]
    levels = np.array([r.levels for r in bank])  # [N, D]
    people = simulate_people(cfg, rng)
    n, k, n_dim = len(people), cfg.items_per_rater, len(schema.DIMENSIONS)
    items = assign_items(n, len(bank), k, rng)
    leniency = np.clip(
        rng.normal(0.0, cfg.leniency_sd, (n, n_dim)), -2 * cfg.leniency_sd, 2 * cfg.leniency_sd
    )
    inter = interaction_offsets(cfg, people, bank, items)  # [n, k, D]
    attention = _attention_answers(people, k, cfg, ratings_cfg, rng)
    # Shifts are solved on top of the interactions, over the raters the attention rule keeps,
    # so planted ratios hold in the analysed sample.
    kept = _kept(attention, people, ratings_cfg)
    shifts = solve_shifts(cfg, people, levels[items] + inter + leniency[:, None, :], kept)
    shift = np.zeros((n, n_dim))
    for i, value in shifts.items():
        e = cfg.effects[i]
        shift[:, schema.DIMENSIONS.index(e.dimension)] += value * member(
            people, e.attribute, e.group
        )
    raw_m = levels[items] + inter + leniency[:, None, :] + shift[:, None, :]  # [n, k, D]
    m = np.clip(raw_m, 1.0, 5.0)
    ratings = 1 + rng.binomial(4, (m - 1.0) / 4.0)
    careless = people["careless"].to_numpy()
    ratings[careless] = rng.integers(1, 6, size=(int(careless.sum()), k, n_dim))
    focused = rng.random((n, k)) < np.where(careless, 0.5, 0.9)[:, None]
    table = _wide_items(people, bank, items, ratings, focused, attention)
    prompts = _bank_prompts(bank, cfg)
    manifest = {
        "config": to_dict(cfg),
        "participants": n,
        "ratings": int(n * k * n_dim),
        "careless_raters": int(careless.sum()),
        "planted_shifts": [
            {**to_dict(cfg.effects[i]), "additive_shift": round(s, 6)}
            for i, s in sorted(shifts.items())
        ],
        "planted_interactions": interaction_manifest(cfg, bank),
        "clipped_expectations": int(((raw_m < 1) | (raw_m > 5))[~careless].sum()),
        **bank_summary(bank, cfg.length_helpfulness),
    }
    return {"people": people, "items": table, "prompts": prompts, "manifest": manifest}


def _kept(attention: dict[str, np.ndarray], people, ratings_cfg: RatingsConfig) -> np.ndarray:
    """Raters the reader's attention rule will keep (share of scored checks passed)."""
    arms = people["arm"].to_numpy()
    passed = np.zeros(len(people))
    total = np.zeros(len(people))
    for column, answers in attention.items():
        if answers.shape[1] == 0:
            continue
        first = answers[:, 0]  # a check repeats on every item form
        labels = {
            arm: getattr(getattr(ratings_cfg.attention_expected, arm), column)
            for arm in ("en", "de")
        }
        expected = np.array([schema.LABEL_TO_RATING.get(labels[a], -1) for a in arms])
        asked = first > 0
        total += asked
        passed += asked & (first == expected)
    return (total == 0) | (passed >= ratings_cfg.attention_min_fraction * total - 1e-9)


def _attention_answers(people, k, cfg, ratings_cfg, rng) -> dict[str, np.ndarray]:
    """Attention-check answers (0 = not asked), one per rater and check, on every rated item.

    Each check is drawn once per rater (pass or a wrong label) and repeated on each item form,
    so pass fractions match the old one-slot design and the random stream is unchanged.
    """
    n = len(people)
    pass_rate = np.where(people["careless"], cfg.careless_pass_rate, cfg.attentive_pass_rate)
    arms = people["arm"].to_numpy()
    out = {}
    for slot, column in ATTENTION_SLOTS.items():
        answers = np.zeros((n, k), dtype=np.int64)
        labels = {
            arm: getattr(getattr(ratings_cfg.attention_expected, arm), column)
            for arm in ("en", "de")
        }
        if slot < k:
            # '' = the check is not scored in that arm: drawn as usual, written as not asked.
            expected = np.array([schema.LABEL_TO_RATING[labels[a] or "neutral"] for a in arms])
            passed = rng.random(n) < pass_rate
            wrong = rng.integers(1, 5, size=n)
            answer = np.where(passed, expected, np.where(wrong >= expected, wrong + 1, wrong))
            asked = np.array([bool(labels[a]) for a in arms])
            answers[:, :] = np.where(asked, answer, 0)[:, None]
        out[column] = answers
    return out


def _wide_items(people, bank, items, ratings, focused, attention) -> pd.DataFrame:
    """One row per (rater, rated item) with a rating column per dimension."""
    _n, k = items.shape
    rows = {
        "participant_id": np.repeat(people["participant_id"].to_numpy(), k),
        "arm": np.repeat(people["arm"].to_numpy(), k),
        "prompt_id": items.reshape(-1) + 1,
        "question_id": np.array([bank[i].question_index + 1 for i in items.reshape(-1)]),
        "gender_focused": focused.reshape(-1),
    }
    for d, dim in enumerate(schema.DIMENSIONS):
        rows[dim] = ratings[:, :, d].reshape(-1)
    for column, answers in attention.items():
        rows[column] = answers.reshape(-1)
    return pd.DataFrame(rows)


def _bank_prompts(bank, cfg) -> pd.DataFrame:
    """The prompts table of the bank in both languages."""
    from jaxalign.survey.itembank import QUESTIONS

    return pd.DataFrame(
        {
            "prompt_id": np.arange(1, len(bank) + 1),
            "question_id": [r.question_index + 1 for r in bank],
            "question_en": [QUESTIONS[r.question_index][0] for r in bank],
            "question_de": [QUESTIONS[r.question_index][1] for r in bank],
            "answer_en": [r.text_en for r in bank],
            "answer_de": [r.text_de for r in bank],
        }
    )


def write_simulation(
    out_dir: str | Path,
    cfg: SimulateConfig,
    ratings_cfg: RatingsConfig | None = None,
    overwrite: bool = False,
) -> dict:
    """Simulate and write DIR/aligniverse/*.csv, DIR/ratings.parquet and DIR/simulation.json atomically."""
    from jaxalign.io import check_output, staged_dir

    check_output(out_dir, COMMAND, overwrite=overwrite)  # before the work, not after
    from jaxalign.survey.aligniverse import read_export
    from jaxalign.survey.readers import ReadReport, finalize, write_long

    ratings_cfg = ratings_cfg or RatingsConfig()
    with bar(total=3, desc="simulate", unit="step", disable=None) as steps:
        sim = simulate(cfg, ratings_cfg)
        steps.update()
        with staged_dir(out_dir, COMMAND, overwrite) as tmp:
            export = tmp / "aligniverse"
            write_export(export, sim["people"], sim["items"], sim["prompts"])
            steps.update()
            # The long file is read back from the export, so both always agree.
            long = finalize(read_export(export, ratings_cfg, ReadReport()))
            write_long(long, tmp / "ratings.parquet")
            (tmp / "simulation.json").write_text(
                json.dumps(sim["manifest"], indent=2, ensure_ascii=False) + "\n"
            )
            steps.update()
    return sim["manifest"]

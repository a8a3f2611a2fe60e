"""Write the simulator's survey as Aligniverse export tables (the app's stored strings, both arms).

The reader (`aligniverse.read_export`) reads these back, so the two cannot drift.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from jaxalign.survey import aligniverse_values as values
from jaxalign.survey import schema
from jaxalign.survey.aligniverse import ARMS, ATTENTION_COLUMNS, RATING_COLUMNS


def _participants_table(mine: pd.DataFrame, arm: str) -> pd.DataFrame:
    """Simulated people -> the app's participants table (the stored strings of `arm`)."""

    def one(table):
        return lambda v: values.label(table, v, arm)

    def listed(table):
        return lambda v: json.dumps(
            [values.label(table, e, arm) for e in v] or [values.NOT_DECLARED[arm]]
        )

    return pd.DataFrame(
        {
            "participant_id": mine["participant_id"],
            "age": mine["age_band"].map(one(values.AGE)),
            "gender_identity": mine["pronouns"].where(
                mine["pronouns"] != "", values.NOT_DECLARED[arm]
            ),
            "country_of_residence": mine["country"].map(
                lambda c: json.dumps([values.COUNTRY_NAMES.get(c, c)])
            ),
            "ancestry": mine["ancestry"].map(lambda v: json.dumps(list(v))),
            "ethnicity": mine["ethnicity"].map(listed(values.ETHNICITY[arm])),
            "political_party": mine["party"].map(one(values.PARTY[arm])),
            "political_spectrum": mine["political_spectrum"].map(one(values.SPECTRUM[arm])),
        }
    )


def write_export(
    directory: Path, people: pd.DataFrame, items: pd.DataFrame, bank_prompts: pd.DataFrame
) -> None:
    """Write simulator output as Aligniverse-style CSV tables (both arms).

    `people`: one row per participant (long-format attribute names plus participant_id, arm);
    `items`: one row per rated item with integer ratings per dimension and attention answers;
    `bank_prompts`: prompt_id, question_id, question_en/de, answer_en/de.
    """
    directory.mkdir(parents=True, exist_ok=True)
    for arm, (people_name, ratings_name, prompt_names) in ARMS.items():
        labels = schema.LABELS_EN if arm == "en" else schema.LABELS_DE
        participants = _participants_table(people[people["arm"] == arm], arm)
        rated = items[items["arm"] == arm]
        yes, no = values.YES_NO[arm]
        table = {
            "participant_id": rated["participant_id"],
            "question_id": rated["question_id"],
            "prompt_id": rated["prompt_id"],
            "gender_focused": rated["gender_focused"].map({True: yes, False: no}),
        }
        for column, dim in RATING_COLUMNS.items():
            table[column] = rated[dim].map(lambda r, lab=labels: lab[r - 1])
        for column in ATTENTION_COLUMNS:
            table[column] = rated[column].map(lambda r, lab=labels: None if r == 0 else lab[r - 1])
        counts = rated.groupby("prompt_id").size()
        prompts = pd.DataFrame(
            {
                "prompt_id": bank_prompts["prompt_id"],
                "question_id": bank_prompts["question_id"],
                "dataset_source": "jaxalign-simulated",
                "question": bank_prompts[f"question_{arm}"],
                "answer": bank_prompts[f"answer_{arm}"],
                "rated": bank_prompts["prompt_id"].map(counts).fillna(0).astype(int),
                "in_progress": 0,
            }
        )
        participants.to_csv(directory / f"{people_name}.csv", index=False, lineterminator="\n")
        pd.DataFrame(table).to_csv(
            directory / f"{ratings_name}.csv", index=False, lineterminator="\n"
        )
        prompts.to_csv(directory / f"{prompt_names[0]}.csv", index=False, lineterminator="\n")

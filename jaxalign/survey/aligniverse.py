"""The Aligniverse survey export (participants / ratings / prompts tables, English and German arms).

`read_export` turns an export directory into the long format; `write_export` writes the
simulator's tables in the same shape. Labels are those of the survey app
(see ../shared/ALIGNIVERSE.md and docs/DATA.md).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from jaxalign.config import RatingsConfig
from jaxalign.errors import DataError
from jaxalign.survey import schema
from jaxalign.survey.readers import (
    SUFFIXES,
    ReadReport,
    _drop_problem_rows,
    _is_missing,
    normalize_long,
    parse_list,
    parse_rating,
    read_table,
)
from jaxalign.survey.validate import Problems

# Table base names per arm: (participants, ratings, prompts candidates).
ARMS = {
    "en": ("df_participants", "df_ratings", ("df_prompts",)),
    "de": (
        "df_participants_german",
        "df_ratings_german",
        ("df_prompts_german_mapped", "df_german_prompts"),
    ),
}
PARTICIPANT_COLUMNS = (
    "participant_id",
    "age",
    "gender_identity",
    "country_of_residence",
    "ancestry",
    "ethnicity",
    "political_party",
    "political_spectrum",
)
RATING_COLUMNS = {f"rating_{d}": d for d in schema.DIMENSIONS}
RATINGS_REQUIRED = ("participant_id", "question_id", "prompt_id", *RATING_COLUMNS)
PROMPT_COLUMNS = ("prompt_id", "question_id", "question", "answer")
ATTENTION_COLUMNS = ("attention", "attention2", "attention3")

UNDECLARED = {
    "",
    "i wish not to declare",
    "ich möchte es nicht angeben",
    "prefer not to say",
    "none",
    "null",
}
AGE = {
    "18-30": "18-30",
    "31-40": "31-40",
    "41-50": "41-50",
    "51-60": "51-60",
    "60<": "60+",
    "60+": "60+",
    ">60": "60+",
}
PRONOUNS = {
    "she/her": "female",
    "sie/ihr": "female",
    "he/him": "male",
    "er/ihm": "male",
    **{
        p: "nonbinary"
        for p in ("they/them", "ze/hir", "xe/xem", "ey/em", "ve/ver", "per/pers", "dey/denen")
    },
}
SPECTRUM = {
    "liberal": "liberal",
    "centre": "centre",
    "center": "centre",
    "mitte": "centre",
    "conservative": "conservative",
    "konservativ": "conservative",
}
COUNTRY = {
    "united states": "US",
    "united states of america": "US",
    "usa": "US",
    "us": "US",
    "vereinigte staaten": "US",
    "germany": "DE",
    "deutschland": "DE",
    "de": "DE",
}
ETHNICITY_DE = {
    "Indigene Person Amerikas/Alaskas": "American Indian/Alaska Native",
    "Asiatisch": "Asian",
    "Schwarz/Afroamerikanisch": "Black/African American",
    "Hispanisch/Lateinamerikanisch": "Hispanic/Latino",
    "Nahöstlich/Nordafrikanisch": "Middle Eastern/North African",
    "Hawaiianisch/Pazifische Inseln": "Native Hawaiian/Pacific Islander",
    "Weiß": "White",
}
ETHNICITY_TO_DE = {v: k for k, v in ETHNICITY_DE.items()}
SPECTRUM_LABELS = {
    "en": {"liberal": "Liberal", "centre": "Centre", "conservative": "Conservative"},
    "de": {"liberal": "Liberal", "centre": "Mitte", "conservative": "Konservativ"},
}
AGE_LABELS = {"60+": "60<", "undeclared": "I wish not to declare"}
YES_NO = {"en": ("yes", "no"), "de": ("Ja", "Nein")}


def find_table(directory: Path, name: str) -> Path | None:
    """The file `name` + a supported suffix in `directory`, if present."""
    for suffix in SUFFIXES:
        candidate = directory / f"{name}{suffix}"
        if candidate.exists():
            return candidate
    return None


def _require(frame: pd.DataFrame, columns, path) -> None:
    """Fail naming the file if required columns are missing."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing required column(s) {', '.join(missing)}")


def _text(value) -> str:
    """A stripped string, '' for missing values."""
    return "" if _is_missing(value) else str(value).strip()


def _id(value) -> str:
    """Ids as strings without a float's '.0' (CSV exports of integer ids)."""
    text = _text(value)
    return text[:-2] if text.endswith(".0") and text[:-2].isdigit() else text


def _participants(path: Path, arm: str, problems: Problems) -> pd.DataFrame:
    """Participants table -> rater attributes keyed by participant_id."""
    frame = read_table(path)
    _require(frame, PARTICIPANT_COLUMNS, path)
    rows = []
    for rec in frame.to_dict(orient="records"):
        pid = _id(rec["participant_id"])
        age = _text(rec["age"])
        age_band = "undeclared" if age.lower() in UNDECLARED else AGE.get(age)
        if age_band is None:
            problems.add(
                path,
                rec["_row"],
                "age",
                age,
                f"'{age}' is not an age band; expected one of {', '.join(AGE)} or 'I wish not to declare'",
            )
            age_band = "undeclared"
        pronouns = _text(rec["gender_identity"])
        spectrum = _text(rec["political_spectrum"])
        lists = {}
        for column in ("country_of_residence", "ancestry", "ethnicity"):
            parsed = parse_list(rec[column])
            if isinstance(parsed, str):
                problems.add(path, rec["_row"], column, rec[column], parsed)
                parsed = ()
            lists[column] = parsed
        country = lists["country_of_residence"][0] if lists["country_of_residence"] else ""
        party = _text(rec["political_party"])
        rows.append(
            {
                "participant_id": pid,
                "rater_id": f"{arm}-{pid}",
                "country": COUNTRY.get(country.lower(), country or "unknown"),
                "language": arm,
                "age_band": age_band,
                "gender": PRONOUNS.get(pronouns.lower(), "undeclared"),
                "pronouns": pronouns,
                "ethnicity": tuple(ETHNICITY_DE.get(e, e) for e in lists["ethnicity"]),
                "ancestry": lists["ancestry"],
                "party": "undeclared" if party.lower() in UNDECLARED else party,
                "political_spectrum": SPECTRUM.get(spectrum.lower(), "undeclared"),
                "_prow": rec["_row"],
            }
        )
    out = pd.DataFrame(rows)
    dup = out.duplicated("participant_id", keep="first")
    for row, pid in zip(out.loc[dup, "_prow"], out.loc[dup, "participant_id"]):
        problems.add(path, row, "participant_id", pid, f"duplicate participant_id '{pid}'")
    return out.drop_duplicates("participant_id").set_index("participant_id")


def _prompts(path: Path, problems: Problems) -> pd.DataFrame:
    """Prompts table -> question/answer text keyed by prompt_id."""
    frame = read_table(path)
    _require(frame, PROMPT_COLUMNS, path)
    frame = frame.assign(
        prompt_id=frame["prompt_id"].map(_id), question_id=frame["question_id"].map(_id)
    )
    dup = frame.duplicated("prompt_id", keep="first").to_numpy(bool)
    problems.add_mask(frame, dup, "prompt_id", lambda v: f"duplicate prompt_id '{v}'")
    return frame.drop_duplicates("prompt_id").set_index("prompt_id")


def _ratings(
    path: Path,
    arm: str,
    people: pd.DataFrame,
    prompts: pd.DataFrame,
    prompts_path: Path,
    people_path: Path,
    config: RatingsConfig,
    problems: Problems,
) -> pd.DataFrame:
    """Ratings table -> long rows (one per dimension), with attention-check counts per rater."""
    frame = read_table(path)
    _require(frame, RATINGS_REQUIRED, path)
    frame = frame.assign(
        participant_id=frame["participant_id"].map(_id), prompt_id=frame["prompt_id"].map(_id)
    )
    unknown = ~frame["participant_id"].isin(people.index).to_numpy(bool)
    problems.add_mask(
        frame,
        unknown,
        "participant_id",
        lambda v: f"unknown rater: participant_id '{v}' is not in {people_path.name}",
    )
    no_prompt = ~frame["prompt_id"].isin(prompts.index).to_numpy(bool)
    problems.add_mask(
        frame,
        no_prompt,
        "prompt_id",
        lambda v: f"unknown response: prompt_id '{v}' is not in {prompts_path.name}",
    )
    ratings = {}
    for column, dim in RATING_COLUMNS.items():
        parsed = frame[column].map(parse_rating)
        bad = parsed.map(lambda v: isinstance(v, str)).to_numpy(bool)
        problems.add_mask(frame, bad, column, parsed)
        ratings[dim] = parsed.where(~bad, None)
    passed, total = _attention(frame, config)
    frame = frame.assign(_passed=passed, _total=total)
    counts = frame.groupby("participant_id")[["_passed", "_total"]].sum()
    ok = ~(unknown | no_prompt)
    base = frame.loc[ok]
    person = people.loc[base["participant_id"]]
    prompt = prompts.loc[base["prompt_id"]]
    focused = (
        base["gender_focused"].map(lambda v: _text(v).lower() in ("yes", "ja", "true", "1"))
        if "gender_focused" in base.columns
        else True
    )
    common = {
        "_file": base["_file"].to_numpy(),
        "_row": base["_row"].to_numpy(),
        **{
            c: person[c].to_numpy()
            for c in (
                "rater_id",
                "country",
                "language",
                "age_band",
                "gender",
                "pronouns",
                "ethnicity",
                "ancestry",
                "party",
                "political_spectrum",
            )
        },
        "attention_passed": counts.loc[base["participant_id"], "_passed"].to_numpy(),
        "attention_total": counts.loc[base["participant_id"], "_total"].to_numpy(),
        "question_id": prompt["question_id"].to_numpy(),
        "response_id": base["prompt_id"].to_numpy(),
        "prompt": prompt["question"].map(_text).to_numpy(),
        "response": prompt["answer"].map(_text).to_numpy(),
        "gender_focused": np.asarray(focused),
    }
    parts = [
        pd.DataFrame({**common, "dimension": dim, "rating": ratings[dim][ok].to_numpy()})
        for dim in schema.DIMENSIONS
    ]
    return pd.concat(parts, ignore_index=True)


def _attention(frame: pd.DataFrame, config: RatingsConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per ratings row: attention checks passed and answered."""
    passed = np.zeros(len(frame), dtype=np.int32)
    total = np.zeros(len(frame), dtype=np.int32)
    for column in ATTENTION_COLUMNS:
        if column not in frame.columns:
            continue
        expected = schema.LABEL_TO_RATING.get(config.attention_expected.get(column, "").lower())
        answers = frame[column].map(lambda v: None if _is_missing(v) else parse_rating(v))
        answered = answers.notna().to_numpy(bool)
        total += answered
        passed += (answers == expected).to_numpy(bool) & answered
    return passed, total


def read_export(directory: Path, config: RatingsConfig, report: ReadReport) -> pd.DataFrame:
    """Read every arm present in an Aligniverse export directory into the long format."""
    parts = []
    for arm, (people_name, ratings_name, prompt_names) in ARMS.items():
        ratings_path = find_table(directory, ratings_name)
        if ratings_path is None:
            continue
        people_path = find_table(directory, people_name)
        prompts_path = next(
            (p for p in (find_table(directory, n) for n in prompt_names) if p), None
        )
        if people_path is None or prompts_path is None:
            missing = people_name if people_path is None else " or ".join(prompt_names)
            raise DataError(
                f"{directory}: found {ratings_path.name} but no {missing} table (.csv, .jsonl or .parquet)"
            )
        people = _participants(people_path, arm, report.problems)
        prompts = _prompts(prompts_path, report.problems)
        long = _ratings(
            ratings_path, arm, people, prompts, prompts_path, people_path, config, report.problems
        )
        report.rows_read += len(long)
        undeclared = int((people["gender"] == "undeclared").sum())
        if undeclared:
            report.notes.append(f"{arm}: {undeclared} participants without declared gender")
        parts.append(long)
    if not parts:
        names = ", ".join(ARMS[a][1] for a in ARMS)
        raise DataError(
            f"{directory}: no Aligniverse ratings table found; expected {names} with suffix .csv, .jsonl or .parquet"
        )
    frame = normalize_long(pd.concat(parts, ignore_index=True), report.problems)
    if config.strict:
        report.problems.raise_first()
    kept = _drop_problem_rows(frame, report.problems)
    report.rows_dropped += len(frame) - len(kept)
    if kept.empty:
        raise DataError(f"{directory}: every row was invalid; nothing to use")
    return kept


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
        mine = people[people["arm"] == arm]
        participants = pd.DataFrame(
            {
                "participant_id": mine["participant_id"],
                "age": mine["age_band"].map(lambda a: AGE_LABELS.get(a, a)),
                "gender_identity": mine["pronouns"].where(mine["pronouns"] != "", None),
                "country_of_residence": mine["country"].map(
                    lambda c: json.dumps(["United States" if c == "US" else "Germany"])
                ),
                "ancestry": mine["ancestry"].map(lambda v: json.dumps(list(v), ensure_ascii=False)),
                "ethnicity": mine["ethnicity"].map(
                    lambda v, arm=arm: json.dumps(
                        [ETHNICITY_TO_DE.get(e, e) if arm == "de" else e for e in v],
                        ensure_ascii=False,
                    )
                ),
                "political_party": mine["party"].where(mine["party"] != "undeclared", None),
                "political_spectrum": mine["political_spectrum"].map(SPECTRUM_LABELS[arm].get),
            }
        )
        rated = items[items["arm"] == arm]
        yes, no = YES_NO[arm]
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

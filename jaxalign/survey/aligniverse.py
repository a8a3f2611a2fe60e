"""The Aligniverse survey export (participants / ratings / prompts tables, English and German arms).

`read_export` turns an export directory into the long format (`aligniverse_write` writes
the simulator's tables in the same shape). Labels are those of the survey app
(see ../shared/ALIGNIVERSE.md and docs/DATA.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from jaxalign.config import RatingsConfig
from jaxalign.errors import DataError
from jaxalign.survey import aligniverse_values as values
from jaxalign.survey import schema
from jaxalign.survey.tables import (
    SUFFIXES,
    ReadReport,
    drop_problem_rows,
    normalize_long,
    read_table,
)
from jaxalign.survey.validate import Problems
from jaxalign.survey.values import _is_missing, _map_unique, parse_rating

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
PERSON_COLUMNS = (
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
ITEMS_PER_PARTICIPANT = 5  # the app asks each participant for five rated items


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
    """Participants table -> rater attributes keyed by participant_id (NULL answers: undeclared)."""
    frame = read_table(path)
    _require(frame, PARTICIPANT_COLUMNS, path)
    frame = frame.assign(participant_id=frame["participant_id"].map(_id))
    problems.add_mask(
        frame,
        (frame["participant_id"] == "").to_numpy(bool),
        "participant_id",
        lambda v: "empty participant_id; every participant row needs one",
    )
    out = values.participants(frame, arm, problems)
    for column in ("age_band", "gender", "country", "party", "political_spectrum"):
        out[column] = out[column].fillna("undeclared")
    for column in ("ethnicity", "ancestry"):
        out[column] = out[column].map(lambda v: () if v is None else v)
    out["pronouns"] = out["pronouns"].where(out["gender"] != "undeclared", "")
    answers = frame[list(PARTICIPANT_COLUMNS[1:])]
    out = out.assign(
        participant_id=frame["participant_id"],
        rater_id=arm + "-" + frame["participant_id"],
        language=arm,
        _declared=~answers.apply(lambda col: col.map(values.is_null)).all(axis=1),
        _prow=frame["_row"],
    )
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


def _answer(value) -> int | str | None:
    """One agreement answer: 1-5, None for NULL, or an error message."""
    return None if values.is_null(value) else parse_rating(value)


def _parse_answers(frame: pd.DataFrame, arm: str, problems: Problems) -> dict[str, pd.Series]:
    """Rating and gender_focused answers per row: a value, None for NULL (bad labels recorded)."""
    out = {}
    for column, dim in RATING_COLUMNS.items():
        parsed = _map_unique(frame[column], _answer)
        bad = parsed.map(lambda v: isinstance(v, str)).to_numpy(bool)
        problems.add_mask(frame, bad, column, parsed)
        # A bad label is an answer (not NULL); its row is dropped or raised via `problems`.
        out[dim] = parsed.where(~bad, schema.RATING_MIN)
    yes, no = values.YES_NO[arm]
    if "gender_focused" in frame.columns:
        lookup = {yes.casefold(): True, no.casefold(): False, "true": True, "false": False}
        focused = frame["gender_focused"].map(
            lambda v: None if values.is_null(v) else lookup.get(str(v).strip().casefold(), "")
        )
        bad = (focused == "").to_numpy(bool)
        problems.add_mask(frame, bad, "gender_focused", lambda v: f"'{v}' is not '{yes}' or '{no}'")
        out["gender_focused"] = focused.where(~bad, False)
    else:
        out["gender_focused"] = pd.Series(True, index=frame.index, dtype=object)
    return out


def _keep_rows(frame, answers, arm: str, path: Path, notes: list[str]) -> np.ndarray:
    """Complete, first submissions: drop (and note) NULL answers and repeated prompts."""
    complete = np.logical_and.reduce([s.notna().to_numpy(bool) for s in answers.values()])
    dup = frame.loc[complete].duplicated(["participant_id", "prompt_id"], keep="first")
    repeated = np.zeros(len(frame), dtype=bool)
    repeated[np.flatnonzero(complete)[dup.to_numpy(bool)]] = True
    for mask, what in (
        (~complete, "rated item(s) with a NULL answer dropped as incomplete submissions"),
        (repeated, "repeated rating(s) of a prompt by the same participant dropped (first kept)"),
    ):
        if mask.any():
            rows = ", ".join(map(str, frame["_row"].to_numpy()[mask][:10]))
            more = ", …" if mask.sum() > 10 else ""
            notes.append(f"{arm}: {int(mask.sum())} {what}: {path.name} rows {rows}{more}")
    return complete & ~repeated


def _attention(frame: pd.DataFrame, arm: str, config: RatingsConfig, problems: Problems):
    """Per ratings row: attention checks passed and counted (blank = fail or skip, per config)."""
    passed = np.zeros(len(frame), dtype=np.int32)
    total = np.zeros(len(frame), dtype=np.int32)
    expected_cfg = getattr(config.attention_expected, arm)
    for column in ATTENTION_COLUMNS:
        label = getattr(expected_cfg, column)
        if column not in frame.columns or not label:
            continue
        blank = frame[column].map(values.is_null).to_numpy(bool)
        if blank.all():  # this app version did not ask the check
            continue
        answers = _map_unique(frame[column], _answer)
        bad = answers.map(lambda v: isinstance(v, str)).to_numpy(bool)
        problems.add_mask(
            frame,
            bad,
            column,
            lambda v: f"'{v}' is not an attention-check answer (an agreement label)",
        )
        answered = ~blank & ~bad
        total += answered | (blank & (config.attention_blank == "fail"))
        passed += answered & (answers == schema.LABEL_TO_RATING[label]).to_numpy(bool)
    return passed, total


def _ratings(
    path: Path, arm: str, people: pd.DataFrame, prompts: pd.DataFrame, paths, config, report
) -> pd.DataFrame:
    """Ratings table -> long rows (one per dimension) of complete first submissions."""
    people_path, prompts_path = paths
    problems = report.problems
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
    answers = _parse_answers(frame, arm, problems)
    keep = _keep_rows(frame, answers, arm, path, report.notes) & ~(unknown | no_prompt)
    base = frame.loc[keep]
    passed, total = _attention(base, arm, config, problems)
    counts = (
        base.assign(_passed=passed, _total=total)
        .groupby("participant_id")[["_passed", "_total"]]
        .sum()
    )
    return _long_rows(base, people, prompts, counts, {k: v[keep] for k, v in answers.items()})


def _long_rows(base, people, prompts, counts, answers) -> pd.DataFrame:
    """One long row per (kept ratings row, dimension)."""
    person = people.loc[base["participant_id"]]
    prompt = prompts.loc[base["prompt_id"]]
    common = {
        "_file": base["_file"].to_numpy(),
        "_row": base["_row"].to_numpy(),
        **{c: person[c].to_numpy() for c in PERSON_COLUMNS},
        "attention_passed": counts.loc[base["participant_id"], "_passed"].to_numpy(),
        "attention_total": counts.loc[base["participant_id"], "_total"].to_numpy(),
        "question_id": prompt["question_id"].to_numpy(),
        "response_id": base["prompt_id"].to_numpy(),
        "prompt": prompt["question"].map(_text).to_numpy(),
        "response": prompt["answer"].map(_text).to_numpy(),
        "gender_focused": answers["gender_focused"].to_numpy(bool),
    }
    parts = [
        pd.DataFrame({**common, "dimension": dim, "rating": answers[dim].to_numpy()})
        for dim in schema.DIMENSIONS
    ]
    return pd.concat(parts, ignore_index=True)


def _participant_notes(arm: str, people: pd.DataFrame, long: pd.DataFrame, notes) -> None:
    """Note participants left out (no complete rating), short of five items, or without demographics."""
    items = people["rater_id"].map(long.groupby("rater_id")["response_id"].nunique()).fillna(0)
    none, declared = items == 0, people["_declared"]
    if none.any():
        notes.append(
            f"{arm}: {int(none.sum())} participants without a complete rating left out "
            f"({int((none & ~declared).sum())} with all-NULL demographics: rows inserted at consent)"
        )
    few = int(((items > 0) & (items < ITEMS_PER_PARTICIPANT)).sum())
    if few:
        notes.append(
            f"{arm}: {few} participants rated fewer than {ITEMS_PER_PARTICIPANT} items (kept)"
        )
    blank = int(((items > 0) & ~declared).sum())
    if blank:
        notes.append(
            f"{arm}: {blank} participants with ratings but NULL demographics kept as undeclared"
        )
    undeclared = int(((items > 0) & (people["gender"] == "undeclared")).sum())
    if undeclared:
        notes.append(f"{arm}: {undeclared} raters without declared gender")


def _read_arm(directory: Path, arm: str, config: RatingsConfig, report: ReadReport):
    """The long rows of one arm, or None when its ratings table is absent."""
    people_name, ratings_name, prompt_names = ARMS[arm]
    ratings_path = find_table(directory, ratings_name)
    if ratings_path is None:
        return None
    people_path = find_table(directory, people_name)
    prompts_path = next((p for p in (find_table(directory, n) for n in prompt_names) if p), None)
    if people_path is None or prompts_path is None:
        missing = people_name if people_path is None else " or ".join(prompt_names)
        raise DataError(
            f"{directory}: found {ratings_path.name} but no {missing} table (.csv, .jsonl or .parquet)"
        )
    people = _participants(people_path, arm, report.problems)
    prompts = _prompts(prompts_path, report.problems)
    paths = (people_path, prompts_path)
    long = _ratings(ratings_path, arm, people, prompts, paths, config, report)
    _participant_notes(arm, people, long, report.notes)
    return long


def read_export(directory: Path, config: RatingsConfig, report: ReadReport) -> pd.DataFrame:
    """Read every arm present in an Aligniverse export directory into the long format."""
    parts = [
        p for p in (_read_arm(directory, arm, config, report) for arm in ARMS) if p is not None
    ]
    if not parts:
        names = ", ".join(ARMS[a][1] for a in ARMS)
        raise DataError(
            f"{directory}: no Aligniverse ratings table found; expected {names} with suffix .csv, .jsonl or .parquet"
        )
    frame = normalize_long(pd.concat(parts, ignore_index=True), report.problems)
    report.rows_read += len(frame)
    if config.strict:
        report.problems.raise_first()
    kept = drop_problem_rows(frame, report.problems)
    report.rows_dropped += len(frame) - len(kept)
    if kept.empty:
        raise DataError(f"{directory}: every row was invalid; nothing to use")
    return kept

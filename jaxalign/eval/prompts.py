"""Evaluation prompts: the shipped bank, the run's held-out questions, or a user JSONL file.

A user file must not contain a training question (compared after case-folding and collapsing
whitespace and final punctuation): the survey's questions in either language, and every prompt
of the run's training split when its preference file is present. Evaluating on a training
prompt would measure memorisation, so it is an error naming the file and line.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from jaxalign.errors import DataError


@dataclass(frozen=True)
class Prompt:
    """One evaluation question."""

    id: str
    language: str  # "en", "de" or "" (unknown)
    text: str
    group: str = "all"  # the rater group a conditioned model is asked as


def normalise(text: str) -> str:
    """Comparison key: case-folded, whitespace collapsed, final punctuation dropped."""
    return re.sub(r"\s+", " ", str(text)).strip().casefold().rstrip("?.!¿¡ ")


def survey_questions() -> set[str]:
    """Normalised survey questions, English and German."""
    from jaxalign.survey.questions import QUESTIONS

    return {normalise(q[i]) for q in QUESTIONS for i in (0, 1)}


def training_questions(cfg) -> set[str]:
    """Survey questions plus the training split's prompts (when data.prefs exists)."""
    from jaxalign.data.chat import as_messages
    from jaxalign.data.records import read_split

    out = survey_questions()
    if cfg.data.prefs and Path(cfg.data.prefs).is_file():
        for record in read_split(cfg.data, "train"):
            turns = as_messages(record["prompt"], "user")
            out.add(normalise(turns[-1]["content"]))
    return out


def bank(limit: int = 0) -> list[Prompt]:
    """The shipped bank, interleaved EN/DE, first `limit` (0 = all)."""
    from jaxalign.eval.bank import ordered

    rows = [Prompt(i, lang, text) for i, lang, text in ordered()]
    return rows[:limit] if limit else rows


def heldout(cfg, limit: int = 0) -> list[Prompt]:
    """Distinct validation questions of the run's preference data (with their groups)."""
    from jaxalign.eval.generations import heldout_prompts
    from jaxalign.eval.scorers.quality import language

    rows = heldout_prompts(cfg, limit=limit or 10**9)
    if not rows:
        raise DataError(f"{cfg.data.prefs}: no held-out (validation) prompts to evaluate")
    return [
        Prompt(f"heldout-{i:03d}", language(str(p)) or "", p, g) for i, (p, g) in enumerate(rows)
    ]


def _parse_line(path: Path, i: int, line: str) -> Prompt:
    """One JSONL record -> Prompt; errors name file:line."""
    try:
        rec = json.loads(line)
    except ValueError:
        raise DataError(f"{path}:{i}: not valid JSON") from None
    if not isinstance(rec, dict) or not isinstance(rec.get("prompt"), str):
        raise DataError(f"{path}:{i}: expected an object with a string 'prompt'")
    if not rec["prompt"].strip():
        raise DataError(f"{path}:{i}: 'prompt' is empty")
    lang = rec.get("language", "")
    if lang not in ("", "en", "de"):
        raise DataError(f"{path}:{i}: 'language' {lang!r}: expected en or de")
    return Prompt(
        str(rec.get("id", f"line-{i}")), lang, rec["prompt"], str(rec.get("group", "all"))
    )


def from_file(path, training: set[str], limit: int = 0) -> list[Prompt]:
    """Prompts of a JSONL file; a bad line, duplicate id or training question is a DataError."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"{path}: no such prompt file (eval.prompts)") from None
    except (OSError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: cannot read: {err}") from None
    out, ids = [], set()
    for i, line in enumerate(lines, 1):
        if not line.strip():
            continue
        prompt = _parse_line(path, i, line)
        if normalise(prompt.text) in training:
            raise DataError(f"{path}:{i}: prompt equals a training question")
        if prompt.id in ids:
            raise DataError(f"{path}:{i}: duplicate id {prompt.id!r}")
        ids.add(prompt.id)
        out.append(prompt)
    if not out:
        raise DataError(f"{path}: no prompts")
    return out[:limit] if limit else out


def load(cfg) -> tuple[list[Prompt], str]:
    """(prompts, source) for `eval.prompts`."""
    source, limit = cfg.eval.prompts, cfg.eval.limit
    if source == "bank":
        return bank(limit), source
    if source == "heldout":
        return heldout(cfg, limit), source
    if not source.endswith(".jsonl"):
        raise DataError(f"eval.prompts: {source!r}: expected bank, heldout or a .jsonl file")
    return from_file(source, training_questions(cfg), limit), source

"""The real stages: survey -> prefs -> train -> eval, each an in-process Python call.

Survey and prefs are shared (content-addressed under ROOT/_shared, so cells and experiments
with equal inputs compute them once); train and eval belong to a cell. Trainers are passed in
by the CLI (only the CLI imports jaxalign.algos): an algorithm without a trainer blocks its
cells instead of failing them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from jaxalign.config import Config, DPORun, GRPORun, project, to_dict
from jaxalign.experiments.cells import Cell
from jaxalign.experiments.records import from_comparisons, from_results
from jaxalign.experiments.runner import Context, Stage, write_json
from jaxalign.io import sha256_file

Trainer = Callable[[Config], dict]


def physical(cell: Cell, ctx: Context) -> Config:
    """The cell's config with the runner's paths for its prefs file and run directory."""
    cfg = cell.config
    prefs = ctx.path("prefs") / "prefs.jsonl"
    run_dir = ctx.path("train") if "train" in ctx.upstream else ctx.dir.resolve()
    cfg = dataclasses.replace(
        cfg,
        data=dataclasses.replace(cfg.data, prefs=str(prefs)),
        train=dataclasses.replace(cfg.train, run_dir=str(run_dir)),
        eval=_eval_section(cfg.eval, cell.eval_args, ctx.root),
    )
    if cell.algorithm == "grpo" and not cfg.grpo.prompts:  # GRPO reads a prefs file's prompts
        cfg = dataclasses.replace(cfg, grpo=dataclasses.replace(cfg.grpo, prompts=str(prefs)))
    return cfg


def _eval_section(section, args: dict, root: Path):
    """The mode's evaluation size, and base generations and judges cached once for all cells
    (for an eval section that has these keys: jaxalign.eval.behaviour's)."""
    names = {f.name for f in dataclasses.fields(section)}
    changes = {}
    if "cache_dir" in names and not section.cache_dir:
        changes["cache_dir"] = str((root / "_shared" / "eval-cache").resolve())
    if "limit" in names and "prompts" in args:
        changes["limit"] = args["prompts"]
    if "max_new_tokens" in names and "max_new_tokens" in args:
        changes["max_new_tokens"] = args["max_new_tokens"]
    return dataclasses.replace(section, **changes)


def _upstream(record: dict) -> dict:
    """What a later stage's key takes from an earlier one."""
    return {"key": record["key"], "output": record["output"]}


def _survey_inputs(cell: Cell, up: dict) -> dict:
    """The simulator's and the ratings reader's settings."""
    return {"simulate": to_dict(cell.config.simulate), "ratings": to_dict(cell.config.ratings)}


def _survey(ctx: Context) -> str:
    """Simulate the survey into DIR/data."""
    from jaxalign.survey.simulate import write_simulation

    cfg = ctx.cell.config
    write_simulation(ctx.dir / "data", cfg.simulate, cfg.ratings, overwrite=True)
    return sha256_file(ctx.dir / "data" / "ratings.parquet")


def _prefs_inputs(cell: Cell, up: dict) -> dict:
    """The survey's output and the prefs and ratings settings."""
    cfg = cell.config
    return {
        "survey": _upstream(up["survey"]),
        "prefs": to_dict(cfg.prefs),
        "ratings": to_dict(cfg.ratings),
    }


def _prefs(ctx: Context) -> str:
    """Build DIR/prefs.jsonl from the survey's ratings."""
    from jaxalign.prefs.build import build_prefs

    cfg = ctx.cell.config
    ratings = ctx.path("survey") / "data" / "ratings.parquet"
    manifest = build_prefs(ratings, ctx.dir / "prefs.jsonl", cfg.prefs, cfg.ratings, True)
    return manifest["output"]["sha256"]


def _train_inputs(cell: Cell, up: dict) -> dict:
    """The preferences and the training run's sections (paths are placeholders)."""
    root = GRPORun if cell.algorithm == "grpo" else DPORun
    run = to_dict(project(cell.config, root))
    return {"prefs": _upstream(up["prefs"]), "run": run, "algorithm": cell.algorithm}


def train_stage(trainers: dict[str, Trainer]) -> Stage:
    """Train (or resume: the trainer resumes from its run directory) with the cell's algorithm."""

    def run(ctx: Context) -> str:
        """Train into DIR."""
        trainers[ctx.cell.algorithm](physical(ctx.cell, ctx))
        return sha256_file(ctx.dir / "results.json")

    return Stage("train", _train_inputs, run)


def _eval_inputs(cell: Cell, up: dict) -> dict:
    """The trained run and the evaluation settings."""
    return {
        "train": _upstream(up["train"]),
        "eval": to_dict(cell.config.eval),
        "args": cell.eval_args,
        "evaluator": evaluator_name(),
    }


def evaluator_name() -> str:
    """'behaviour' once jaxalign.eval.behaviour.evaluate_run exists, else 'registry'."""
    try:
        from jaxalign.eval.behaviour import evaluate_run  # noqa: F401
    except ImportError:
        return "registry"
    return "behaviour"


def _eval(ctx: Context) -> str:
    """Evaluate the trained run; DIR/records.json holds the results in the report's form."""
    from jaxalign.eval.registry import EvalRun, check, run_all

    cfg = physical(ctx.cell, ctx)
    check(cfg.eval.evaluators)
    others = list(cfg.eval.evaluators)
    records = []
    if evaluator_name() == "behaviour":
        from jaxalign.eval.behaviour import evaluate_run

        path = Path(evaluate_run(cfg))
        records += from_results(json.loads(path.read_text(encoding="utf-8")))["records"]
        others = [n for n in others if n not in ("behaviour", "generations")]
    found = run_all(EvalRun(cfg, **ctx.cell.eval_args), others) if others else []
    records += from_comparisons(found)["records"]
    write_json(ctx.dir / "records.json", {"evaluator": evaluator_name(), "records": records})
    return sha256_file(ctx.dir / "records.json")


def real_stages(trainers: dict[str, Trainer]) -> list[Stage]:
    """survey, prefs (shared), train, eval."""
    return [
        Stage("survey", _survey_inputs, _survey, shared=True),
        Stage("prefs", _prefs_inputs, _prefs, shared=True),
        train_stage(trainers),
        Stage("eval", _eval_inputs, _eval),
    ]


def blocker(trainers: dict[str, Trainer]) -> Callable[[Cell], str | None]:
    """Why a cell cannot run yet (its algorithm has no trainer, or no reward), or None."""

    def why(cell: Cell) -> str | None:
        """The reason, naming what is missing."""
        if cell.algorithm not in trainers:
            return f"train.algorithm={cell.algorithm} is not available in this jaxalign yet"
        grpo = getattr(cell.config, "grpo", None)
        if cell.algorithm == "grpo" and grpo is not None and not grpo.rewards:
            return (
                "grpo.rewards is empty and the runner has no reward-model stage yet; "
                "give the condition grpo.rewards (e.g. a rating model: {model: DIR, head: ...})"
            )
        return None

    return why

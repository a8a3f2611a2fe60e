"""The real stages: survey -> prefs -> reward -> train -> eval, each an in-process Python call.

Survey, prefs and reward are shared (content-addressed under ROOT/_shared, so cells and
experiments with equal inputs compute them once); train and eval belong to a cell. The reward
stage is for GRPO cells without their own `grpo.rewards`: a rating model trained on the
train fold of the raters gives them one head per trained-on group and dimension. Trainers are
passed in by the CLI (only the CLI imports jaxalign.algos): an algorithm without a trainer
blocks its cells instead of failing them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

from jaxalign.config import Config, DPORun, GRPORun, RewardConfig, project, to_dict
from jaxalign.config.flat import stable
from jaxalign.config.vocab import DIMENSIONS
from jaxalign.errors import DataError
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
    if cell.algorithm == "grpo":
        return dataclasses.replace(cfg, grpo=_grpo_section(cfg, prefs, ctx))
    return cfg


def _grpo_section(cfg: Config, prefs: Path, ctx: Context):
    """GRPO reads the prefs file's prompts (its train-split questions; validation ones are
    held out) and, unless the cell gives its own, the reward stage's rating-model heads."""
    changes: dict = {}
    if not cfg.grpo.prompts:
        changes["prompts"] = str(prefs)
    if not cfg.grpo.rewards and "reward" in ctx.upstream:
        changes["rewards"] = reward_specs(cfg, str(ctx.path("reward") / MODEL))
    return dataclasses.replace(cfg.grpo, **changes)


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


def _section(cfg: Config, name: str) -> dict:
    """A config section as stage keys hash it (`stable`: a key added later at its default
    leaves every stage key as it was)."""
    return stable(to_dict(getattr(cfg, name)), f"{name}.")


def _upstream(record: dict) -> dict:
    """What a later stage's key takes from an earlier one."""
    return {"key": record["key"], "output": record["output"]}


def _survey_inputs(cell: Cell, up: dict) -> dict:
    """The simulator's and the ratings reader's settings."""
    cfg = cell.config
    return {"simulate": _section(cfg, "simulate"), "ratings": _section(cfg, "ratings")}


def _survey(ctx: Context) -> str:
    """Simulate the survey into DIR/data."""
    from jaxalign.survey.simulate import write_simulation

    cfg = ctx.cell.config
    write_simulation(ctx.dir / "data", cfg.simulate, cfg.ratings, overwrite=True)
    return sha256_file(ctx.dir / "data" / "ratings.parquet")


def survey_run() -> Callable:
    """The real survey stage's function (preflight checks look for it among a runner's stages)."""
    return _survey


def _prefs_inputs(cell: Cell, up: dict) -> dict:
    """The survey's output and the prefs and ratings settings."""
    cfg = cell.config
    return {
        "survey": _upstream(up["survey"]),
        "prefs": _section(cfg, "prefs"),
        "ratings": _section(cfg, "ratings"),
    }


def _prefs(ctx: Context) -> str:
    """Build DIR/prefs.jsonl from the survey's ratings."""
    from jaxalign.prefs.build import build_prefs

    cfg = ctx.cell.config
    ratings = ctx.path("survey") / "data" / "ratings.parquet"
    manifest = build_prefs(ratings, ctx.dir / "prefs.jsonl", cfg.prefs, cfg.ratings, True)
    return manifest["output"]["sha256"]


MODEL = "model"  # the reward stage's rating model, inside its directory


def needs_reward(cell: Cell) -> bool:
    """A GRPO cell whose config gives no `grpo.rewards` (a user's rewards always win)."""
    return cell.algorithm == "grpo" and not cell.config.grpo.rewards


def reward_section(cfg: Config) -> RewardConfig:
    """The reward stage's settings: the cell's reward section with one head per trained-on
    group (prefs.groups) and dimension (the section's and prefs.dimensions), so the single-
    and multi-value cells of one survey share one model, learning from the raters the
    preferences keep (prefs.max_raters)."""
    want = set(cfg.reward.dimensions) | set(cfg.prefs.dimensions)
    dims = tuple(d for d in DIMENSIONS if d in want)
    p = cfg.prefs
    return dataclasses.replace(
        cfg.reward, groups=tuple(p.groups), dimensions=dims, max_raters=p.max_raters
    )


def reward_specs(cfg: Config, model_dir: str) -> tuple[dict, ...]:
    """`grpo.rewards` for the cell's objective: a head per prefs group and dimension, weighted
    as prefs.combine implies (weighted_sum: prefs.weights, default equal; pareto and concat:
    equal), the weights summing to 1. The `model` kind maps each head onto [0, 1] with higher
    better, so toxicity and stereotypical bias are turned round there."""
    p = cfg.prefs
    raw = {d: p.weights.get(d, 1.0) if p.combine == "weighted_sum" else 1.0 for d in p.dimensions}
    total = sum(raw.values()) * len(p.groups)
    if total <= 0:
        raise DataError(f"prefs.weights: {dict(p.weights)} must have a positive sum")
    return tuple(
        {"model": model_dir, "head": f"{g}/{d}", "weight": raw[d] / total}
        for g in p.groups
        for d in p.dimensions
    )


def _reward_inputs(cell: Cell, up: dict) -> dict:
    """The survey's output and the rating model's settings."""
    cfg = cell.config
    reward = stable(to_dict(reward_section(cfg)), "reward.")
    inputs = {"survey": _upstream(up["survey"]), "reward": reward}
    inputs["ratings"] = _section(cfg, "ratings")
    if cfg.reward.kind == "decoder":  # its backbone is the model section
        inputs["model"] = _section(cfg, "model")
    return inputs


def _reward(ctx: Context) -> str:
    """Train DIR/model on the survey's train fold; a judge-fold reward is refused first."""
    from jaxalign.eval.separation import JUDGE_FOLD, check_not_circular
    from jaxalign.rewards.run import train_model

    cfg = ctx.cell.config
    reward = reward_section(cfg)
    where = f"cell {ctx.cell.id} ({ctx.cell.label}): reward.fold={reward.fold}"
    check_not_circular(JUDGE_FOLD, {"fold": reward.fold}, "GRPO reward", where)
    ratings = ctx.path("survey") / "data" / "ratings.parquet"
    train_model(ratings, ctx.dir / MODEL, dataclasses.replace(cfg, reward=reward), True)
    return model_hash(ctx.dir / MODEL)


def model_hash(path: Path) -> str:
    """A hash of a rating model that does not depend on where it lives (model.json records
    the ratings' path; weights.npz is a zip with timestamps): its report, vocabulary, texts,
    head names and weight arrays."""
    import hashlib

    import numpy as np

    digest = hashlib.sha256()
    meta = json.loads((path / "model.json").read_text(encoding="utf-8"))
    digest.update(json.dumps(meta.get("heads"), sort_keys=True).encode())
    for name in ("report.json", "vocab.json", "texts.json"):
        if (path / name).is_file():
            digest.update(bytes.fromhex(sha256_file(path / name)))
    if (path / "weights.npz").is_file():
        with np.load(path / "weights.npz") as arrays:
            for key in sorted(arrays.files):
                digest.update(key.encode() + np.ascontiguousarray(arrays[key]).tobytes())
    return digest.hexdigest()


def _train_inputs(cell: Cell, up: dict) -> dict:
    """The preferences (and reward model) and the training run's sections (paths are
    placeholders)."""
    root = GRPORun if cell.algorithm == "grpo" else DPORun
    run = stable(to_dict(project(cell.config, root)))
    inputs = {"prefs": _upstream(up["prefs"]), "run": run, "algorithm": cell.algorithm}
    if "reward" in up:
        inputs["reward"] = _upstream(up["reward"])
    return inputs


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
        "eval": _section(cell.config, "eval"),
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
    records, gains = [], None
    if evaluator_name() == "behaviour":
        from jaxalign.eval.behaviour import evaluate_run

        path = Path(evaluate_run(cfg))
        results = json.loads(path.read_text(encoding="utf-8"))
        records += from_results(results)["records"]
        gains = results.get("reward_vs_judge")  # GRPO: reward gain beside judge gain
        others = [n for n in others if n not in ("behaviour", "generations")]
    found = run_all(EvalRun(cfg, **ctx.cell.eval_args), others) if others else []
    records += from_comparisons(found)["records"]
    out = {"evaluator": evaluator_name(), "records": records, "reward_vs_judge": gains}
    write_json(ctx.dir / "records.json", out)
    return sha256_file(ctx.dir / "records.json")


def real_stages(trainers: dict[str, Trainer]) -> list[Stage]:
    """survey, prefs, reward (shared; reward for GRPO cells without rewards), train, eval."""
    return [
        Stage("survey", _survey_inputs, _survey, shared=True),
        Stage("prefs", _prefs_inputs, _prefs, shared=True),
        Stage("reward", _reward_inputs, _reward, shared=True, applies=needs_reward),
        train_stage(trainers),
        Stage("eval", _eval_inputs, _eval),
    ]


def blocker(trainers: dict[str, Trainer]) -> Callable[[Cell], str | None]:
    """Why a cell cannot run yet (its algorithm has no trainer), or None. A GRPO cell without
    `grpo.rewards` is not blocked: the reward stage gives it a rating model's heads."""

    def why(cell: Cell) -> str | None:
        """The reason, naming what is missing."""
        if cell.algorithm not in trainers:
            return f"train.algorithm={cell.algorithm} is not available in this jaxalign yet"
        return None

    return why

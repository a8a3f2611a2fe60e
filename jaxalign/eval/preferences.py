"""The held-out preference evaluation as `jaxalign eval` reports it: base vs tuned.

Training computes it (`algos/dpo_eval.py::evaluate`) on the initial parameters (`base/...`)
and at every evaluation (`eval/...`); the run's results.json keeps the last of each, which is
what this evaluator reads (no model is loaded).
"""

from __future__ import annotations

import json

from jaxalign.eval.registry import Comparison, EvalRun, register

KEYS = ("rewards/accuracies", "logp_accuracy", "logp_accuracy_normalized")


@register("preferences")
def preferences(run: EvalRun) -> Comparison:
    """Held-out pair accuracies of the base and the tuned model, from results.json."""
    path = run.run_dir / "results.json"
    _check_run(run)
    results = json.loads(path.read_text())
    return Comparison(
        rows={
            key: (results[f"base/{key}"], results[f"eval/{key}"])
            for key in KEYS
            if f"eval/{key}" in results and f"base/{key}" in results
        }
    )


def _check_run(run: EvalRun) -> None:
    """Refuse a run that has no results yet, or was trained with another model.* / lora.*
    than this config names (as the evaluators that restore a checkpoint do)."""
    from jaxalign.config import to_dict
    from jaxalign.config.core import read_yaml
    from jaxalign.errors import DataError
    from jaxalign.train.run_dir import check_model

    saved, results = run.run_dir / "config.yaml", run.run_dir / "results.json"
    if not results.is_file():
        raise DataError(f"{results}: not found (train the run first)")
    if saved.is_file():
        check_model(read_yaml(saved), to_dict(run.cfg), run.run_dir)

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
    results = json.loads(path.read_text()) if path.exists() else {}
    return Comparison(
        rows={
            key: (results[f"base/{key}"], results[f"eval/{key}"])
            for key in KEYS
            if f"eval/{key}" in results and f"base/{key}" in results
        }
    )

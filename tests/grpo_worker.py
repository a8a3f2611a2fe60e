"""Train GRPO with a test reward in a fresh process: `python grpo_worker.py TOKENIZER OVERRIDE...`.

Prints one JSON line: the first learner step this process ran and the trace counts. Used by
tests/test_grpo_train.py for SIGKILL resume (the process really resumes, not restarts).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


class ShortReward:
    """A RewardSet double: shorter completions score higher (-characters / 50)."""

    names = ("short",)
    weights = np.ones(1, np.float32)

    def __call__(self, prompts, completions, **kw):
        return np.array([[-len(c) / 50.0] for c in completions], np.float32)


class NaNReward(ShortReward):
    """A RewardSet double that cannot score anything."""

    def __call__(self, prompts, completions, **kw):
        return np.full((len(completions), 1), np.nan, np.float32)


def overrides(tokenizer, run_dir, *extra) -> list[str]:
    """The tiny config on the test tokenizer, one device, synchronous saves, small batches."""
    return [
        f"model.tokenizer={tokenizer}",
        f"grpo.prompts={ROOT / 'configs/train/tiny_grpo_prompts.jsonl'}",
        f"train.run_dir={run_dir}",
        "train.async_checkpoints=false",
        "train.mesh_devices=1",
        "grpo.batch_size=8",
        "grpo.max_completion_len=16",
        *extra,
    ]


def grpo_config(tokenizer, run_dir, *extra):
    """configs/train/tiny_grpo.yaml with `overrides`."""
    from jaxalign.config import load_config

    return load_config(ROOT / "configs/train/tiny_grpo.yaml", overrides(tokenizer, run_dir, *extra))


def main(argv: list[str]) -> None:
    """Train as the arguments say; print the first step run and the trace counts."""
    from jaxalign.algos.dpo import meta_of
    from jaxalign.algos.grpo import build_algorithm
    from jaxalign.config import GRPORun, project
    from jaxalign.train.session import fit

    cfg = project(grpo_config(argv[0], argv[1], *argv[2:]), GRPORun)
    algo = build_algorithm(cfg, ShortReward())
    seen, step = [], algo.step

    def spy(state, host):
        seen.append(host["step"])
        return step(state, host)

    algo.step = spy
    fit(cfg.train, cfg, algo, meta_of(cfg), progress=False)
    print(json.dumps({"first": seen[0] if seen else None, "traces": dict(algo.traces)}))


if __name__ == "__main__":
    main(sys.argv[1:])

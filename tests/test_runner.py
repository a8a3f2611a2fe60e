"""A toy algorithm (least squares) on the shared runner: how a new algorithm plugs in."""

from __future__ import annotations

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxalign.config import TrainConfig, config_hash
from jaxalign.train.runner import Algorithm
from jaxalign.train.session import fit

TRUE_W = np.array([2.0, -1.0], np.float32)


@dataclasses.dataclass(frozen=True)
class ToyRun:
    """The toy's config root: the shared train section plus its own keys."""

    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    learning_rate: float = 0.1


class Batches:
    """Batch n is a pure function of n, so the iterator state is one index."""

    def __init__(self):
        self.n = 0

    def __next__(self) -> dict:
        self.n += 1
        x = np.random.default_rng(self.n).normal(size=(16, 2)).astype(np.float32)
        return {"x": x, "y": x @ TRUE_W}

    def get_state(self) -> dict:
        return {"n": self.n}

    def set_state(self, state: dict) -> None:
        self.n = state["n"]


def toy(cfg: ToyRun) -> Algorithm:
    """Wire data, state, a jitted step and an evaluation into an `Algorithm`."""
    tx = optax.sgd(cfg.learning_rate)
    params = {"w": jnp.zeros(2)}
    state = {"params": params, "opt_state": tx.init(params), "step": jnp.zeros((), jnp.int32)}

    def loss(params, batch):
        return jnp.mean((batch["x"] @ params["w"] - batch["y"]) ** 2)

    @jax.jit
    def step(state, batch):
        value, grads = jax.value_and_grad(loss)(state["params"], batch)
        updates, opt_state = tx.update(grads, state["opt_state"])
        params = optax.apply_updates(state["params"], updates)
        return {"params": params, "opt_state": opt_state, "step": state["step"] + 1}, {
            "loss": value
        }

    def evaluate(params) -> dict:
        return {"eval/error": float(jnp.abs(params["w"] - TRUE_W).max())}

    return Algorithm(state=state, step=step, batches=Batches(), evaluate=evaluate)


def run(cfg: ToyRun, **kw) -> dict:
    """What an algorithm's `train` entry point is: wiring, then the shared `fit`."""
    return fit(cfg.train, cfg, toy(cfg), {"run_id": config_hash(cfg)}, progress=False, **kw)


def test_toy_algorithm_trains_checkpoints_and_resumes(tmp_path):
    train = TrainConfig(
        run_dir=str(tmp_path / "a"), steps=40, eval_every=20, checkpoint_every=10,
        best_metric="", async_checkpoints=False,
    )  # fmt: skip
    whole = run(ToyRun(train=train))
    assert whole["base/error"] == 2.0 and whole["eval/error"] < 0.01
    half = dataclasses.replace(train, run_dir=str(tmp_path / "b"), steps=20)
    run(ToyRun(train=half))
    resumed = run(ToyRun(train=dataclasses.replace(half, steps=40)), allow=("train.steps",))
    assert resumed["eval/error"] == whole["eval/error"]
    steps = [json.loads(r)["step"] for r in (tmp_path / "b" / "metrics.jsonl").open()]
    assert steps == [0, *range(1, 21), 20, *range(21, 41), 40]  # train rows + eval rows


def test_ctrl_c_stops_after_the_step_in_flight_and_resumes(tmp_path):
    import os
    import signal

    import pytest

    from jaxalign.checkpoint import Checkpoints

    train = TrainConfig(
        run_dir=str(tmp_path / "a"), steps=6, eval_every=100, checkpoint_every=1,
        best_metric="", async_checkpoints=False,
    )  # fmt: skip
    cfg = ToyRun(train=train)
    algo = toy(cfg)
    inner = algo.step

    def step(state, batch):  # Ctrl-C arrives while step 3 runs
        if int(state["step"]) == 2:
            os.kill(os.getpid(), signal.SIGINT)
        return inner(state, batch)

    algo.step = step
    with pytest.raises(KeyboardInterrupt):
        fit(cfg.train, cfg, algo, {"run_id": config_hash(cfg)}, progress=False)
    # step 3 finished and was checkpointed (a cut-off step would leave 2); step 4 never ran
    checkpoints = Checkpoints(tmp_path / "a", create=False)
    assert checkpoints.steps()[-1] == 3
    checkpoints.close()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored
    resumed = run(cfg)
    whole = run(ToyRun(train=dataclasses.replace(train, run_dir=str(tmp_path / "b"))))
    assert resumed["eval/error"] == whole["eval/error"]

"""GRPO wiring for the shared runner: prompts, rollouts, rewards, advantages, learner steps.

Group Relative Policy Optimization (Shao et al., arXiv:2402.03300) with TRL 1.16's loss
types and conventions (`jaxalign.losses.grpo`). One runner step is one learner step; rollout
r happens at the first of its `steps_per_rollout x num_iterations` inner steps, with the
parameters of that moment. From a script: `algo = build_algorithm(config)` then
`jaxalign.train.session.fit(...)`, or `train(config)`.
"""

from __future__ import annotations

import functools
import logging
from collections import Counter
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from jaxalign.algos import grpo_eval
from jaxalign.algos import grpo_rollout as ro
from jaxalign.algos.dpo import mesh_of, meta_of
from jaxalign.algos.dpo_eval import _put, step_flops
from jaxalign.config import Config, GRPORun, project
from jaxalign.data.chat import pad_id
from jaxalign.errors import ConfigError, JaxalignError
from jaxalign.losses import group_advantages
from jaxalign.models.sampler import bucket
from jaxalign.models.spec import build_model
from jaxalign.train.dpo import frozen_reference
from jaxalign.train.grpo import make_grpo_rollout, make_learner_step, make_logps_fn
from jaxalign.train.optim import make_optimizer, make_schedule, update_count
from jaxalign.train.runner import Algorithm
from jaxalign.train.session import fit
from jaxalign.train.state import init_state

log = logging.getLogger("jaxalign")


@dataclass
class GRPOAlgorithm(Algorithm):
    """An `Algorithm` that also shows its trace counts (rollout, logps, learner) and parts."""

    traces: Counter = field(default_factory=Counter)
    parts: object = None


class Rollouts:
    """The runner's batch source: learner-step positions and the current rollout buffer."""

    def __init__(self, inner: int):
        self.position, self.inner, self.buffer = 0, inner, None

    def __iter__(self):
        return self

    def __next__(self) -> dict:
        n = self.position
        self.position += 1
        return {"step": n, "rollout": n // self.inner, "inner": n % self.inner}

    def get_state(self) -> dict:
        """The position, and the buffer when a rollout is only partly learned from."""
        mid = self.position % self.inner != 0
        return {"position": self.position, "buffer": ro.encode_buffer(self.buffer if mid else None)}

    def set_state(self, state: dict) -> None:
        """Resume at a saved position (with its rollout buffer)."""
        self.position = int(state["position"])
        self.buffer = ro.decode_buffer(state.get("buffer"))


@dataclass
class Parts:
    """What a rollout needs: config, mesh, tokenizer, prompts, rewards and compiled functions."""

    cfg: GRPORun
    mesh: object
    tokenizer: object
    prompts: list
    prompt_ids: list
    width: int
    eos: tuple
    pad: int
    rewards: object
    rollout_fn: object
    logps_fn: object
    ref_params: object
    traces: Counter
    learner_flops: float = 0.0  # one learner step's forward + backward (dpo_eval.step_flops)


def reward_set(g, rewards=None):
    """The run's `RewardSet` (built from grpo.rewards unless one is given, e.g. by a test)."""
    if rewards is not None:
        return rewards
    if not g.rewards:
        raise ConfigError(
            "grpo.rewards: at least one reward is required, e.g. "
            "[{builtin: length, args: {target: 20}}]"
        )
    try:
        from jaxalign.rewards.functions import build_rewards, check_reward_specs
    except ImportError:
        raise JaxalignError("grpo.rewards: jaxalign.rewards.functions is not installed") from None
    check_reward_specs(tuple(g.rewards), key="grpo.rewards")
    return build_rewards(tuple(g.rewards), reasoning=dict(g.reasoning) or None)


def check_rows(cfg: GRPORun, mesh) -> None:
    """A learner step's rows must split evenly over the data axes (one process for now)."""
    if jax.process_count() > 1:
        raise JaxalignError(
            "train.algorithm=grpo runs in one process for now (rollouts are global)"
        )
    axes = int(mesh.shape["data"] * mesh.shape["fsdp"])
    if cfg.grpo.batch_size % axes:
        raise ConfigError(
            f"grpo.batch_size: {cfg.grpo.batch_size} rows do not split over the {axes} "
            f"devices of the data axes (train.mesh_data x train.mesh_fsdp); use a multiple"
        )


def stop_tokens(tokenizer, model) -> tuple[int, ...]:
    """The EOS ids completions stop at; a tokenizer without an EOS token is refused."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        raise ConfigError(
            "model.tokenizer: the tokenizer has no EOS token, so completions could never end; "
            "GRPO needs one (set eos_token in its tokenizer_config.json)"
        )
    return tuple(dict.fromkeys([int(eos), *model.config.eos_token_id]))


def prompt_width(cfg: GRPORun, ids: list, cut: int, model) -> int:
    """One prompt width per run (bucketed); prompt + completion must fit the model."""
    g = cfg.grpo
    width = min(bucket(max(len(x) for x in ids)), g.max_prompt_len)
    limit = model.config.max_position_embeddings
    if width + g.max_completion_len > limit:
        raise ConfigError(
            f"grpo.max_completion_len: {g.max_completion_len} + prompt width {width} is beyond "
            f"the model's {limit} positions; lower grpo.max_completion_len or grpo.max_prompt_len"
        )
    if cut:
        log.warning("%s: %d prompts cut to grpo.max_prompt_len=%d", g.prompts, cut, width)
    return width


def minibatch(buffer: dict, j: int, rows: int, keys=ro.ARRAYS) -> dict:
    """Rows `j*rows .. (j+1)*rows` of the buffer's arrays."""
    return {k: buffer[k][j * rows : (j + 1) * rows] for k in keys if k in buffer}


def all_logps(parts: Parts, params, rows: dict) -> np.ndarray:
    """Completion log-probs [N, C] of a rollout, one learner-sized batch at a time."""
    b, n = parts.cfg.grpo.batch_size, len(rows["tokens"])
    keys = ("tokens", "segment_ids", "start", "mask")
    out = [
        np.asarray(parts.logps_fn(params, _put(parts.mesh, minibatch(rows, j, b, keys))))
        for j in range(n // b)
    ]
    return np.concatenate(out).astype(np.float32)


def score(parts: Parts, idx, toks, cmask, r: int):
    """(advantages [N], reward metrics) of one rollout's completions."""
    g = parts.cfg.grpo
    texts = ro.decode(parts.tokenizer, toks, cmask, parts.eos)
    prompts = [ro.prompt_text(parts.prompts[i]) for i in idx for _ in range(g.num_generations)]
    rewards = np.asarray(parts.rewards(prompts, texts), np.float32)
    if rewards.shape != (len(texts), len(parts.rewards.names)):
        raise JaxalignError(
            f"grpo.rewards: rewards of shape {rewards.shape}; expected "
            f"{(len(texts), len(parts.rewards.names))}"
        )
    ro.warn_unscorable(rewards, r)
    adv, metrics = group_advantages(
        rewards,
        np.asarray(parts.rewards.weights, np.float32),
        g.num_generations,
        scale=g.scale_rewards,
        aggregation=g.aggregation,
        reward_names=tuple(parts.rewards.names),
    )
    return np.asarray(adv, np.float32), {k: float(v) for k, v in metrics.items()}


def rollout(parts: Parts, params, r: int) -> dict:
    """Rollout r: sample, score, advantages, old/reference log-probs -> the buffer."""
    g, timer = parts.cfg.grpo, ro.Timer()
    per = g.batch_size * g.steps_per_rollout // g.num_generations
    idx = ro.prompt_indices(len(parts.prompts), per, r, g.seed)
    ptoks, pvalid = ro.left_padded([parts.prompt_ids[i] for i in idx], parts.width, parts.pad)
    key = jax.random.fold_in(jax.random.key(g.seed), r)
    toks, _, cmask = parts.rollout_fn(
        params, ptoks, pvalid, key, jnp.float32(g.temperature), jnp.float32(g.top_p)
    )
    toks, cmask = np.asarray(toks), np.asarray(cmask)
    seconds = {"perf/rollout_seconds": timer.lap()}
    adv, metrics = score(parts, idx, toks, cmask, r)
    seconds["perf/reward_seconds"] = timer.lap()
    rep = lambda x: np.repeat(x, g.num_generations, axis=0)  # noqa: E731
    rows, ended = ro.learner_rows(
        rep(ptoks), rep(pvalid), toks, cmask, parts.eos, g.mask_truncated_completions, parts.pad
    )
    rows["advantages"] = adv
    if g.steps_per_rollout * g.num_iterations > 1:
        rows["old_logps"] = all_logps(parts, params, rows)
    if parts.ref_params is not None:
        rows["ref_logps"] = all_logps(parts, parts.ref_params, rows)
    seconds["perf/logps_seconds"] = timer.lap()
    seconds["perf/rollout_tokens_per_second"] = float(cmask.sum()) / seconds["perf/rollout_seconds"]
    metrics.update(ro.completion_metrics(cmask, ended), **seconds)
    return {**rows, "metrics": metrics, "rollout": r}


def learner_perf(parts: Parts, seconds: float) -> dict[str, float]:
    """The learner's own time, throughput and MFU (rollout and rewards left out)."""
    rate = parts.learner_flops / max(seconds, 1e-9)
    out = {"perf/learner_seconds": seconds, "perf/learner_tflops_per_second": rate / 1e12}
    peak = parts.cfg.train.peak_tflops
    if peak > 0:
        out["perf/learner_mfu"] = rate / (peak * 1e12 * jax.device_count())
    return out


def make_step(parts: Parts, rollouts: Rollouts, learner):
    """(state, host) -> (state, metrics): a rollout at each rollout's first inner step."""
    g = parts.cfg.grpo

    def step(state, host):
        if host["inner"] == 0:
            rollouts.buffer = rollout(parts, state["params"], host["rollout"])
        buf = rollouts.buffer
        if buf is None or buf["rollout"] != host["rollout"]:
            raise JaxalignError(
                f"step {host['step']}: the checkpoint holds no buffer for rollout "
                f"{host['rollout']}; it cannot be resumed exactly"
            )
        timer = ro.Timer()
        rows = minibatch(buf, host["inner"] % g.steps_per_rollout, g.batch_size)
        state, metrics = learner(state, _put(parts.mesh, rows))
        jax.block_until_ready(metrics["loss"])  # rollouts sync every step anyway
        return state, {**metrics, **buf["metrics"], **learner_perf(parts, timer.lap())}

    return step


def build_parts(cfg: GRPORun, rewards=None):
    """(parts, graphdef, params, evaluate): everything validated before anything is written."""
    g = cfg.grpo
    mesh = mesh_of(cfg)
    check_rows(cfg, mesh)
    rewards = reward_set(g, rewards)
    prompts = ro.read_prompts(g.prompts)
    held_out = ro.read_prompts(g.prompts, "validation")
    model, tokenizer = build_model(cfg.model, mesh)
    eos, pad = stop_tokens(tokenizer, model), pad_id(tokenizer)
    kwargs = dict(g.chat_template_kwargs)
    ids, cut = ro.encode_prompts(prompts + held_out, tokenizer, g.max_prompt_len, kwargs)
    width = prompt_width(cfg, ids, cut, model)
    ids, held_out_ids = ids[: len(prompts)], ids[len(prompts) :]
    graphdef, params = nnx.split(model)
    traces: Counter = Counter()
    rollout_fn = make_grpo_rollout(graphdef, g, eos, pad, model.dtype, traces)
    ref = frozen_reference(params, model.dtype) if g.beta > 0 else None
    logps_fn = make_logps_fn(graphdef, g, traces)
    parts = Parts(
        cfg, mesh, tokenizer, prompts, ids, width, eos, pad, rewards, rollout_fn, logps_fn, ref,
        traces, step_flops(model, g.batch_size, width + g.max_completion_len, False)["total"],
    )  # fmt: skip
    evaluate = grpo_eval.make_evaluate(parts, graphdef, held_out, held_out_ids, model.dtype)
    return parts, graphdef, params, evaluate


def setup(cfg: GRPORun, rewards=None) -> GRPOAlgorithm:
    """Everything a GRPO run needs, validated, before anything is written to the run directory."""
    parts, graphdef, params, evaluate = build_parts(cfg, rewards)
    g = cfg.grpo
    tx = make_optimizer(cfg.optim, update_count(cfg.optim, cfg.train.steps))
    state, shardings = init_state(params, tx, parts.mesh)
    rollouts = Rollouts(g.steps_per_rollout * g.num_iterations)
    learner = make_learner_step(graphdef, tx, g, shardings, parts.traces)
    schedule = make_schedule(cfg.optim, update_count(cfg.optim, cfg.train.steps))
    tokens = float(g.batch_size * (parts.width + g.max_completion_len))
    return GRPOAlgorithm(
        state=state,
        step=make_step(parts, rollouts, learner),
        batches=rollouts,
        evaluate=evaluate,
        describe=functools.partial(lambda t, host: {"tokens": t}, tokens),
        extras=lambda step: {"learning_rate": float(schedule((step - 1) // cfg.optim.grad_accum))},
        progress={"loss": "train/loss", "reward": "train/reward"},
        stats={
            "data/train/prompts": float(len(parts.prompts)),
            "data/validation/prompts": float(grpo_eval.count(evaluate)),
            "data/prompt_width": float(parts.width),
        },
        traces=parts.traces,
        parts=parts,
    )


def refuse_unsupported(cfg: Config) -> None:
    """Sections GRPO does not read yet are refused rather than silently ignored."""
    lora = getattr(cfg, "lora", None)
    if lora is not None and getattr(lora, "enabled", False):
        raise ConfigError("lora.enabled: LoRA is not supported with train.algorithm=grpo yet")


def build_algorithm(config: Config | GRPORun, rewards=None) -> GRPOAlgorithm:
    """The GRPO `Algorithm` of a config (for scripts and benchmarks; nothing is written)."""
    if isinstance(config, Config):
        refuse_unsupported(config)
    return setup(project(config, GRPORun) if isinstance(config, Config) else config, rewards)


def train(cfg: Config | GRPORun, progress: bool = True, allow_changes=(), rewards=None) -> dict:
    """Run or resume GRPO training; returns the last logged metrics and evaluations.

    `rewards`: a `RewardSet` to use instead of building one from `grpo.rewards`.
    """
    if isinstance(cfg, Config):
        refuse_unsupported(cfg)
    run = project(cfg, GRPORun) if isinstance(cfg, Config) else cfg
    algo = setup(run, rewards)
    return fit(run.train, run, algo, meta_of(run), allow_changes, progress)

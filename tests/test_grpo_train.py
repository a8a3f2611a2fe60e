"""GRPO end to end on a tiny model: learning, determinism, exact mid-rollout resume, no
recompiles, sharding, bad inputs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from grpo_worker import NaNReward, ShortReward, grpo_config, overrides
from test_train import final_params

from jaxalign.algos.grpo import build_algorithm, rollout, train
from jaxalign.cli import main
from jaxalign.errors import ConfigError, DataError

ROOT = Path(__file__).resolve().parent.parent
TINY = str(ROOT / "configs/train/tiny_grpo.yaml")


def rows(run_dir) -> list[dict]:
    """metrics.jsonl without timings (perf/*)."""
    text = (Path(run_dir) / "metrics.jsonl").read_text()
    return [
        {k: v for k, v in json.loads(line).items() if not k.startswith("perf/")}
        for line in text.splitlines()
    ]


@pytest.fixture(scope="module")
def learned(tiny_tokenizer, tmp_path_factory):
    """Two identical 12-step runs of the tiny config with its own programmatic rewards."""
    root = tmp_path_factory.mktemp("grpo")
    extra = ("train.steps=12", "train.checkpoint_every=6")
    train(grpo_config(tiny_tokenizer, root / "a", *extra), progress=False)
    # the same run through the CLI (train.algorithm=grpo comes from the config file)
    code = main(["train", "--config", TINY, *overrides(tiny_tokenizer, root / "b", *extra)])
    assert code == 0
    return root


@pytest.mark.slow
def test_tiny_config_raises_its_reward(learned):
    # the config's builtin rewards: short (-|chars - 8| / 8) and no_the (1 without "the")
    short = [r["train/rewards/short/mean"] for r in rows(learned / "a") if "train/loss" in r]
    assert len(short) == 12
    assert np.mean(short[-3:]) > np.mean(short[:3]) + 0.3, short
    # held-out greedy replies to the 8 validation prompts, on the base and the tuned model
    first, last = rows(learned / "a")[0], rows(learned / "a")[-1]
    assert first["data/validation/prompts"] == 8 and first["data/train/prompts"] == 64
    for name in ("reward", "rewards/short/mean", "rewards/no_the/mean", "completions/mean_length"):
        assert np.isfinite(first[f"base/{name}"]) and np.isfinite(last[f"eval/{name}"])
    keys = rows(learned / "a")[1].keys()
    for name in (
        "train/loss",
        "train/reward",
        "train/reward_std",
        "train/frac_reward_zero_std",
        "train/rewards/short/std",
        "train/rewards/no_the/mean",
        "train/completions/mean_length",
        "train/completions/clipped_ratio",
        "train/entropy",
        "train/clip_ratio/region_mean",
    ):
        assert name in keys, name


@pytest.mark.slow
def test_two_runs_are_bitwise_identical(learned):
    # run a came through the Python API, run b through `jaxalign train`
    assert rows(learned / "a") == rows(learned / "b")
    a, b = final_params(learned / "a"), final_params(learned / "b")
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


# Non-default options all along: mu = 2 with two learner steps per rollout (old log-probs),
# a reference (beta > 0), TRL's grpo loss at sequence level, batch-scaled rewards, top-k/p.
RESUME = [
    "train.steps=12",
    "train.checkpoint_every=2",
    "train.keep_checkpoints=10",
    "grpo.steps_per_rollout=2",
    "grpo.num_iterations=2",
    "grpo.beta=0.04",
    "grpo.loss_type=grpo",
    "grpo.importance_sampling_level=sequence",
    "grpo.scale_rewards=batch",
    "grpo.top_k=50",
    "grpo.top_p=0.95",
    "grpo.temperature=0.9",
]


def _worker(tok, run_dir, **popen):
    """The GRPO worker process on `run_dir` (see tests/grpo_worker.py)."""
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=1"}
    cmd = [sys.executable, str(ROOT / "tests/grpo_worker.py"), str(tok), str(run_dir), *RESUME]
    return subprocess.Popen(cmd, env=env, cwd=ROOT / "tests", text=True, **popen)


def _report(proc) -> dict:
    """The worker's JSON line (after it exits 0)."""
    out, err = proc.communicate(timeout=600)
    assert proc.returncode == 0, err[-3000:]
    return json.loads(out.strip().splitlines()[-1])


@pytest.mark.slow
def test_sigkill_mid_rollout_resume_matches_uninterrupted(tiny_tokenizer, tmp_path):
    whole = _report(_worker(tiny_tokenizer, tmp_path / "whole", stdout=-1, stderr=-1))
    # three rollouts of four inner steps: each function traced once, never again
    assert whole == {"first": 0, "traces": {"rollout": 1, "logps": 1, "learner": 1}}
    killed = _worker(
        tiny_tokenizer, tmp_path / "killed", stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    ckpts = tmp_path / "killed" / "checkpoints"
    deadline = time.time() + 400
    while time.time() < deadline and not (ckpts.exists() and (ckpts / "6").is_dir()):
        time.sleep(0.02)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    done = sorted(int(p.name) for p in ckpts.iterdir() if p.name.isdigit())
    assert done and done[-1] < 12 and done[-1] % 4 == 2, done  # killed mid-rollout
    resumed = _report(_worker(tiny_tokenizer, tmp_path / "killed", stdout=-1, stderr=-1))
    assert resumed["first"] == done[-1]  # really resumed from the checkpoint, not restarted
    assert rows(tmp_path / "whole") == rows(tmp_path / "killed")
    a, b = final_params(tmp_path / "whole"), final_params(tmp_path / "killed")
    assert all(np.array_equal(a[k], b[k]) for k in a)


def _fixed_rollout_losses(tok, run_dir, buffer, *mesh):
    """Losses of three learner steps on one fixed rollout buffer (no sampling)."""
    cfg = grpo_config(
        tok, run_dir, "grpo.num_iterations=4", "grpo.beta=0.04", "grpo.loss_type=bnpo", *mesh
    )
    algo = build_algorithm(cfg, ShortReward())
    if buffer is None:
        buffer = rollout(algo.parts, algo.state["params"], 0)
    algo.batches.buffer = buffer
    state, losses = algo.state, []
    for inner in (1, 2, 3):
        state, metrics = algo.step(state, {"step": inner, "rollout": 0, "inner": inner})
        losses.append(float(metrics["loss"]))
    return buffer, losses


@pytest.mark.slow
def test_eight_devices_match_one_on_fixed_rollouts(tiny_tokenizer, tmp_path):
    buffer, one = _fixed_rollout_losses(tiny_tokenizer, tmp_path / "one", None)
    _, eight = _fixed_rollout_losses(
        tiny_tokenizer,
        tmp_path / "eight",
        buffer,
        "train.mesh_devices=0",
        "train.mesh_data=2",
        "train.mesh_fsdp=2",
        "train.mesh_tensor=2",
    )
    assert np.allclose(one, eight, atol=1e-5), (one, eight)
    assert len(set(one)) == 3  # the steps really learned (ratios moved off 1)


def test_bad_config_values_are_one_line_usage_errors(capsys, tmp_path):
    run = tmp_path / "run"
    for override, needle in (
        ("grpo.num_generations=1", "grpo.num_generations: 1 is out of range"),
        ("grpo.batch_size=10", "not a multiple of num_generations"),
        ("grpo.loss_type=ppo", "expected one of 'grpo', 'bnpo'"),
        ("grpo.beta=0.1", "needs a reference model"),
        ("grpo.temperature=0", "grpo.temperature: 0.0 is out of range"),
        ("grpo.rewards=[{builtin: nope}]", "grpo.rewards[0].builtin: unknown 'nope' (one of"),
        ("grpo.reasoning={close: ''}", "grpo.reasoning.close: must be a non-empty string"),
        ("lora.rank=8", "lora.enabled: LoRA is not supported with train.algorithm=grpo"),
    ):
        extra = ["grpo.reference=none"] if "beta" in override else []
        code = main(["train", "--config", TINY, f"train.run_dir={run}", override, *extra])
        err = capsys.readouterr().err
        assert code == 1 and needle in err and err.count("\n") == 1, err
    assert not run.exists()  # nothing written


def test_bad_inputs_before_training(tiny_tokenizer, tmp_path):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match="do not split over the 8 devices"):
        train(grpo_config(tiny_tokenizer, run, "train.mesh_devices=0", "grpo.batch_size=4",
                          "grpo.num_generations=2"), rewards=ShortReward())  # fmt: skip
    with pytest.raises(ConfigError, match=r"grpo.max_completion_len: 5000 \+ prompt width"):
        train(
            grpo_config(tiny_tokenizer, run, "grpo.max_completion_len=5000"), rewards=ShortReward()
        )
    with pytest.raises(ConfigError, match=r"grpo\.rewards: at least one reward"):
        train(grpo_config(tiny_tokenizer, run, "grpo.rewards=[]"))
    held_out = tmp_path / "held_out.jsonl"
    held_out.write_text(json.dumps({"prompt": "hi", "split": "validation"}) + "\n")
    with pytest.raises(DataError, match="no training prompts"):
        train(grpo_config(tiny_tokenizer, run, f"grpo.prompts={held_out}"), rewards=ShortReward())
    no_eos = tmp_path / "tok"
    no_eos.mkdir()
    for f in Path(tiny_tokenizer).iterdir():
        (no_eos / f.name).write_bytes(f.read_bytes())
    conf = json.loads((no_eos / "tokenizer_config.json").read_text())
    conf["eos_token"] = None
    (no_eos / "tokenizer_config.json").write_text(json.dumps(conf))
    with pytest.raises(ConfigError, match="the tokenizer has no EOS token"):
        train(grpo_config(no_eos, run), rewards=ShortReward())
    assert not run.exists()


@pytest.mark.slow
def test_unscorable_rollouts_get_zero_advantage_and_a_warning(tiny_tokenizer, tmp_path, caplog):
    results = train(
        grpo_config(tiny_tokenizer, tmp_path / "nan", "train.steps=1"),
        progress=False,
        rewards=NaNReward(),
    )
    assert results["train/frac_unscorable"] == 1.0 and results["train/loss"] == 0.0
    assert any("only NaN rewards" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_resume_with_a_changed_grpo_section_is_refused(learned, tiny_tokenizer):
    run = learned / "a"
    before = (run / "metrics.jsonl").read_text()
    cfg = grpo_config(tiny_tokenizer, run, "train.steps=12", "train.checkpoint_every=6",
                      "grpo.epsilon=0.3")  # fmt: skip
    with pytest.raises(ConfigError, match=r"grpo\.epsilon: 0\.2 -> 0\.3") as err:
        train(cfg, progress=False, rewards=ShortReward())
    assert "\n" not in str(err.value) and (run / "metrics.jsonl").read_text() == before


def test_rollout_rows_and_truncated_completions():
    from jaxalign.algos.grpo_rollout import completion_metrics, learner_rows

    ptoks, pvalid = np.array([[0, 5, 6], [7, 8, 9]]), np.array([[0, 1, 1], [1, 1, 1]])
    toks = np.array([[3, 2, 0, 0], [4, 4, 4, 4]])  # row 0 ends with EOS 2, row 1 is cut
    cmask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]])
    rows, ended = learner_rows(ptoks, pvalid, toks, cmask, (2,), mask_truncated=False, pad=1)
    assert ended.tolist() == [True, False]
    # right-padded: [prompt | completion | pad], each completion starting after its prompt
    assert rows["tokens"].tolist() == [[5, 6, 3, 2, 0, 0, 1], [7, 8, 9, 4, 4, 4, 4]]
    assert rows["segment_ids"].tolist() == [[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]]
    assert rows["start"].tolist() == [2, 3]
    assert rows["mask"].tolist() == cmask.tolist()
    masked, _ = learner_rows(ptoks, pvalid, toks, cmask, (2,), mask_truncated=True)
    assert masked["mask"].tolist() == [[1, 1, 0, 0], [0, 0, 0, 0]]
    m = completion_metrics(cmask, ended)
    assert m["completions/clipped_ratio"] == 0.5 and m["completions/mean_length"] == 3.0
    assert m["completions/mean_terminated_length"] == 2.0


def test_prompt_order_is_a_pure_function_of_seed_and_rollout():
    from jaxalign.algos.grpo_rollout import prompt_indices

    stream = np.concatenate([prompt_indices(5, 3, r, seed=1) for r in range(5)])
    assert sorted(stream[:5]) == list(range(5)) and sorted(stream[5:10]) == list(range(5))
    assert (prompt_indices(5, 3, 3, seed=1) == stream[9:12]).all()
    assert not (prompt_indices(5, 3, 0, seed=2) == stream[:3]).all()


def test_buffer_round_trips_exactly():
    from jaxalign.algos.grpo_rollout import decode_buffer, encode_buffer

    rng = np.random.default_rng(0)
    buf = {
        "tokens": rng.integers(0, 9, (4, 6)).astype(np.int32),
        "old_logps": rng.normal(size=(4, 3)).astype(np.float32),
        "metrics": {"reward": 0.25},
        "rollout": 3,
    }
    back = decode_buffer(json.loads(json.dumps(encode_buffer(buf))))
    assert back["rollout"] == 3 and back["metrics"] == {"reward": 0.25}
    for k in ("tokens", "old_logps"):
        assert back[k].dtype == buf[k].dtype and np.array_equal(back[k], buf[k])


def test_grpo_run_id_hashes_the_grpo_section_only(capsys):
    from jaxalign.config import GRPORun, load_config, project
    from jaxalign.train.run_dir import run_id as run_id_of

    def run_id(*overrides):
        return run_id_of(project(load_config(TINY, list(overrides)), GRPORun))

    assert run_id() != run_id("grpo.beta=0.04")
    assert run_id() == run_id("dpo.beta=0.5") == run_id("data.batch_size=2")
    assert main(["config", "show", "--config", TINY]) == 0
    assert f"train run id: {run_id()}" in capsys.readouterr().out


def test_prompts_from_both_file_kinds_and_template_kwargs(tmp_path):
    from conftest import write_learnable_prefs

    from jaxalign.algos.grpo_rollout import encode_prompts, prompt_text, read_prompts

    prefs = read_prompts(str(write_learnable_prefs(tmp_path / "prefs.jsonl")))
    assert len(prefs) == 36 and len(set(prefs)) == 36  # 9 training topics x 4, each once
    plain = tmp_path / "plain.jsonl"
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}]
    plain.write_text(json.dumps({"prompt": "Hello?"}) + "\n" + json.dumps({"prompt": chat}) + "\n")
    prompts = read_prompts(str(plain))
    assert [prompt_text(p) for p in prompts] == ["Hello?", "Hi?"]

    class Tok:
        """Records the chat-template kwargs; one token per character."""

        def apply_chat_template(self, messages, **kw):
            self.kw = kw
            return "".join(m["content"] for m in messages)

        def __call__(self, text, add_special_tokens):
            return {"input_ids": [ord(c) for c in text]}

    tok = Tok()
    ids, cut = encode_prompts(prompts, tok, 5, {"enable_thinking": False})
    assert tok.kw["enable_thinking"] is False and tok.kw["add_generation_prompt"] is True
    assert ids[0] == [ord(c) for c in "ello?"]  # longer prompts keep their end
    assert cut == 2 and ids[1] == [ord(c) for c in "f.Hi?"]


def test_completion_logps_read_each_row_from_its_own_start():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    from jaxalign.config import GRPOConfig
    from jaxalign.models.config import ModelConfig
    from jaxalign.models.decoder import Decoder
    from jaxalign.train.grpo import completion_logps

    cfg = ModelConfig(
        family="llama", vocab_size=50, hidden_size=16, intermediate_size=32, num_layers=1,
        num_heads=2, num_kv_heads=1, head_dim=8,
    )  # fmt: skip
    model = Decoder(cfg, rngs=nnx.Rngs(1))
    seqs = [[4, 5, 6, 7, 8, 9], [10, 11, 12, 13]]  # prompts of 2 and 3 tokens, replies of 4 / 1
    tokens = np.zeros((2, 7), np.int32)
    for i, s in enumerate(seqs):
        tokens[i, : len(s)] = s
    rows = {
        "tokens": jnp.asarray(tokens),
        "start": jnp.asarray([2, 3]),
        "mask": jnp.asarray([[1, 1, 1, 1], [1, 0, 0, 0]], jnp.float32),
    }
    got, entropy = completion_logps(model, rows, GRPOConfig(temperature=0.5), entropy=True)
    for i, s in enumerate(seqs):
        logp = jax.nn.log_softmax(model(jnp.asarray([s]))[0] / 0.5, axis=-1)
        start = int(rows["start"][i])
        want = [float(logp[start + j - 1, s[start + j]]) for j in range(len(s) - start)]
        assert np.allclose(np.asarray(got[i, : len(want)]), want, atol=1e-5)
    assert entropy.shape == (2, 4) and bool((entropy > 0).all())

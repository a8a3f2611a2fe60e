"""Time a GRPO step of TRL's `GRPOTrainer` beside jaxalign's, on the same weights, in one run.

Usage: python scripts/bench_grpo.py --trl-python /tmp/trlenv/bin/python \
           [--hf-dir DIR | --random-like TOKENIZER_DIR [--tiny]] [--prompts 4] [--generations 4] \
           [--new-tokens 32] [--steps 2] [--warmup 1] [--write docs/BENCHMARKS.md --section NAME]

Both sides load one HF directory (weights + tokenizer): by default SmolLM2-135M-Instruct
exported from the bundled GGUF (`jaxalign model export`, fp32, made once into --hf-dir);
with --random-like, a randomly initialised SmolLM2-shaped Llama written by the TRL side with
that tokenizer (for machines without the GGUF). Same prompts (chat messages, rendered with the
tokenizer's template), G completions per prompt, --new-tokens new tokens at most, temperature
1, TRL's defaults for the loss (dapo, beta 0, one iteration: no old or reference log-probs)
and the same programmatic reward: -|words - target| / target (jaxalign's `length` builtin).
One step = one rollout of prompts x G completions + their rewards + one optimizer step.
Step time is wall time per step; rollout = generation (TRL: `_generate`, jaxalign: the jitted
sampler), reward = the reward call (TRL: `_calculate_rewards`), learner = step - rollout -
reward (log-probs, loss, backward, optimizer, host work) on both sides. Medians over --steps
steps after --warmup. TRL runs first, in its own interpreter (--trl-python), as a subprocess
of this script (`--trl-worker`); jaxalign's side needs `jaxalign.algos.grpo` and is skipped
with a message where that module is missing.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))

TOPICS = ("the sea", "a old clock", "a mountain village", "a robot", "winter", "a library",
          "a long journey", "the first day of school")  # fmt: skip


def prompts(n: int) -> list[str]:
    """n prompts asking for long answers (so completions rarely stop early on either side)."""
    return [f"Write a long, detailed story about {TOPICS[i % len(TOPICS)]}." for i in range(n)]


def length_reward(prompts, completions, target: int = 16, **kw) -> list[float]:
    """-|words - target| / target per completion (TRL's side of jaxalign's `length` builtin)."""
    texts = [c if isinstance(c, str) else "".join(m["content"] for m in c) for c in completions]
    return [-abs(len(t.split()) - target) / target for t in texts]


# ---------------------------------------------------------------- TRL side (its interpreter)


# (hidden, layers, heads, kv heads, ffn) of --random-like's model: SmolLM2-135M, or --tiny
RANDOM_SHAPES = {False: (576, 30, 9, 3, 1536), True: (64, 2, 4, 2, 128)}


def write_random_model(out: Path, tokenizer_dir: Path, seed: int, tiny: bool = False) -> None:
    """A SmolLM2-135M-shaped (or tiny) Llama with random weights and the tokenizer, as an HF dir."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    d, layers, heads, kv, ffn = RANDOM_SHAPES[tiny]
    cfg = LlamaConfig(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=kv, intermediate_size=ffn, vocab_size=len(tok),
                      tie_word_embeddings=True, max_position_embeddings=8192,
                      rms_norm_eps=1e-5, rope_theta=100000.0,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)  # fmt: skip
    torch.manual_seed(seed)
    LlamaForCausalLM(cfg).save_pretrained(out)
    tok.save_pretrained(out)


def trl_worker(a) -> dict:
    """Train --warmup + --steps GRPO steps with TRL and time their parts; returns the summary."""
    import datasets
    import torch
    import transformers
    import trl
    from transformers import TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    n = a.prompts * a.generations
    rows = [{"prompt": [{"role": "user", "content": p}]} for p in prompts(a.prompts)]
    ds = datasets.Dataset.from_list(rows)
    ends, parts, tokens = [], {"rollout": [], "reward": []}, []

    class Clock(TrainerCallback):
        """Wall time at the start of training and at the end of every optimizer step."""

        def on_train_begin(self, *args, **kw):
            ends.append(time.perf_counter())

        def on_step_end(self, *args, **kw):
            ends.append(time.perf_counter())

    def reward(prompts, completions, **kw):
        return length_reward(prompts, completions, a.target)

    with tempfile.TemporaryDirectory() as tmp:
        args = GRPOConfig(
            output_dir=tmp, per_device_train_batch_size=n, num_generations=a.generations,
            max_completion_length=a.new_tokens, max_steps=a.warmup + a.steps, learning_rate=1e-6,
            lr_scheduler_type="constant", warmup_steps=0, beta=0.0, loss_type="dapo",
            temperature=1.0, logging_steps=1, report_to=[], save_strategy="no", seed=a.seed,
            use_cpu=not torch.cuda.is_available(), bf16=a.dtype == "bf16", dataloader_num_workers=0,
            disable_tqdm=True,
        )  # fmt: skip
        trainer = GRPOTrainer(
            model=str(a.hf_dir),
            reward_funcs=reward,
            args=args,
            train_dataset=ds,
            callbacks=[Clock()],
        )
        timed(trainer, "_generate", parts["rollout"], tokens)
        timed(trainer, "_calculate_rewards", parts["reward"])
        trainer.train()
    steps = [e - s for s, e in itertools.pairwise(ends)][a.warmup :]
    rollout, rew = parts["rollout"][a.warmup :], parts["reward"][a.warmup :]
    return {
        "impl": f"TRL {trl.__version__} GRPOTrainer (transformers generate)",
        "versions": f"trl {trl.__version__}, torch {torch.__version__}, "
        f"transformers {transformers.__version__}, datasets {datasets.__version__}",
        **summary(steps, rollout, rew, tokens[a.warmup :], n),
    }


def timed(obj, name: str, into: list, tokens: list | None = None) -> None:
    """Wrap the bound method `name` of `obj` to append its wall time (and completion tokens)."""
    fn = getattr(obj, name)

    def wrapper(*args, **kw):
        t0 = time.perf_counter()
        out = fn(*args, **kw)
        into.append(time.perf_counter() - t0)
        if tokens is not None:  # _generate returns (prompt_ids, completion_ids, ...)
            tokens.append(sum(len(c) for c in out[1]))
        return out

    setattr(obj, name, wrapper)


def summary(steps, rollout, reward, tokens, n: int) -> dict:
    """Medians of step, rollout, reward and learner (= step - rollout - reward) seconds."""
    med = statistics.median
    learner = [s - r - w for s, r, w in zip(steps, rollout, reward)]
    return {
        "step_s": med(steps), "rollout_s": med(rollout), "reward_s": med(reward),
        "learner_s": med(learner), "rollout_tokens_per_s": sum(tokens) / sum(rollout),
        "mean_completion_len": sum(tokens) / len(tokens) / n, "steps": len(steps),
    }  # fmt: skip


# ---------------------------------------------------------------- jaxalign side


def jax_side(a) -> dict:
    """Time jaxalign's GRPO steps (build_algorithm, then the runner's step function)."""
    try:
        from jaxalign.algos.grpo import build_algorithm
    except ImportError as err:
        raise SystemExit(
            f"jaxalign GRPO trainer not available ({err}); merge branch grpo2"
        ) from err
    import jax

    from jaxalign.config import load_config

    with tempfile.TemporaryDirectory() as tmp:
        cfg = load_config(write_jax_config(a, Path(tmp)))
        algo = build_algorithm(cfg)
        state, steps, metrics = algo.state, [], []
        for _ in range(a.warmup + a.steps):
            t0 = time.perf_counter()
            state, m = algo.step(state, next(algo.batches))
            jax.block_until_ready(state)
            steps.append(time.perf_counter() - t0)
            metrics.append({k: float(v) for k, v in m.items() if k.startswith(("perf/", "compl"))})
    keep = metrics[a.warmup :]
    n = a.prompts * a.generations
    tokens = [m["perf/rollout_tokens_per_second"] * m["perf/rollout_seconds"] for m in keep]
    return {
        "impl": f"jaxalign GRPO ({jax.devices()[0].device_kind}, {a.dtype})",
        **summary(
            steps[a.warmup :],
            [m["perf/rollout_seconds"] for m in keep],
            [m["perf/reward_seconds"] for m in keep],
            tokens,
            n,
        ),
    }


def write_jax_config(a, tmp: Path) -> Path:
    """A run config for the bench shape and its prompts file."""
    import yaml

    (tmp / "prompts.jsonl").write_text(
        "".join(json.dumps({"prompt": p}) + "\n" for p in prompts(a.prompts))
    )
    cfg = {
        "model": {"path": str(a.hf_dir), "dtype": a.dtype},
        "grpo": {
            "prompts": str(tmp / "prompts.jsonl"),
            "num_generations": a.generations,
            "batch_size": a.prompts * a.generations,
            "max_completion_len": a.new_tokens,
            "loss_type": "dapo",
            "beta": 0.0,
            "temperature": 1.0,
            "seed": a.seed,
            "rewards": [{"builtin": "length", "args": {"target": a.target}}],
        },
        "optim": {"learning_rate": 1e-6, "warmup_steps": 0, "schedule": "constant"},
        "train": {
            "algorithm": "grpo",
            "run_dir": str(tmp / "run"),
            "steps": a.warmup + a.steps,
            "eval_every": 10**6,
            "checkpoint_every": 10**6,
            "best_metric": "",
        },
    }
    path = tmp / "bench_grpo.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


# ---------------------------------------------------------------- driver


def ensure_hf_dir(a) -> None:
    """Write --hf-dir once: SmolLM2 exported from the bundled GGUF, or random weights."""
    if (a.hf_dir / "config.json").is_file():
        return
    if a.random_like:  # torch writes it: the TRL interpreter, or this one on a GPU image
        cmd = [a.trl_python or sys.executable, __file__, "--make-random", f"--seed={a.seed}"]
        cmd += [f"--hf-dir={a.hf_dir}", f"--random-like={a.random_like}"]
        cmd += ["--tiny"] if a.tiny else []
    else:
        cmd = [sys.executable, "-m", "jaxalign", "model", "export", "--model", "smollm2"]
        cmd += ["--out", str(a.hf_dir)]
    subprocess.run(cmd, check=True)


def run_trl(a) -> dict | None:
    """The TRL side's summary from its own interpreter, or None (reason printed) if it fails."""
    if not a.trl_python:
        print("TRL side skipped: no --trl-python", file=sys.stderr)
        return None
    own = [f"--{k.replace('_', '-')}={v}" for k, v in vars(a).items() if k in WORKER_ARGS and v]
    done = subprocess.run(
        [a.trl_python, __file__, "--trl-worker", *own], capture_output=True, text=True
    )
    if done.returncode:
        print(f"TRL side failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    return json.loads(done.stdout.strip().splitlines()[-1])


WORKER_ARGS = ("hf_dir", "prompts", "generations", "new_tokens", "target",
               "steps", "warmup", "seed", "dtype")  # fmt: skip


def table(a, rows: list[dict], versions: str) -> str:
    """The BENCHMARKS.md section: how it was measured and one row per side."""
    from benchlib import commit, machine

    trl = next((r for r in rows if r["impl"].startswith("TRL")), None)
    weights = "random SmolLM2-135M-shaped Llama" if a.random_like else "SmolLM2-135M-Instruct"
    weights = "random tiny Llama (smoke run)" if a.tiny else weights
    lines = [
        f"## GRPO step: {weights}, {a.prompts} prompts x G={a.generations}, "
        f"{a.new_tokens} new tokens, {a.dtype}",
        "",
        f"Measured {datetime.date.today().isoformat()} at commit {commit()} with "
        f"`python scripts/bench_grpo.py {' '.join(sys.argv[1:])}` on "
        f"{machine(('jax', 'jaxlib', 'flax', 'optax'))}; TRL side: {versions or 'not run'}.",
        "Same HF weights and tokenizer, prompts, G, completion cap, temperature 1, loss "
        "(dapo, beta 0, one iteration) and reward (`length`, target "
        f"{a.target} words) on both sides; medians of {a.steps} steps after {a.warmup} "
        "warm-up. learner = step - rollout - reward. Rollout tokens/s: completion tokens "
        "generated per rollout second.",
        "",
        "| implementation | step s | rollout s | reward s | learner s | rollout tokens/s "
        "| mean completion | step vs TRL |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "step_s" not in r:
            lines.append(f"| {r['impl']} | - | - | - | - | - | - | - |")
            continue
        ratio = f"{trl['step_s'] / r['step_s']:.2f}x" if trl and "step_s" in trl else "-"
        lines.append(
            f"| {r['impl']} | {r['step_s']:.2f} | {r['rollout_s']:.2f} | {r['reward_s']:.4f} "
            f"| {r['learner_s']:.2f} | {r['rollout_tokens_per_s']:.1f} "
            f"| {r['mean_completion_len']:.1f} | {ratio} |"
        )
    return "\n".join(lines)


def parse(argv=None):
    """Command-line arguments."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trl-python", help="interpreter with trl + torch (TRL side skipped if unset)")
    ap.add_argument("--hf-dir", type=Path, default=Path(tempfile.gettempdir()) / "bench_grpo_hf")
    ap.add_argument("--random-like", type=Path, help="tokenizer dir: random SmolLM2-shape weights")
    ap.add_argument(
        "--tiny", action="store_true", help="with --random-like: a 2-layer 64-wide model"
    )
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--generations", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--target", type=int, default=16, help="length reward's target (words)")
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--skip-jax", action="store_true", help="time the TRL side only")
    ap.add_argument("--trl-worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--make-random", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--write", type=Path)
    ap.add_argument("--section", default="bench_grpo_cpu")
    return ap.parse_args(argv)


def main() -> None:
    """Run both sides and report."""
    a = parse()
    if a.trl_worker:  # in the TRL interpreter: nothing of jaxalign is imported
        print(json.dumps(trl_worker(a)))
        return
    if a.make_random:
        write_random_model(a.hf_dir, a.random_like, a.seed, a.tiny)
        return
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    from jaxalign.errors import JaxalignError

    ensure_hf_dir(a)
    rows, trl = [], run_trl(a)  # TRL first: jax would otherwise hold accelerator memory
    rows.append(trl or {"impl": "TRL GRPOTrainer (not run, see stderr)"})
    if a.skip_jax:
        rows.append({"impl": "jaxalign GRPO (skipped: --skip-jax)"})
    else:
        try:
            rows.append(jax_side(a))
        except (SystemExit, JaxalignError) as err:
            print(err, file=sys.stderr)
            rows.append({"impl": f"jaxalign GRPO (not run: {err})"})
    section = table(a, rows, (trl or {}).get("versions", ""))
    print(section)
    if a.write:
        from benchlib import write_section

        write_section(a.write, a.section, section)


if __name__ == "__main__":
    main()

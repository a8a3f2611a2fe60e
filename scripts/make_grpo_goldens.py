"""Write tests/golden/grpo_trl.json: GRPO losses, gradients and advantages from TRL's own code.

Run in an environment with TRL and torch (not needed by the tests):
    /tmp/trlenv/bin/python scripts/make_grpo_goldens.py

Losses: `GRPOTrainer._compute_loss` runs on a stand-in trainer (only the attributes it reads;
one process, no vLLM, no entropy mask or bonus) whose `_get_per_token_logps_and_entropies`
returns a float64 leaf tensor of log-probs, so d loss / d logp comes from torch autograd. The
batch has right padding and one truncated row (mask all zero, as `mask_truncated_completions`
leaves it). Grid: every loss type x token/sequence level x beta in {0, 0.04} x old log-probs
given or not, plus variants for epsilon_high, delta, the KL without bias correction, SAPO
temperatures, gradient accumulation and num_items_in_batch.

Advantages: the block of `_generate_and_score_completions` from `unscorable_mask = ...` to the
logging of `frac_reward_zero_std` is cut from TRL's source and executed as is (advantages and
the reward metrics), on rewards with NaN entries and all-NaN rows, for every scale x
aggregation TRL has.
"""

from __future__ import annotations

import inspect
import json
import textwrap
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from trl.trainer import utils as trl_utils
from trl.trainer.grpo_trainer import GRPOTrainer

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "grpo_trl.json"
LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo", "cispo", "sapo", "luspo", "vespo"]
B, T, MAX_LEN = 6, 7, 9
EXTRA = {  # name: (loss type, level, beta, old given, settings)
    "dapo_eps_high": ("dapo", "token", 0.04, True, {"epsilon_high": 0.28}),
    "grpo_delta": ("grpo", "token", 0.0, True, {"delta": 1.15}),
    "bnpo_delta_seq": ("bnpo", "sequence", 0.04, True, {"delta": 1.3, "epsilon_high": 0.1}),
    "grpo_kl_unbiased_off": ("grpo", "token", 0.04, True, {"use_bias_correction_kl": False}),
    "cispo_eps_high": ("cispo", "token", 0.0, True, {"epsilon_high": 1.1}),
    "sapo_temps": ("sapo", "token", 0.04, True, {"sapo_temperature_pos": 0.7}),
    "grpo_grad_accum": ("grpo", "token", 0.04, True, {"grad_accum": 3}),
    "dapo_num_items": ("dapo", "token", 0.04, True, {"num_items": 40.0, "grad_accum": 2}),
}


def make_batch(rng) -> dict:
    """Log-probs, old/ref log-probs, entropies, advantages and a right-padded mask [B, T]."""
    lengths = np.array([7, 3, 5, 0, 1, 6])  # row 3: truncated (masked out entirely)
    mask = (np.arange(T)[None, :] < lengths[:, None]).astype(np.float64)
    logps = -rng.uniform(0.05, 3.0, (B, T))
    old = logps + rng.normal(0, 0.25, (B, T))  # token ratios on both sides of the clip range
    old[0] -= 0.5  # sequence ratios beyond it too: rho > 1.2 with A > 0, < 0.8 with A < 0
    old[4] += 0.3
    ref = logps + rng.normal(0, 0.3, (B, T))
    entropies = rng.uniform(0.1, 2.5, (B, T))
    adv = np.array([1.2, -0.8, 0.4, 0.9, -1.5, 0.0])
    return {
        "logps": logps,
        "old": old,
        "ref": ref,
        "entropies": entropies,
        "adv": adv,
        "mask": mask,
    }


def stand_in(loss_type, level, beta, settings, logps_leaf, entropies):
    """The attributes `_compute_loss` reads, with TRL's defaults for the rest."""
    args = SimpleNamespace(
        delta=settings.get("delta"),
        use_bias_correction_kl=settings.get("use_bias_correction_kl", True),
        sapo_temperature_pos=settings.get("sapo_temperature_pos", 1.0),
        sapo_temperature_neg=settings.get("sapo_temperature_neg", 1.05),
        vespo_k_pos=2.0,
        vespo_lambda_pos=3.0,
        vespo_k_neg=3.0,
        vespo_lambda_neg=2.0,
        steps_per_generation=settings.get("grad_accum", 1),
    )
    accel = SimpleNamespace(
        num_processes=1,
        gather=lambda x: x,
        gather_for_metrics=lambda x: x,
        reduce=lambda x, reduction="sum": x,
        sync_gradients=True,
    )
    eps = 0.2
    ns = SimpleNamespace(
        args=args,
        accelerator=accel,
        loss_type=loss_type,
        importance_sampling_level=level,
        beta=beta,
        epsilon_low=eps,
        epsilon_high=settings.get("epsilon_high", eps),
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        use_vllm=False,
        vllm_importance_sampling_correction=False,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=settings.get("grad_accum", 1),
        max_completion_length=MAX_LEN,
        _entropy_bonus_enabled=False,
        aux_loss_enabled=False,
        _metrics={"train": defaultdict(list), "eval": defaultdict(list)},
        _get_per_token_logps_and_entropies=lambda *a, **k: (logps_leaf, entropies, None),
    )
    ns.get_off_policy_mask = GRPOTrainer.get_off_policy_mask
    ns.get_gamma_weights = GRPOTrainer.get_gamma_weights
    return ns


def run_loss(batch, loss_type, level, beta, old_given, settings) -> dict:
    """TRL's loss, its gradient w.r.t. the policy log-probs and its logged metrics."""
    t = {k: torch.tensor(v, dtype=torch.float64) for k, v in batch.items()}
    leaf = t["logps"].clone().requires_grad_(True)
    trainer = stand_in(loss_type, level, beta, settings, leaf, t["entropies"])
    n = len(batch["adv"])
    inputs = {
        "prompt_ids": torch.zeros((n, 2), dtype=torch.long),
        "prompt_mask": torch.ones((n, 2), dtype=torch.long),
        "completion_ids": torch.zeros((n, T), dtype=torch.long),
        "completion_mask": t["mask"],
        "advantages": t["adv"],
        "num_items_in_batch": torch.tensor(settings.get("num_items", float(batch["mask"].sum()))),
    }
    if old_given:
        inputs["old_per_token_logps"] = t["old"]
    if beta:
        inputs["ref_per_token_logps"] = t["ref"]
    loss = GRPOTrainer._compute_loss(trainer, None, inputs)
    loss.backward()
    metrics = {k: v[0] for k, v in trainer._metrics["train"].items()}
    return {"loss": loss.item(), "grad": leaf.grad.tolist(), "metrics": metrics}


def loss_variants(batch) -> dict:
    """The grid and the extra settings, keyed by name."""
    out = {}
    for lt in LOSS_TYPES:
        for level in ("token", "sequence"):
            for beta in (0.0, 0.04):
                for old in (True, False):
                    spec = (lt, level, beta, old, {})
                    out[f"{lt}-{level}-b{beta}-{'old' if old else 'onpolicy'}"] = spec
    out.update(EXTRA)
    return {
        name: {
            "loss_type": lt,
            "level": level,
            "beta": beta,
            "old": old,
            "settings": settings,
            **run_loss(batch, lt, level, beta, old, settings),
        }
        for name, (lt, level, beta, old, settings) in out.items()
    }


def advantage_block():
    """TRL's advantage and reward-logging lines, cut from `_generate_and_score_completions`."""
    src = inspect.getsource(GRPOTrainer._generate_and_score_completions)
    start = src.index("        unscorable_mask = torch.isnan(")
    end = src.index("\n", src.index('["frac_reward_zero_std"].append('))
    return compile(textwrap.dedent(src[start:end]), "trl-advantages", "exec")


def run_advantages(rewards, weights, g, scale, aggregation) -> dict:
    """Execute TRL's own advantage code on one reward matrix."""
    rpf = torch.tensor(rewards, dtype=torch.float64)
    me = SimpleNamespace(
        multi_objective_aggregation=aggregation,
        scale_rewards=scale,
        reward_weights=torch.tensor(weights, dtype=torch.float64),
        reward_funcs=[None] * rpf.shape[1],
        reward_func_names=[str(k) for k in range(rpf.shape[1])],
        accelerator=SimpleNamespace(process_index=0),
        _metrics={"train": defaultdict(list)},
    )
    env = {"torch": torch, "nanstd": trl_utils.nanstd, "self": me, "device": "cpu", "mode": "train"}
    env.update(rewards_per_func=rpf, num_generations=g, prompts=[None] * rpf.shape[0])
    exec(ADVANTAGES, env)
    metrics = {k: v[0] for k, v in me._metrics["train"].items()}
    return {"advantages": env["advantages"].tolist(), "metrics": metrics}


def advantage_cases(rng) -> dict:
    """Several reward matrices (NaN entries, all-NaN rows, a zero-std group) x every option."""
    g, nan = 4, float("nan")
    multi = rng.normal(0, 1, (12, 3)).round(3)
    multi[1, 2] = nan
    multi[5] = nan  # unscorable row
    multi[8:12, 0] = 0.5  # one head constant in the last group
    single = rng.uniform(0, 1, (8, 1)).round(3)
    single[4:8] = 0.25  # a zero-std group
    single[2] = nan
    mats = {"multi": (multi, [1.0, 0.5, 2.0]), "single": (single, [1.0])}
    out = {}
    for name, (r, w) in mats.items():
        for scale in ("group", "batch", "none"):
            for agg in ("sum_then_normalize", "normalize_then_sum"):
                out[f"{name}-{scale}-{agg}"] = {
                    "rewards": [[None if np.isnan(x) else x for x in row] for row in r.tolist()],
                    "weights": w,
                    "num_generations": g,
                    "scale": scale,
                    "aggregation": agg,
                    **run_advantages(r, w, g, scale, agg),
                }
    return out


ADVANTAGES = advantage_block()


def main() -> None:
    """Compute every golden and write the JSON."""
    rng = np.random.default_rng(0)
    torch.set_default_dtype(torch.float64)
    batch = make_batch(rng)
    golden = {
        "trl_version": metadata.version("trl"),
        "torch_version": metadata.version("torch"),
        "max_completion_length": MAX_LEN,
        "batch": {k: v.tolist() for k, v in batch.items()},
        "losses": loss_variants(batch),
        "advantages": advantage_cases(rng),
    }
    OUT.write_text(json.dumps(golden, indent=None, separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes, {len(golden['losses'])} loss variants)")


if __name__ == "__main__":
    main()

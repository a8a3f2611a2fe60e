"""Write tests/golden/dpo_trl.json: DPO-family batch losses and metrics from TRL's own code.

Run in an environment with TRL, torch and transformers (not needed by the tests):
    python3 -m venv /tmp/trlenv && /tmp/trlenv/bin/pip install torch==2.13.0 'trl==1.16.*'
    /tmp/trlenv/bin/python scripts/make_dpo_goldens.py

One batch of B = 6 pairs (unequal prompt/response lengths, right padding by TRL's own
`DataCollatorForPreference`) is scored by a tiny random float64 Llama. DPO-family variants go
through `DPOTrainer._compute_loss`, SimPO through `CPOTrainer.get_batch_loss_metrics`, each on
a stand-in trainer object (only the attributes those methods read). The stand-in model returns
what TRL's fused LM head returns (per-token log-probs and mean logits, zero off the labels),
in float64 so the goldens hold to 1e-12.

TRL has no per-record weights or soft labels, and its DPOTrainer applies `label_smoothing` only
to robust (and EXO/AOT). Variants that use them are composed from TRL's per-pair losses (each
pair alone, and with chosen and rejected swapped) by the rule in docs/TRAINING.md:
    L_e(h) = TRL's smoothed loss (robust, SimPO), else (1 - e) L(h) + e L(-h)
    loss   = sum_i w_i [p_i L_e(h_i) + (1 - p_i) L_e(-h_i)] / B
The file records, per variant, which it is (`how`).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
from transformers import LlamaConfig, LlamaForCausalLM
from trl.experimental.cpo import CPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference, DPOTrainer

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "dpo_trl.json"
VOCAB = 32
SOFT = [1.0, 0.5, 0.75, 0.9, 1.0, 0.6]  # 0.5: a tie
WEIGHTS = [1.0, 0.4, 2.0, 1.0, 0.7, 1.5]
# name: (trainer, TRL settings, our dpo settings, our extras)
DPO, CPO = "DPOTrainer", "CPOTrainer"
VARIANTS = {
    "sigmoid": (DPO, {"loss_type": ["sigmoid"], "beta": 0.1}, {}),
    "sigmoid_beta05": (DPO, {"loss_type": ["sigmoid"], "beta": 0.5}, {}),
    "sigmoid_reference_free": (DPO, {"loss_type": ["sigmoid"], "beta": 0.1}, {"ref": "none"}),
    "robust": (DPO, {"loss_type": ["robust"], "beta": 0.1, "label_smoothing": 0.2}, {}),
    "ipo": (DPO, {"loss_type": ["ipo"], "beta": 0.1}, {}),
    "hinge": (DPO, {"loss_type": ["hinge"], "beta": 0.3}, {}),
    "rpo": (DPO, {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, 0.7], "beta": 0.1}, {}),
    "simpo": (CPO, {"loss_type": "simpo", "beta": 2.0, "simpo_gamma": 0.5}, {}),
    "simpo_smoothing": (
        CPO,
        {"loss_type": "simpo", "beta": 2.0, "simpo_gamma": 0.8, "label_smoothing": 0.15},
        {},
    ),
    "simpo_nll": (CPO, {"loss_type": "simpo", "beta": 2.5, "cpo_alpha": 0.3}, {}),
    # composed: soft labels, weights, smoothing where TRL's DPOTrainer has none
    "sigmoid_soft_smooth_weighted": (
        DPO,
        {"loss_type": ["sigmoid"], "beta": 0.5},
        {"smoothing": 0.1, "soft": True, "weights": True},
    ),
    "robust_soft_weighted": (
        DPO,
        {"loss_type": ["robust"], "beta": 0.1, "label_smoothing": 0.2},
        {"soft": True, "weights": True},
    ),
    "ipo_soft_smooth": (DPO, {"loss_type": ["ipo"], "beta": 0.1}, {"smoothing": 0.1, "soft": True}),
    "hinge_soft_smooth": (
        DPO,
        {"loss_type": ["hinge"], "beta": 0.3},
        {"smoothing": 0.05, "soft": True, "weights": True},
    ),
    "simpo_soft_weighted": (
        CPO,
        {"loss_type": "simpo", "beta": 2.0, "simpo_gamma": 0.5, "label_smoothing": 0.1},
        {"soft": True, "weights": True},
    ),
}


def tiny_model(seed: int):
    """A random one-layer float64 Llama."""
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        pad_token_id=0,
        initializer_range=0.5,  # spread-out logits, so margins and metrics differ per pair
    )
    return LlamaForCausalLM(cfg).double().eval()


class FusedStandIn:
    """What `add_fused_lm_head` makes of a model: per-token fields, zero where labels are -100."""

    training = True

    def __init__(self, model):
        self.model = model

    def __call__(self, input_ids, attention_mask, labels, **_):
        """Per-token log-probs, entropy, mean logits and top-1 flags of the next-token labels."""
        with torch.no_grad():
            logits = self.model(input_ids=input_ids, attention_mask=attention_mask).logits
        logits, labels = logits[:, :-1], labels[:, 1:]
        mask = labels != -100
        logp_all = logits.log_softmax(-1)
        logp = logp_all.gather(-1, labels.clamp(min=0)[..., None])[..., 0]
        return SimpleNamespace(
            log_probs=logp * mask,
            entropy=-(logp_all.exp() * logp_all).sum(-1) * mask,
            mean_logits=logits.mean(-1) * mask,
            is_top1=(logits.argmax(-1) == labels) & mask,
            aux_loss=None,
        )


class _Accelerator:
    """Single-process stand-in for accelerate.Accelerator."""

    device = torch.device("cpu")

    @staticmethod
    def gather(x):
        """Identity (one process)."""
        return x

    gather_for_metrics = gather


def make_examples(rng):
    """Six pairs of token ids with unequal prompt and response lengths."""
    out = []
    for _ in range(6):
        out.append(
            {
                "prompt_ids": rng.integers(1, VOCAB, rng.integers(2, 6)).tolist(),
                "chosen_ids": rng.integers(1, VOCAB, rng.integers(1, 9)).tolist(),
                "rejected_ids": rng.integers(1, VOCAB, rng.integers(1, 9)).tolist(),
            }
        )
    return out


def dpo_batch(examples, ref):
    """TRL's collated DPO batch, reference log-probs in float64."""
    batch = DataCollatorForPreference(pad_token_id=0)(examples)
    batch["ref_chosen_logps"] = torch.tensor(ref[:, 0], dtype=torch.float64)
    batch["ref_rejected_logps"] = torch.tensor(ref[:, 1], dtype=torch.float64)
    return batch


def pair_sums(model, examples) -> dict:
    """Per-pair sums over response tokens [B, 2] of log-probs, mean logits and token counts."""
    batch = DataCollatorForPreference(pad_token_id=0)(examples)
    labels = batch["input_ids"].masked_fill(batch["completion_mask"] == 0, -100)
    out = FusedStandIn(model)(batch["input_ids"], batch["attention_mask"], labels)
    b = len(examples)

    def split(x):
        s = x.sum(1)
        return torch.stack([s[:b], s[b:]], 1).tolist()

    mask = batch["completion_mask"][:, 1:].double()
    return {"logps": split(out.log_probs), "logits": split(out.mean_logits), "lengths": split(mask)}


def run_dpo(policy, examples, ref, settings: dict):
    """TRL's DPO loss and logged metrics for one batch."""
    trainer = SimpleNamespace(
        model=FusedStandIn(policy),
        accelerator=_Accelerator(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=settings["loss_type"],
        loss_weights=settings.get("loss_weights", [1.0] * len(settings["loss_type"])),
        beta=settings["beta"],
        label_smoothing=settings.get("label_smoothing", 0.0),
        use_weighting=False,
        _metrics={"train": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
        args=SimpleNamespace(),
    )
    batch = dpo_batch(examples, ref)
    loss = DPOTrainer._compute_loss(trainer, trainer.model, batch, return_outputs=False)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items()}
    return float(loss), metrics


class _CPOStandIn:
    """The CPO trainer's loss path on a stand-in object."""

    concatenated_forward = CPOTrainer.concatenated_forward
    cpo_loss = CPOTrainer.cpo_loss
    get_batch_loss_metrics = CPOTrainer.get_batch_loss_metrics
    concatenated_inputs = staticmethod(CPOTrainer.concatenated_inputs)
    get_batch_logps = staticmethod(CPOTrainer.get_batch_logps)

    def __init__(self, settings: dict):
        self.accelerator = _Accelerator()
        self.is_encoder_decoder = False
        self.pad_token_id = 0
        self.aux_loss_enabled = False
        self.alpha = 0.0
        self.loss_type = settings["loss_type"]
        self.beta = settings["beta"]
        self.label_smoothing = settings.get("label_smoothing", 0.0)
        self.simpo_gamma = settings.get("simpo_gamma", 0.5)
        self.cpo_alpha = settings.get("cpo_alpha", 0.0)


def _pad(rows, value):
    """Right-pad lists of ids into a [N, L] tensor."""
    width = max(len(r) for r in rows)
    return torch.tensor([r + [value] * (width - len(r)) for r in rows])


def run_cpo(policy, examples, settings: dict):
    """TRL's CPO/SimPO loss and metrics for one batch."""
    batch = {}
    for side in ("chosen", "rejected"):
        ids = [e["prompt_ids"] + e[f"{side}_ids"] for e in examples]
        labels = [[-100] * len(e["prompt_ids"]) + e[f"{side}_ids"] for e in examples]
        batch[f"{side}_input_ids"] = _pad(ids, 0)
        batch[f"{side}_attention_mask"] = _pad([[1] * len(r) for r in ids], 0)
        batch[f"{side}_labels"] = _pad(labels, -100)
    loss, metrics = _CPOStandIn(settings).get_batch_loss_metrics(policy, batch)
    return float(loss), metrics


def run(trainer, policy, examples, ref, settings):
    """Dispatch to the DPO or CPO path."""
    if trainer == DPO:
        return run_dpo(policy, examples, ref, settings)
    return run_cpo(policy, examples, settings)


def per_pair(trainer, policy, examples, ref, settings, swap: bool) -> list[float]:
    """TRL's loss for each pair alone (optionally with chosen and rejected swapped)."""
    out = []
    for i, e in enumerate(examples):
        if swap:
            e = {**e, "chosen_ids": e["rejected_ids"], "rejected_ids": e["chosen_ids"]}
        r = ref[i : i + 1, ::-1] if swap else ref[i : i + 1]
        out.append(run(trainer, policy, [e], np.ascontiguousarray(r), settings)[0])
    return out


def composed(trainer, policy, examples, ref, settings, extras) -> float:
    """Soft labels / weights / smoothing from TRL's per-pair losses (rule in the docstring)."""
    win = np.array(per_pair(trainer, policy, examples, ref, settings, False))
    lose = np.array(per_pair(trainer, policy, examples, ref, settings, True))
    e = extras.get("smoothing", 0.0)
    win, lose = (1 - e) * win + e * lose, (1 - e) * lose + e * win
    p = np.array(SOFT) if extras.get("soft") else np.ones(len(examples))
    w = np.array(WEIGHTS) if extras.get("weights") else np.ones(len(examples))
    return float(np.sum(w * (p * win + (1 - p) * lose)) / len(examples))


def main() -> None:
    """Score the batch with both models, then run every variant through TRL."""
    rng = np.random.default_rng(1234)
    examples = make_examples(rng)
    policy, reference = tiny_model(0), tiny_model(1)
    stats = pair_sums(policy, examples)
    ref = np.array(pair_sums(reference, examples)["logps"])
    out = {
        "trl_version": metadata.version("trl"),
        "torch_version": torch.__version__,
        "transformers_version": metadata.version("transformers"),
        "batch": {
            "examples": examples,
            "policy": stats,
            "ref_logps": ref.tolist(),
            "soft_labels": SOFT,
            "weights": WEIGHTS,
        },
        "variants": {},
    }
    for name, (trainer, settings, extras) in VARIANTS.items():
        r = np.zeros_like(ref) if extras.get("ref") == "none" else ref
        loss, metrics = run(trainer, policy, examples, r, settings)
        entry = {"trainer": trainer, "trl": settings, "extras": extras, "metrics": metrics}
        if {"smoothing", "soft", "weights"} & set(extras):
            entry["how"] = "composed from TRL per-pair losses"
            entry["loss"] = composed(trainer, policy, examples, r, settings, extras)
            entry["trl_hard_loss"] = loss
        else:
            entry["how"] = f"TRL {trainer} on the batch"
            entry["loss"] = loss
        out["variants"][name] = entry
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

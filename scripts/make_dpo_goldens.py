"""Write tests/golden/dpo_trl.json: DPO-family losses and metrics computed by TRL's own code.

Run in an environment with TRL and torch (not needed by the tests):
    python -m venv /tmp/trlenv && /tmp/trlenv/bin/pip install torch trl
    /tmp/trlenv/bin/python scripts/make_dpo_goldens.py

TRL computes its DPO losses inside `DPOTrainer._compute_loss`; this script calls that method
on a stand-in trainer whose "model" returns fixed per-token log-probs, with precomputed
reference log-probs, one example at a time (so per-example losses are recovered exactly).
"""

from __future__ import annotations

import json
from collections import defaultdict
from importlib import metadata
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch
from trl.trainer.dpo_trainer import DPOTrainer

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden" / "dpo_trl.json"
# (name, TRL loss_types, loss_weights, beta, label_smoothing)
VARIANTS = [
    ("sigmoid", ["sigmoid"], [1.0], 0.1, 0.0),
    ("sigmoid_beta05", ["sigmoid"], [1.0], 0.5, 0.0),
    ("robust", ["robust"], [1.0], 0.1, 0.2),
    ("ipo", ["ipo"], [1.0], 0.1, 0.0),
    ("hinge", ["hinge"], [1.0], 0.3, 0.0),
    ("sigmoid_norm", ["sigmoid_norm"], [1.0], 0.2, 0.0),
    ("rpo", ["sigmoid", "sft"], [1.0, 0.7], 0.1, 0.0),
]


class _Accelerator:
    """Single-process stand-in for accelerate.Accelerator."""

    device = torch.device("cpu")

    @staticmethod
    def gather(x):
        return x

    gather_for_metrics = gather


class _Outputs(SimpleNamespace):
    """What `_compute_loss` reads from the model output."""


def _stub(per_token_logps: torch.Tensor):
    """A callable 'model' returning fixed per-token log-probs [2, L+1] (first column: prompt)."""

    def model(**_):
        n, width = per_token_logps.shape
        return _Outputs(
            log_probs=per_token_logps,
            entropy=torch.zeros(n, width),
            mean_logits=torch.zeros(n, width),
            is_top1=torch.zeros(n, width, dtype=torch.bool),
            aux_loss=None,
        )

    model.training = True
    return model


def trl_loss(variant, pc, pr, rc, rr, length_c: int, length_r: int):
    """Loss and metrics from TRL for one example (chosen/rejected completions of given lengths)."""
    _, loss_types, loss_weights, beta, smoothing = variant
    width = max(length_c, length_r)
    per_token = torch.zeros(2, width, dtype=torch.float64)
    per_token[0, :length_c] = pc / length_c
    per_token[1, :length_r] = pr / length_r
    mask = torch.zeros(2, width + 1, dtype=torch.long)
    mask[0, 1 : length_c + 1] = 1
    mask[1, 1 : length_r + 1] = 1
    trainer = SimpleNamespace(
        model=_stub(per_token),
        accelerator=_Accelerator(),
        aux_loss_enabled=False,
        ld_alpha=None,
        precompute_ref_logps=True,
        f_divergence_type="reverse_kl",
        loss_types=loss_types,
        loss_weights=loss_weights,
        beta=beta,
        label_smoothing=smoothing,
        use_weighting=False,
        _metrics={"train": defaultdict(list)},
        _total_train_tokens=0,
        _tp_size=1,
        args=SimpleNamespace(),
    )
    inputs = {
        "input_ids": torch.zeros(2, width + 1, dtype=torch.long),
        "attention_mask": torch.ones(2, width + 1),
        "completion_mask": mask,
        "ref_chosen_logps": torch.tensor([rc], dtype=torch.float64),
        "ref_rejected_logps": torch.tensor([rr], dtype=torch.float64),
    }
    trainer.model.__dict__["training"] = True
    loss = DPOTrainer._compute_loss(trainer, trainer.model, inputs, return_outputs=False)
    metrics = {
        k: v[-1]
        for k, v in trainer._metrics["train"].items()
        if k.startswith(("rewards/", "logps/"))
    }
    return float(loss), metrics


def main() -> None:
    """Fixed random inputs -> per-example TRL losses for every variant."""
    rng = np.random.default_rng(1234)
    n = 8
    inputs = {
        "policy_chosen_logps": (-rng.uniform(5, 40, n)).round(4).tolist(),
        "policy_rejected_logps": (-rng.uniform(5, 40, n)).round(4).tolist(),
        "ref_chosen_logps": (-rng.uniform(5, 40, n)).round(4).tolist(),
        "ref_rejected_logps": (-rng.uniform(5, 40, n)).round(4).tolist(),
        "chosen_lengths": rng.integers(3, 20, n).tolist(),
        "rejected_lengths": rng.integers(3, 20, n).tolist(),
    }
    out = {
        "trl_version": metadata.version("trl"),
        "torch_version": torch.__version__,
        "inputs": inputs,
        "variants": {},
    }
    for variant in VARIANTS:
        losses, metrics = [], []
        for i in range(n):
            args = [
                inputs[k][i]
                for k in (
                    "policy_chosen_logps",
                    "policy_rejected_logps",
                    "ref_chosen_logps",
                    "ref_rejected_logps",
                    "chosen_lengths",
                    "rejected_lengths",
                )
            ]
            loss, m = trl_loss(variant, *args)
            losses.append(loss)
            metrics.append(m)
        name, loss_types, loss_weights, beta, smoothing = variant
        out["variants"][name] = {
            "loss_types": loss_types,
            "loss_weights": loss_weights,
            "beta": beta,
            "label_smoothing": smoothing,
            "losses": losses,
            "metrics": metrics,
        }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()

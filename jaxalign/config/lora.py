"""The `lora` config section: low-rank adapters on the decoder's linear layers (docs/TRAINING.md)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from jaxalign.errors import ConfigError

# Short names of the linear layers an adapter can wrap (HF: q_proj ... down_proj).
LORA_TARGETS = ("q", "k", "v", "o", "gate", "up", "down")


@dataclass(frozen=True)
class LoRAConfig:
    """LoRA (Hu et al., arXiv:2106.09685): W x + (alpha / rank) B A dropout(x); rank 0 = off."""

    # 0: full fine-tuning. > 0: the base weights are frozen and only the adapters are trained.
    rank: int = field(default=0, metadata={"ge": 0})
    # Adapter outputs are scaled by alpha / rank (PEFT's `lora_alpha`).
    alpha: float = field(default=16.0, metadata={"gt": 0.0})
    # Dropout on the adapter's input during training (never at evaluation).
    dropout: float = field(default=0.0, metadata={"ge": 0.0, "le": 0.9})
    targets: tuple[str, ...] = field(default=LORA_TARGETS, metadata={"choices": LORA_TARGETS})
    # Seed of the adapters' initialisation (A random, B zero) and of their dropout masks.
    seed: int = field(default=0, metadata={"ge": 0, "le": 2**32 - 1})  # jax keys take 64 bits

    def __post_init__(self):
        """Targets distinct and non-empty; no LoRA setting given while rank 0 leaves LoRA off."""
        if not self.targets:
            raise ConfigError(f"targets: at least one of {', '.join(LORA_TARGETS)} is required")
        if len(set(self.targets)) != len(self.targets):
            raise ConfigError(f"targets: {list(self.targets)} repeats a layer")
        if self.rank == 0:
            changed = [
                f.name
                for f in fields(self)
                if f.name != "rank" and getattr(self, f.name) != f.default
            ]
            if changed:
                raise ConfigError(
                    f"rank: 0 turns LoRA off, but lora.{changed[0]} is set; "
                    "give lora.rank > 0 (e.g. 16) to train adapters"
                )

    @property
    def enabled(self) -> bool:
        """Whether adapters are trained (rank > 0)."""
        return self.rank > 0

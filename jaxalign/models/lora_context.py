"""What LoRA adapters read while a step is traced: the step's dropout key and, inside the
layer scan, the traced layer index (apart from lora.py so the decoder imports no LoRA code)."""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

# The dropout key of the step being traced; None (evaluation, export): no dropout.
DROPOUT_KEY: contextvars.ContextVar = contextvars.ContextVar("lora_dropout_key", default=None)
# The traced layer index inside the layer scan (0 outside it: unscanned layers are unstacked).
LAYER: contextvars.ContextVar = contextvars.ContextVar("lora_scanned_layer", default=0)


@contextlib.contextmanager
def scanned_layer(index) -> Iterator[None]:
    """Stacked adapters traced inside the layer scan draw layer `index`'s dropout masks."""
    token = LAYER.set(index)
    try:
        yield
    finally:
        LAYER.reset(token)


@contextlib.contextmanager
def dropout_key(key) -> Iterator[None]:
    """Adapters traced inside the block drop inputs with masks drawn from `key`."""
    token = DROPOUT_KEY.set(key)
    try:
        yield
    finally:
        DROPOUT_KEY.reset(token)

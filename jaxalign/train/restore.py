"""The one restore path: training resume (full state), `eval` and `model export` (params;
for a LoRA run the adapters, put onto the base model's weights).

Only a step whose files are unreadable is skipped (with a warning) for the previous one; a
config that does not match the checkpoint, or any other error, surfaces.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from flax import nnx

from jaxalign.checkpoint import Checkpoints, unreadable, warn_unreadable
from jaxalign.errors import JaxalignError


def require_checkpoint(run_dir: str | Path) -> None:
    """Refuse a run with no checkpoint step yet, before anything heavy (the base model:
    minutes for an 8B one) is loaded only to find nothing to restore."""
    root = Path(run_dir).absolute() / "checkpoints"
    if not root.is_dir() or not any(p.name.isdigit() for p in root.iterdir()):
        raise JaxalignError(f"{root}: no restorable checkpoint (train the run first)")


def restore_latest(checkpoints: Checkpoints, abstract, check: Callable[[dict], None]):
    """(step, state, data_state) of the newest readable step whose config passes `check`, or None."""
    for step in reversed(checkpoints.steps()):
        try:
            stored = checkpoints.read_json(step, "config")
            check(stored)
            state, data = checkpoints.restore(step, abstract)
        except JaxalignError:
            raise
        except Exception as err:
            if not unreadable(err):
                raise
            warn_unreadable(checkpoints.directory, step, err)
            continue
        return step, state, data
    return None


def newest_config(checkpoints: Checkpoints) -> dict | None:
    """The stored config of the newest step whose config is readable (None if no step)."""
    for step in reversed(checkpoints.steps()):
        try:
            return checkpoints.read_json(step, "config")
        except Exception as err:
            if not unreadable(err):
                raise
    return None


def restore_params(run_dir: str | Path, model, config: dict, tx):
    """(`model` with the newest restorable checkpoint's parameters, step) of a training run."""
    from jaxalign.checkpoint import abstract
    from jaxalign.train.run_dir import check_model
    from jaxalign.train.state import abstract_state

    root = Path(run_dir)
    checkpoints = Checkpoints(root, create=False) if (root / "checkpoints").is_dir() else None
    if checkpoints is None or not checkpoints.steps():
        raise JaxalignError(
            f"{root.absolute() / 'checkpoints'}: no restorable checkpoint (train the run first)"
        )
    graphdef, params, frozen = _trained_parts(model, config)
    target = abstract_state(abstract(params), tx)
    try:
        found = restore_latest(checkpoints, target, lambda old: check_model(old, config, root))
    finally:
        checkpoints.close()
    if found is None:
        raise JaxalignError(
            f"{checkpoints.directory}: no restorable checkpoint (train the run first)"
        )
    step, state, _ = found
    return nnx.merge(graphdef, state["params"], *frozen), step


def _trained_parts(model, config: dict):
    """(graphdef, checkpointed params, frozen states): a LoRA run (`config["lora"]`) saved
    only its adapters, so they are added to `model` and restored onto its base weights."""
    from jaxalign.config.core import from_dict
    from jaxalign.config.lora import LoRAConfig
    from jaxalign.models.lora import apply_lora, split_lora

    if apply_lora(model, from_dict(LoRAConfig, config.get("lora", {}), prefix="lora")):
        graphdef, adapters, base = split_lora(model)
        return graphdef, adapters, (base,)
    graphdef, params = nnx.split(model)
    return graphdef, params, ()

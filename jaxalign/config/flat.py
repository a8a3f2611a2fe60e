"""Configs as flat dotted keys, and the keys that differ from their defaults.

Run ids (train/run_dir.py) and experiment cell ids (experiments/cells.py) hash `non_defaults`,
so a key added by a later version at its default leaves every id as it was.
"""

from __future__ import annotations

import functools


def flatten(tree: dict, prefix: str = "") -> dict[str, object]:
    """Dotted keys -> leaf values of a nested mapping."""
    out: dict[str, object] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, name + "."))
        else:
            out[name] = value
    return out


@functools.cache
def defaults() -> dict[str, object]:
    """Every config key's default value (dotted keys)."""
    from jaxalign.config import Config, to_dict

    return flatten(to_dict(Config()))


def non_defaults(config) -> dict[str, object]:
    """The dotted keys whose values differ from their defaults: what run and cell ids hash, so
    keys and sections added by later versions (at their defaults) leave every id as it was."""
    from jaxalign.config import to_dict

    known = defaults()
    flat = flatten(to_dict(config))
    return {k: v for k, v in flat.items() if k not in known or known[k] != v}

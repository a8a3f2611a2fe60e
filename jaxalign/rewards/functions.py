"""Reward functions for GRPO: config specs -> a `RewardSet` scoring completions `[N, K]`.

Spec kinds (each a mapping with optional `name` and `weight`, default 1.0):
  {builtin: length|avoid_word, args: {...}}   programmatic rewards (smoke configs)
  {function: "module:function", args: {...}}  TRL's `fn(prompts, completions, **kw)`
  {model: DIR, head: GROUP/DIMENSION}          a rating-model head, oriented higher = better
  {scorer: profanity|hatesonar|vader}          an offline scorer (rewards/scorer_rewards.py)
NaN in the result means "not scorable" (a function's None, an unclosed reasoning block under
`unclosed: nan`). Checking specs imports nothing heavy and reads no files; `build_rewards`
imports functions and loads models. docs/REWARDS.md has the reference.
"""

from __future__ import annotations

import importlib
import math
import numbers
import re
from collections.abc import Mapping

import numpy as np

from jaxalign.config.vocab import DIMENSIONS
from jaxalign.data.reasoning import DEFAULTS as REASONING_DEFAULTS
from jaxalign.data.reasoning import UNCLOSED, answer_texts
from jaxalign.errors import ConfigError, DataError
from jaxalign.rewards.scorer_rewards import check_scorer, scorer_reward

KINDS = ("builtin", "function", "model", "scorer")
KIND_KEYS = {"builtin": {"args"}, "function": {"args"}, "model": {"head"}, "scorer": set()}
COMMON_KEYS = {"name", "weight"}


def _count(text: str, unit: str) -> int:
    """Length of a text in words (whitespace-separated) or characters."""
    return len(text.split()) if unit == "words" else len(text)


def length_reward(texts, target: int = 20, unit: str = "words") -> np.ndarray:
    """`-|n - target| / target` with n the length in `unit`: 0 at the target, lower elsewhere."""
    n = np.array([_count(t, unit) for t in texts], np.float64)
    return -np.abs(n - target) / target


def avoid_word_reward(
    texts, word: str, max_words: int | None = None, case_sensitive: bool = False
) -> np.ndarray:
    """1 where `word` (as a whole word) is absent and the text has at most `max_words` words."""
    pattern = re.compile(rf"(?<!\w){re.escape(word)}(?!\w)", 0 if case_sensitive else re.IGNORECASE)
    return np.array(
        [
            pattern.search(t) is None and (max_words is None or len(t.split()) <= max_words)
            for t in texts
        ],
        np.float64,
    )


def _positive_int(value) -> bool:
    """An int >= 1 (bools excluded)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


# name -> (function, {arg: (check, description)}, required args)
BUILTINS = {
    "length": (
        length_reward,
        {
            "target": (_positive_int, "an integer >= 1"),
            "unit": (lambda v: v in ("words", "chars"), "one of words, chars"),
        },
        (),
    ),
    "avoid_word": (
        avoid_word_reward,
        {
            "word": (lambda v: isinstance(v, str) and v.strip() != "", "a non-empty string"),
            "max_words": (lambda v: v is None or _positive_int(v), "an integer >= 1 or null"),
            "case_sensitive": (lambda v: isinstance(v, bool), "true or false"),
        },
        ("word",),
    ),
}


def _kind(spec: dict, where: str) -> str:
    """The one kind key of a spec; none, several or unknown keys are ConfigErrors."""
    if not isinstance(spec, Mapping):
        raise ConfigError(f"{where}: expected a mapping like {{builtin: length}}, got {spec!r}")
    kinds = [k for k in KINDS if k in spec]
    if len(kinds) != 1:
        found = "none" if not kinds else " and ".join(kinds)
        raise ConfigError(f"{where}: needs exactly one of {', '.join(KINDS)} (found {found})")
    extra = sorted(set(spec) - COMMON_KEYS - {kinds[0]} - KIND_KEYS[kinds[0]])
    if extra:
        allowed = ", ".join(sorted(COMMON_KEYS | {kinds[0]} | KIND_KEYS[kinds[0]]))
        raise ConfigError(f"{where}.{extra[0]}: unknown key for a {kinds[0]} reward ({allowed})")
    return kinds[0]


def _check_builtin(spec: dict, where: str) -> str:
    """Known builtin with valid args; returns its derived name."""
    name = spec["builtin"]
    if name not in BUILTINS:
        raise ConfigError(f"{where}.builtin: unknown '{name}' (one of {', '.join(BUILTINS)})")
    _, checks, required = BUILTINS[name]
    args = _args(spec, where)
    for key, value in args.items():
        if key not in checks:
            raise ConfigError(
                f"{where}.args.{key}: unknown argument of {name} ({', '.join(checks)})"
            )
        if not checks[key][0](value):
            raise ConfigError(f"{where}.args.{key}: must be {checks[key][1]}, got {value!r}")
    for key in required:
        if key not in args:
            raise ConfigError(f"{where}.args.{key}: required by the {name} reward")
    return name


def _args(spec: dict, where: str) -> dict:
    """The spec's `args` mapping (empty if absent)."""
    args = spec.get("args") or {}
    if not isinstance(args, Mapping) or not all(isinstance(k, str) for k in args):
        raise ConfigError(f"{where}.args: must be a mapping of argument names to values")
    return args


def _check_function(spec: dict, where: str) -> str:
    """A `module:function` reference (not imported here); returns the function's name."""
    ref = spec["function"]
    module, _, attr = ref.partition(":") if isinstance(ref, str) else ("", "", "")
    if not module or not attr or not all(p.isidentifier() for p in (*module.split("."), attr)):
        raise ConfigError(f"{where}.function: expected 'module:function', got {ref!r}")
    _args(spec, where)
    return attr


def _check_model(spec: dict, where: str) -> str:
    """A model directory string and a GROUP/DIMENSION head; returns the head's name."""
    if not isinstance(spec["model"], str) or not spec["model"]:
        raise ConfigError(f"{where}.model: expected a rating model directory")
    group, dim = _split_head(spec.get("head"), f"{where}.head")
    return f"{dim}[{group}]"


def _split_head(head, where: str) -> tuple[str, str]:
    """`GROUP/DIMENSION` -> (group, dimension), the dimension one of the survey's."""
    group, _, dim = head.rpartition("/") if isinstance(head, str) else ("", "", "")
    if not group or dim not in DIMENSIONS:
        raise ConfigError(
            f"{where}: expected GROUP/DIMENSION such as all/toxicity "
            f"(dimensions: {', '.join(DIMENSIONS)}), got {head!r}"
        )
    return group, dim


def _check_weight(spec: dict, where: str) -> float:
    """The spec's weight: a finite number, default 1.0."""
    weight = spec.get("weight", 1.0)
    ok = isinstance(weight, numbers.Real) and not isinstance(weight, bool)
    if not ok or not math.isfinite(weight):
        raise ConfigError(f"{where}.weight: must be a finite number, got {weight!r}")
    return float(weight)


CHECKS = {
    "builtin": _check_builtin,
    "function": _check_function,
    "model": _check_model,
    "scorer": check_scorer,
}


def _resolve(specs, key: str) -> list[tuple[str, str, float]]:
    """(kind, unique name, weight) per spec; any bad spec is a one-line ConfigError."""
    if isinstance(specs, Mapping | str) or not hasattr(specs, "__iter__"):
        raise ConfigError(f"{key}: expected a list of reward specs, got {specs!r}")
    out, seen = [], {}
    for i, spec in enumerate(specs):
        where = f"{key}[{i}]"
        kind = _kind(spec, where)
        derived = CHECKS[kind](spec, where)
        name = spec.get("name", derived)
        if not isinstance(name, str) or not name.strip() or "/" in name:
            # names become metric keys rewards/<name>/mean
            raise ConfigError(f"{where}.name: must be a non-empty string without '/', got {name!r}")
        if name in seen:
            raise ConfigError(
                f"{where}: reward name '{name}' is already used by {key}[{seen[name]}]; "
                "give one of them a distinct `name`"
            )
        seen[name] = i
        out.append((kind, name, _check_weight(spec, where)))
    if not out:
        raise ConfigError(f"{key}: at least one reward is needed")
    return out


def check_reward_specs(specs: tuple[dict, ...], key: str = "grpo.rewards") -> None:
    """Validate reward specs without imports or I/O; a bad one is a ConfigError naming `key[i]`."""
    _resolve(specs, key)


def check_reasoning(reasoning: dict | None, key: str = "grpo.reasoning") -> dict | None:
    """Validate a reasoning mapping (open, close, unclosed) and fill its defaults."""
    if reasoning is None:
        return None
    if not isinstance(reasoning, Mapping):
        raise ConfigError(f"{key}: expected a mapping with open, close, unclosed")
    extra = sorted(set(reasoning) - set(REASONING_DEFAULTS))
    if extra:
        raise ConfigError(f"{key}.{extra[0]}: unknown key (open, close, unclosed)")
    out = {**REASONING_DEFAULTS, **reasoning}
    if out["open"] is None:
        out["open"] = ""
    if not isinstance(out["open"], str):
        raise ConfigError(f"{key}.open: must be a string (empty: the template opens the block)")
    if not isinstance(out["close"], str) or not out["close"]:
        raise ConfigError(f"{key}.close: must be a non-empty string")
    if out["unclosed"] not in UNCLOSED:
        raise ConfigError(
            f"{key}.unclosed: must be one of {', '.join(UNCLOSED)}, got {out['unclosed']!r}"
        )
    return out


def _text(completion) -> str:
    """A completion as text: a string, or the contents of a message list joined."""
    if isinstance(completion, str):
        return completion
    return "".join(str(m.get("content", "")) for m in completion)


class RewardSet:
    """K reward functions: `reward_set(prompts, completions, **kw) -> [N, K]` float32."""

    def __init__(self, names, weights, scorers, reasoning: dict | None = None):
        """Names, weights and scorers `(prompts, texts, completions, kw) -> [N]` per reward."""
        self.names = list(names)
        self.weights = np.asarray(weights, np.float32)
        self.reasoning = reasoning
        self._scorers = list(scorers)

    def __len__(self) -> int:
        """Number of rewards K."""
        return len(self.names)

    def __call__(self, prompts, completions, **kw) -> np.ndarray:
        """Rewards `[N, K]` float32 of N completions; NaN where a reward cannot score a row."""
        if len(prompts) != len(completions):
            raise DataError(f"{len(prompts)} prompts but {len(completions)} completions")
        texts = [_text(c) for c in completions]
        closed = np.ones(len(texts), bool)
        r = self.reasoning
        if r is not None:
            answers, flags = answer_texts(texts, r["open"], r["close"])
            closed = np.array(flags, bool)
            if r["unclosed"] != "full":
                texts = answers
            else:
                texts = [a if c else t for a, c, t in zip(answers, flags, texts, strict=True)]
        out = np.empty((len(texts), len(self._scorers)), np.float32)
        for k, scorer in enumerate(self._scorers):
            out[:, k] = scorer(prompts, texts, completions, kw)
        if r is not None and r["unclosed"] != "full":
            out[~closed] = 0.0 if r["unclosed"] == "zero" else np.nan
        return out


def _builtin_scorer(spec: dict):
    """Scorer of a builtin reward with its args bound."""
    fn, args = BUILTINS[spec["builtin"]][0], dict(spec.get("args") or {})
    return lambda prompts, texts, completions, kw: fn(texts, **args)


def _import_function(ref: str, where: str):
    """The callable `module:function` names; a one-line ConfigError if it is not there."""
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        raise ConfigError(
            f"{where}.function: cannot import module '{module_name}': {err}"
        ) from None
    fn = getattr(module, attr, None)
    if fn is None:
        raise ConfigError(f"{where}.function: module '{module_name}' has no attribute '{attr}'")
    if not callable(fn):
        raise ConfigError(f"{where}.function: '{ref}' is not callable")
    return fn


def _as_rewards(values, n: int, ref: str) -> np.ndarray:
    """A function's returned list as floats (None -> NaN); wrong length or type is a DataError."""
    if isinstance(values, str | bytes | dict) or not hasattr(values, "__len__"):
        raise DataError(
            f"reward function '{ref}' returned {type(values).__name__}, expected a list of numbers"
        )
    if len(values) != n:
        raise DataError(
            f"reward function '{ref}' returned {len(values)} values for {n} completions"
        )
    out = np.empty(n, np.float64)
    for i, v in enumerate(values):
        if v is None:
            out[i] = np.nan
        elif isinstance(v, numbers.Real):
            out[i] = float(v)
        else:
            raise DataError(
                f"reward function '{ref}' returned {type(v).__name__} {v!r} at row {i}, "
                "expected a number or None"
            )
    return out


def _function_scorer(spec: dict, where: str):
    """Scorer calling a TRL-style reward function on the (answer) texts."""
    ref, args = spec["function"], dict(spec.get("args") or {})
    fn = _import_function(ref, where)

    def score(prompts, texts, completions, kw):
        """Call the function with the answer texts, dataset columns and spec args."""
        return _as_rewards(fn(list(prompts), list(texts), **{**kw, **args}), len(texts), ref)

    return score


def _model_scorer(spec: dict, where: str, models: dict):
    """Scorer of one rating-model head, mapped so higher is better on [0, 1]."""
    from jaxalign import rewards
    from jaxalign.survey.schema import LOWER_IS_BETTER

    group, dim = _split_head(spec["head"], f"{where}.head")
    path = spec["model"]
    if path not in models:
        try:
            models[path] = rewards.load(path)
        except DataError as err:
            raise ConfigError(f"{where}.model: {err}") from None
    model = models[path]
    head = f"{dim}[{group}]"
    if head not in model.heads:
        allowed = ", ".join(f"{h[h.index('[') + 1 : -1]}/{h[: h.index('[')]}" for h in model.heads)
        raise ConfigError(f"{where}.head: '{group}/{dim}' is not in {path} (heads: {allowed})")
    sign = -1.0 if dim in LOWER_IS_BETTER else 1.0

    def score(prompts, texts, completions, kw):
        """Rating 1..5 -> (r - 1) / 4, or (5 - r) / 4 where lower ratings are better."""
        rating = np.asarray(model.score([_text(p) for p in prompts], texts)[head], np.float64)
        return (sign * (rating - 3.0) + 2.0) / 4.0

    return score


def build_rewards(specs, *, reasoning: dict | None = None, key: str = "grpo.rewards") -> RewardSet:
    """Check the specs, import functions, load rating models: the `RewardSet` to call."""
    specs = list(specs) if isinstance(specs, list | tuple) else specs
    resolved = _resolve(specs, key)
    reasoning = check_reasoning(reasoning)
    models: dict = {}
    scorers = []
    for i, (spec, (kind, _, _)) in enumerate(zip(specs, resolved, strict=True)):
        where = f"{key}[{i}]"
        if kind == "builtin":
            scorers.append(_builtin_scorer(spec))
        elif kind == "function":
            scorers.append(_function_scorer(spec, where))
        elif kind == "scorer":
            scorers.append(scorer_reward(spec))
        else:
            scorers.append(_model_scorer(spec, where, models))
    return RewardSet([n for _, n, _ in resolved], [w for _, _, w in resolved], scorers, reasoning)

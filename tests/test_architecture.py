"""Import rules of docs/ARCHITECTURE.md, checked on the source (lazy imports included)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent / "jaxalign"


def module_name(path: Path) -> str:
    """Dotted module name of a file under jaxalign/."""
    parts = path.relative_to(ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module a file imports, anywhere in it (`from jaxalign import x` gives jaxalign.x)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            out.add(node.module)
            if node.module == "jaxalign":
                out |= {f"jaxalign.{alias.name}" for alias in node.names}
    return out


GRAPH = {module_name(p): imports(p) for p in sorted(ROOT.rglob("*.py"))}


def under(name: str, *packages: str) -> bool:
    """Whether module `name` is one of `packages` or inside one of them."""
    return any(name == p or name.startswith(p + ".") for p in packages)


def offenders(importer, allowed=None, forbidden=(), except_=()) -> list[str]:
    """`importer -> imported` edges that break a rule (jaxalign modules only for `allowed`)."""
    bad = []
    for mod, deps in GRAPH.items():
        if not under(mod, *importer):
            continue
        for dep in sorted(set(deps) - set(except_)):
            internal = under(dep, "jaxalign") and dep != "jaxalign"
            if (allowed is not None and internal and not under(dep, *allowed)) or under(
                dep, *forbidden
            ):
                bad.append(f"{mod} -> {dep}")
    return bad


RULES = {
    "config is the bottom": dict(
        importer=("jaxalign.config", "jaxalign.errors"),
        allowed=("jaxalign.config", "jaxalign.errors"),
    ),
    "losses are pure array math": dict(
        importer=("jaxalign.losses",), forbidden=("jaxalign.models", "flax")
    ),
    "the runner never imports an algorithm": dict(
        importer=("jaxalign.train",), forbidden=("jaxalign.algos",)
    ),
    "models know no losses, data or training": dict(
        importer=("jaxalign.models",),
        forbidden=("jaxalign.losses", "jaxalign.data", "jaxalign.train", "jaxalign.algos"),
        # The tokenizer conventions (EOS/pad ids; pure Python, no imports) have one home.
        except_=("jaxalign.data.chat",),
    ),
    "data commands import no jax": dict(
        importer=("jaxalign.survey", "jaxalign.prefs"),
        forbidden=("jax", "flax", "jaxalign.models", "jaxalign.train", "jaxalign.algos"),
    ),
    "experiments get their trainers from the CLI and import no jax themselves": dict(
        importer=("jaxalign.experiments", "jaxalign.config.experiment"),
        forbidden=("jax", "flax", "jaxalign.algos", "jaxalign.train", "jaxalign.models"),
    ),
    "only progress.py draws bars (nested tqdm bars print stray escape codes)": dict(
        importer=tuple(sorted(set(GRAPH) - {"jaxalign", "jaxalign.progress"})),
        forbidden=("tqdm",),
    ),
    "only the CLI imports algos": dict(
        importer=tuple(
            sorted(
                {".".join(m.split(".")[:2]) for m in GRAPH if m != "jaxalign"}
                - {"jaxalign.cli", "jaxalign.algos"}
            )
        ),
        forbidden=("jaxalign.algos",),
    ),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_import_rule(rule):
    assert offenders(**RULES[rule]) == []


def test_rules_catch_a_violation():
    # The config rule must see lazy imports inside functions, as schema.py's used to be.
    GRAPH["jaxalign.config.fake"] = {"jaxalign.prefs.filters", "yaml"}
    try:
        assert offenders(**RULES["config is the bottom"]) == [
            "jaxalign.config.fake -> jaxalign.prefs.filters"
        ]
    finally:
        del GRAPH["jaxalign.config.fake"]


def test_no_import_cycles():
    # Lazy imports count: a cycle hidden inside a function still ties the modules together.
    internal = {m: {d for d in deps if d in GRAPH and d != m} for m, deps in GRAPH.items()}
    for mod in internal:  # a package's __init__ importing its own submodules is not a cycle
        internal[mod] = {d for d in internal[mod] if not under(d, mod) and not under(mod, d)}
    seen, stack, cycles = set(), [], []

    def visit(mod):
        if mod in stack:
            cycles.append([*stack[stack.index(mod) :], mod])
            return
        if mod in seen:
            return
        seen.add(mod)
        stack.append(mod)
        for dep in sorted(internal[mod]):
            visit(dep)
        stack.pop()

    for mod in sorted(internal):
        visit(mod)
    assert cycles == []


def test_no_module_above_400_lines_no_function_above_60():
    too_long = []
    for path in sorted(ROOT.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        if len(text.splitlines()) > 400:
            too_long.append(f"{path.relative_to(ROOT)}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if function and node.end_lineno - node.lineno + 1 > 60:
                too_long.append(f"{path.relative_to(ROOT)}::{node.name}")
    assert too_long == []

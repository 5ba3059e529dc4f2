"""The layering of src/jax_trainer, read from the source with ``ast`` (function-level imports included): no import
cycles; nothing below the loop imports the trainer; flax.linen and flax.nnx only where a framework belongs."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).parents[2] / "src"
PACKAGE = "jax_trainer"
BELOW_THE_TRAINER = ("callbacks", "logger", "optimizer", "datasets", "zoo", "checkpoint", "backends", "parallel")
FRAMEWORK_HOMES = ("backends", "zoo", "migrate")
FRAMEWORKS = ("flax.linen", "flax.nnx")


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted((SRC / PACKAGE).rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


MODULES = _modules()


def _imported(module: str, path: Path) -> set[str]:
    """Every module ``module`` imports (any depth in the file), with the packages their import initialises."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names.add(base)
            internal = base == PACKAGE or base.startswith(PACKAGE + ".")
            names.update(f"{base}.{a.name}" for a in node.names if not internal or f"{base}.{a.name}" in MODULES)
    found = set()
    for name in names:
        parts = name.split(".")
        for i in range(2, len(parts) + 1):  # importing a.b.c runs a.b's __init__ first (the root's is empty)
            prefix = ".".join(parts[:i])
            if prefix in MODULES and not (module == prefix or module.startswith(prefix + ".")):
                found.add(prefix)
    found.update(n for n in names if not n.startswith(PACKAGE + ".") and n != PACKAGE)
    return found


GRAPH = {module: _imported(module, path) for module, path in MODULES.items()}


def _internal(module: str) -> set[str]:
    return {m for m in GRAPH[module] if m in MODULES}


def _cycles() -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in _internal(node):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in GRAPH:
        if module not in index:
            visit(module)
    return found


def _reachable(module: str) -> set[str]:
    seen, todo = set(), [module]
    while todo:
        for nxt in _internal(todo.pop()) - seen:
            seen.add(nxt)
            todo.append(nxt)
    return seen


def _under(module: str, folders) -> bool:
    return any(module == f"{PACKAGE}.{f}" or module.startswith(f"{PACKAGE}.{f}.") for f in folders)


def test_the_graph_is_read():
    assert len(MODULES) > 50
    assert f"{PACKAGE}.checkpoint.store" in _internal(f"{PACKAGE}.checkpoint.reading")
    assert f"{PACKAGE}.trainer" in _internal(f"{PACKAGE}.config")  # a package reached through its submodule
    assert f"{PACKAGE}.config" in _internal(f"{PACKAGE}.cli")  # a function-level import


def test_no_import_cycles():
    assert _cycles() == []


def test_nothing_below_the_trainer_reaches_it():
    trainer = f"{PACKAGE}.trainer"
    offenders = {
        module: sorted(m for m in _reachable(module) if _under(m, ["trainer"]))
        for module in MODULES
        if _under(module, BELOW_THE_TRAINER)
    }
    assert {m: found for m, found in offenders.items() if found} == {}
    direct = [m for m in MODULES if _under(m, ["migrate"]) and any(_under(x, ["trainer"]) for x in _internal(m))]
    assert direct == [], f"migrate/ imports {trainer} directly"


def test_flax_frameworks_only_in_their_homes():
    offenders = {
        module: sorted(n for n in GRAPH[module] if any(n == f or n.startswith(f + ".") for f in FRAMEWORKS))
        for module in MODULES
        if not _under(module, FRAMEWORK_HOMES)
    }
    assert {m: found for m, found in offenders.items() if found} == {}


def test_the_core_never_reaches_a_framework():
    """The loop, logger, callbacks, config, optimizer and checkpoint home import no linen or nnx, even indirectly:
    a backend is loaded by the registry when its model_mode is asked for."""
    core = ["trainer", "logger", "callbacks", "optimizer", "checkpoint", "config", "config_errors", "parallel"]
    offenders = {}
    for module in MODULES:
        if _under(module, core):
            reached = {module} | _reachable(module)
            importers = sorted(m for m in reached if any(n.startswith(f) for n in GRAPH[m] for f in FRAMEWORKS))
            if importers:
                offenders[module] = importers
    assert offenders == {}

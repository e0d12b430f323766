"""The library's structure: no import cycles, one loop over batches, and doctests that run.

These walk ``art_fim``'s source with :mod:`ast` rather than importing it, so function-level imports
(the usual way around a cycle) count as much as module-level ones.
"""

from __future__ import annotations

import ast
import doctest
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "art_fim"


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str) -> set[str]:
    """The ``art_fim`` modules that module ``name`` imports, anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # `from art_fim.x import y` names the submodule art_fim.x.y when there is one.
            targets = [
                f"{node.module}.{alias.name}"
                if f"{node.module}.{alias.name}" in MODULES
                else node.module
                for alias in node.names
            ]
        else:
            continue
        found.update(target for target in targets if target in MODULES and target != name)
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of ``graph`` as a path of module names (first = last), or ``None``."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = "open"
        stack.append(node)
        for child in sorted(graph[node]):
            if state.get(child) == "open":
                return [*stack[stack.index(child) :], child]
            if child not in state and (found := visit(child)):
                return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_cycle_finder_finds_a_cycle():
    """The check can fail: a function-level import that closes a loop is a cycle."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_of_art_fim_imports_itself_through_others():
    """A package's ``__init__`` re-exports its modules; the modules never import it back, and no
    two modules import each other, however indirectly, at module or function level.
    """
    graph = {name: _imports(name) for name in MODULES}
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


@pytest.mark.parametrize("name", sorted(MODULES))
def test_doctests_pass(name):
    module = importlib.import_module(name)
    failures, _ = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert failures == 0


def test_the_doctests_are_found():
    """``box_margin_distance``'s example runs (doctest finds nothing in a module it cannot see)."""
    results = doctest.testmod(importlib.import_module("art_fim.box_distance"))
    assert results.attempted >= 2 and results.failed == 0


# The one module allowed to loop over the inputs itself: the engine runs every estimator's loop.
LOOP_OWNERS = {"art_fim.engine"}


def _loops_over_inputs(source: str) -> list[int]:
    """Lines of ``for`` loops and comprehensions over batches of the inputs.

    A loop over ``<run>.batches(...)`` or over a ``range`` that steps through ``len(x)`` (or
    ``len(self.x)``, ``len(inputs)``); the per-batch work of an estimator never needs one.
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.For, ast.comprehension)):
            iterable = node.iter
            if not isinstance(iterable, ast.Call):
                continue
            func = iterable.func
            if isinstance(func, ast.Attribute) and func.attr == "batches":
                lines.append(iterable.lineno)
            elif isinstance(func, ast.Name) and func.id == "range":
                text = " ".join(ast.unparse(arg) for arg in iterable.args)
                if any(f"len({name})" in text for name in ("x", "self.x", "inputs", "run.x")):
                    lines.append(iterable.lineno)
    return lines


def test_the_loop_finder_finds_loops_over_inputs():
    source = (
        "for b in run.batches(8):\n    pass\n"
        "parts = [f(x[i : i + 4]) for i in range(0, len(x), 4)]\n"
        "for j in range(0, classes, chunk):\n    pass\n"
    )
    assert _loops_over_inputs(source) == [1, 3]


def test_only_the_engine_loops_over_batches_of_inputs():
    """Every estimator hands its per-batch work to ``BatchEngine.compute``: no module writes its own
    loop over the inputs (the engine's own loops aside).
    """
    found = {
        name: lines
        for name, path in MODULES.items()
        if name not in LOOP_OWNERS and (lines := _loops_over_inputs(path.read_text()))
    }
    assert not found, f"loops over the inputs outside the engine (module: lines): {found}"


def test_the_noisy_copies_loop_is_written_once():
    """Monte Carlo and the noise KL draw their copies through ``noise.noisy_passes``: the only loop
    that calls ``noisy_copies``.
    """
    callers = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.For, ast.ListComp, ast.GeneratorExp)):
                calls = [
                    n for n in ast.walk(node)
                    if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "noisy_copies"
                ]
                if calls:
                    callers.append(name)
    assert callers == ["art_fim.noise"]

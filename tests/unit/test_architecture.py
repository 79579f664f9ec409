"""The shape of the code (docs/architecture.md), checked on the source so that it cannot drift.

* imports point down the layers, and packages never import each other in a cycle;
* matplotlib's backend is chosen only in ``report/``; files are renamed into place only in ``io/``
  (the one atomic writer); pickles only in ``io/cryodrgn.py`` (cryoDRGN's format);
* a command module is parse → read → library → write → print: no function in ``cli/`` is longer
  than 120 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "cryoglass"

#: Layers, lowest first (docs/architecture.md).  A module may import its own layer and lower ones.
LAYERS: dict[str, int] = {
    **dict.fromkeys(["constants", "conventions", "_allocator", "fourier", "geometry"], 0),
    **dict.fromkeys(["interpolate", "ctf", "projection", "simulate"], 1),
    **dict.fromkeys(
        ["reconstruct", "validate", "classify", "hetero", "nma", "refine", "preprocess"], 2
    ),
    "io": 3,
    **dict.fromkeys(["distributed", "report", "data"], 4),
    **dict.fromkeys(["demos", "serve", "cli", "__main__", "__init__"], 5),
}


def _package(path: Path) -> str:
    return path.relative_to(SRC).parts[0].removesuffix(".py")


def _modules() -> list[Path]:
    return sorted(SRC.rglob("*.py"))


def _imports(path: Path) -> set[str]:
    """Top-level cryoglass packages imported anywhere in the file (also inside functions)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        found |= {n.split(".")[1] for n in names if n.startswith("cryoglass.")}
    return found


def test_every_package_has_a_layer():
    assert {_package(p) for p in _modules()} <= set(LAYERS)


def test_imports_point_down_the_layers():
    upward = [
        f"{path.relative_to(SRC)} imports cryoglass.{target}"
        for path in _modules()
        for target in _imports(path)
        if LAYERS[target] > LAYERS[_package(path)]
    ]
    assert upward == []


def test_packages_import_each_other_without_cycles():
    graph: dict[str, set[str]] = {}
    for path in _modules():
        graph.setdefault(_package(path), set()).update(_imports(path) - {_package(path)})

    def visit(node: str, stack: tuple[str, ...]) -> None:
        if node in stack:
            pytest.fail(f"import cycle: {' -> '.join((*stack[stack.index(node) :], node))}")
        for nxt in sorted(graph.get(node, ())):
            visit(nxt, (*stack, node))

    for package in sorted(graph):
        visit(package, ())


def _calls(path: Path, dotted: str) -> list[int]:
    """Lines calling ``a.b(...)`` with ``dotted = "a.b"``."""
    head, attr = dotted.split(".")
    lines = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            base = node.func.value
            if node.func.attr == attr and isinstance(base, ast.Name) and base.id == head:
                lines.append(node.lineno)
    return lines


@pytest.mark.parametrize(
    ("call", "home"),
    [
        ("matplotlib.use", "report"),
        ("os.replace", "io"),
        ("os.rename", "io"),
        ("tempfile.mkstemp", "io"),
        ("tempfile.NamedTemporaryFile", "io"),
        ("pickle.dump", "io"),
        ("pickle.load", "io"),
    ],
)
def test_each_job_has_one_home(call, home):
    elsewhere = [
        f"{path.relative_to(SRC)}:{line}"
        for path in _modules()
        if _package(path) != home
        for line in _calls(path, call)
    ]
    assert elsewhere == [], f"{call} belongs in {home}/ only"


def test_command_functions_stay_short():
    long = []
    for path in sorted((SRC / "cli").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > 120:
                    long.append(f"cli/{path.name}::{node.name} ({length} lines)")
    assert long == []

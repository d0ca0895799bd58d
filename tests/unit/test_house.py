"""The shape of the house: imports between the top-level folders go one way, and functions stay readable.

Folders and the only arrows allowed between them (docs/architecture.md, "The map"):

    infra -> stacksets -> runtime        sandbox -> runtime        bench -> sandbox, runtime, infra, stacksets

The runtime (the Lambda package) imports none of the others: it ships alone. ``tests`` may import anything;
nothing imports ``tests``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

from tests.conftest import ROOT

# Top-level import name -> the folder it lives in.
PACKAGES: Final = {
    "macie_chatops": "runtime",
    "macie_chatops_sandbox": "sandbox",
    "infra": "infra",
    "stacksets": "stacksets",
    "tests": "tests",
    "bench": "bench",
}
ALLOWED: Final[dict[str, frozenset[str]]] = {
    "runtime": frozenset(),
    "stacksets": frozenset({"runtime"}),
    "infra": frozenset({"stacksets", "runtime"}),
    "sandbox": frozenset({"runtime"}),
    "bench": frozenset({"runtime", "sandbox", "infra", "stacksets"}),
}
MAX_FUNCTION_LINES: Final = 80
READABLE_FOLDERS: Final = ("runtime", "infra", "stacksets")


def _python_files(folder: str) -> Iterator[Path]:
    yield from sorted((ROOT / folder).rglob("*.py"))


def _imported_packages(tree: ast.AST) -> Iterator[tuple[int, str]]:
    """(line, top-level package) of every absolute import in ``tree``, lazy imports inside functions included."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.lineno, node.module.split(".")[0]


def _edges(folder: str) -> Iterator[tuple[str, str]]:
    """(where, imported folder) for every import from ``folder`` into another of the project's folders."""
    for path in _python_files(folder):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for line, package in _imported_packages(tree):
            target = PACKAGES.get(package)
            if target is not None and target != folder:
                yield f"{path.relative_to(ROOT)}:{line}", target


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_imports_between_top_level_folders_only_go_down(folder: str) -> None:
    # GIVEN every import statement in the folder (module level and lazy)
    # WHEN each is mapped to the project folder it reaches into
    backwards = [f"{where} imports {target}" for where, target in _edges(folder) if target not in ALLOWED[folder]]
    # THEN none points back up the house
    assert backwards == []


def test_the_import_graph_check_sees_real_edges() -> None:
    # The check above would pass on an empty graph; the arrows the house is built on must be found.
    found = {(folder, target) for folder in ALLOWED for _, target in _edges(folder)}
    assert {("infra", "stacksets"), ("stacksets", "runtime"), ("sandbox", "runtime"), ("infra", "runtime")} <= found


def _long_functions(folder: str) -> Iterator[str]:
    for path in _python_files(folder):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = (node.end_lineno or node.lineno) - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({length} lines)"


@pytest.mark.parametrize("folder", READABLE_FOLDERS)
def test_no_function_is_longer_than_a_page(folder: str) -> None:
    assert list(_long_functions(folder)) == []

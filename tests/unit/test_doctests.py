"""Every docstring example in the library runs and prints what it says (STYLE.md habit 6)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import cryoglass

#: Command modules, the web app and the process entry point have no examples to run.
_SKIP = ("cryoglass.cli", "cryoglass.serve", "cryoglass.__main__")
MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(cryoglass.__path__, "cryoglass.")
    if not m.name.startswith(_SKIP)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, report=False
    )
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed"


def test_the_examples_exist():
    finder = doctest.DocTestFinder()
    examples = sum(
        len(test.examples)
        for name in MODULES
        for test in finder.find(importlib.import_module(name))
    )
    assert examples >= 100

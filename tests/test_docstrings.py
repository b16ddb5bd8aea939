"""The examples in the docstrings run and print what they say (library rooms without solo-learn)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import sfrik_plugin

ROOMS = ("maths", "files", "contenders", "data", "zoo", "benchmark")


def _modules():
    names = ["sfrik_plugin", "sfrik_plugin.console"]
    for room in ROOMS:
        package = importlib.import_module(f"sfrik_plugin.{room}")
        names.append(package.__name__)
        names += [m.name for m in pkgutil.iter_modules(package.__path__, prefix=f"{package.__name__}.")]
    return names


@pytest.mark.parametrize("name", _modules())
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (run: python -m doctest -v)"


def test_the_public_api_has_examples():
    for name in sfrik_plugin.__all__:
        obj = getattr(sfrik_plugin, name)
        if callable(obj) and not isinstance(obj, type(sfrik_plugin)):
            doc = getattr(obj, "__doc__", "") or ""
            if name[0].islower():  # functions: each has a runnable example
                assert ">>>" in doc, f"sfrik_plugin.{name} has no example in its docstring"

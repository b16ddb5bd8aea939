"""The examples in the docstrings run and print what they say — in every module of the package,
the solo-learn adapter (``solo/``) and the profiler included — and every module and every public
function has one, or a stated reason here.

The adapter's modules need solo-learn (``requires_solo``). The profiler's examples start worker
processes and train: they run in the slow lane (``slow``; tests/conftest.py's run-time rule would
fail them in the fast lane otherwise).
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import multiprocessing.util
import pkgutil
import tempfile

import pytest

import sfrik_plugin

#: examples that need data that cannot exist on a test machine: module -> reason (none today)
SKIP: dict[str, str] = {}

#: modules without any example, with the reason
NO_EXAMPLE_MODULES = {
    "sfrik_plugin.benchmark.runner": "runs whole benchmark stages in worker processes (tests/test_benchmark_runner.py)",
    "sfrik_plugin.benchmark.sweep_report": "reads finished run folders (tests/test_benchmark_sweep.py writes them)",
    "sfrik_plugin.maths.fused": "internal kernel-mean path; its results are checked against maths.reference in tests/test_mmd.py",
    "sfrik_plugin.maths.reference": "the O(N²) reference the other paths are tested against (tests/test_mmd.py)",
    "sfrik_plugin.zoo.cli": "a console script: tests/test_zoo_cli.py runs its commands",
    "sfrik_plugin.solo.linear": "run_linear trains a classifier on a checkpoint: tests/adapter/test_launchers.py",
}

#: public functions (exported by a package ``__init__``) without an example, with the reason
NO_EXAMPLE_FUNCTIONS = {
    "sfrik_plugin.contenders.unregister_contender": "undoes register_contender, whose example shows the pair",
    "sfrik_plugin.contenders.unregister_train_method": "undoes register_train_method, whose example shows the pair",
    "sfrik_plugin.zoo.cache_dir": "the download cache of this machine (tests/test_zoo_download.py)",
    "sfrik_plugin.zoo.check_backbone": "needs a converted checkpoint (tests/test_zoo_convert.py builds them)",
    "sfrik_plugin.zoo.extract_archive": "needs a downloaded archive (tests/test_zoo_safety.py builds them)",
    "sfrik_plugin.zoo.extract_backbone": "needs an official checkpoint file (tests/test_zoo_convert.py builds them)",
    "sfrik_plugin.zoo.list_models": "prints the manifest of this machine (tests/test_zoo_cli.py)",
    "sfrik_plugin.zoo.load_checkpoint": "needs a checkpoint file (tests/test_files_checkpoints.py)",
    "sfrik_plugin.zoo.load_model": "downloads or reads a model file (tests/test_zoo_cli.py serves one locally)",
    "sfrik_plugin.zoo.read_weights": "needs a checkpoint file (tests/test_zoo_convert.py)",
    "sfrik_plugin.zoo.to_timm": "needs official weights (tests/test_zoo_convert.py compares features)",
    "sfrik_plugin.zoo.to_torchvision": "needs official weights (tests/test_zoo_convert.py compares features)",
    "sfrik_plugin.profiler.loss_worker": "run in a fresh process by run_grid (tests/test_profiler_isolation.py)",
    "sfrik_plugin.profiler.build_train_config": "used by train_worker (tests/adapter/test_profile_train.py)",
    "sfrik_plugin.profiler.train_worker": "trains a model (tests/adapter/test_profile_train.py)",
    "sfrik_plugin.profiler.run_grid": "drives worker processes (tests/test_profiler_grid.py)",
    "sfrik_plugin.profiler.plot_loss": "draws measured rows (tests/test_profiler_output.py draws synthetic ones)",
    "sfrik_plugin.profiler.plot_train": "draws measured rows (tests/test_profiler_output.py draws synthetic ones)",
}

ROOMS = ("maths", "files", "contenders", "data", "zoo", "benchmark", "profiler", "solo")


def _module_names() -> list[str]:
    """Every module of the package (found on disk, so a module needing solo-learn is listed even
    where solo-learn is missing; importing it is the test's job)."""
    names = ["sfrik_plugin"]
    names += [m.name for m in pkgutil.walk_packages(sfrik_plugin.__path__, prefix="sfrik_plugin.") if m.name]
    return sorted(set(names))


def _marks(name: str) -> list:
    marks = []
    if name.startswith("sfrik_plugin.solo") or name == "sfrik_plugin.profiler.workers":
        marks.append(pytest.mark.requires_solo)
    if name.startswith("sfrik_plugin.profiler"):
        marks.append(pytest.mark.slow(reason="the profiler's examples start processes"))
    if name in SKIP:
        marks.append(pytest.mark.skip(reason=SKIP[name]))
    return marks


MODULES = [pytest.param(name, marks=_marks(name), id=name.removeprefix("sfrik_plugin.")) for name in _module_names()]
_FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE


def _examples(module) -> list[doctest.DocTest]:
    return [test for test in doctest.DocTestFinder().find(module) if test.examples]


def _is_reexport_package(module) -> bool:
    """A package ``__init__`` that only re-exports: its names' examples run in their own modules."""
    names = getattr(module, "__all__", [])
    own = [n for n in names if getattr(getattr(module, n, None), "__module__", module.__name__) == module.__name__]
    return hasattr(module, "__path__") and not own


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    # The examples write into tempfile.mkdtemp() as a reader's would (a checkpoint is 43 MB); here
    # those folders land in tmp_path, removed when the test passes, instead of piling up in /tmp.
    # multiprocessing makes its own temp folder once per process and keeps it: made here, inside
    # tmp_path, it would vanish under every later test of this worker (a DataLoader hung on it), so
    # it is made first, in the real temp folder.
    multiprocessing.util.get_temp_dir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    module = importlib.import_module(name)
    examples = _examples(module)
    if not examples:
        assert name in NO_EXAMPLE_MODULES or _is_reexport_package(module), (
            f"{name} has no example in any docstring: add one (it runs here), or say why in NO_EXAMPLE_MODULES"
        )
        return
    runner = doctest.DocTestRunner(optionflags=_FLAGS)
    for test in examples:
        runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) of {name} failed (run: python -m doctest -v)"


def _public_functions():
    for package_name in ("sfrik_plugin", *(f"sfrik_plugin.{room}" for room in ROOMS)):
        marks = _marks(package_name) if package_name.endswith(".solo") else []
        yield pytest.param(package_name, marks=marks, id=package_name)


@pytest.mark.parametrize("package_name", list(_public_functions()))
def test_every_public_function_has_an_example(package_name):
    package = importlib.import_module(package_name)
    missing = []
    for name in getattr(package, "__all__", []):
        obj = getattr(package, name)
        if not inspect.isfunction(obj):
            continue
        key = f"{package_name}.{name}"
        if ">>>" not in (obj.__doc__ or "") and key not in NO_EXAMPLE_FUNCTIONS:
            missing.append(f"{name} ({obj.__module__})")
    assert not missing, f"public functions of {package_name} without an example (or a reason here): {missing}"


def test_the_reasons_are_not_stale():
    """A listed module or function that has an example (or is gone) must leave the lists."""
    stale = [n for n in NO_EXAMPLE_MODULES if n not in _module_names()]
    for key in NO_EXAMPLE_FUNCTIONS:
        package_name, _, name = key.rpartition(".")
        if package_name.endswith(".solo") or package_name.endswith(".profiler"):
            continue  # may need solo-learn to import: checked by the test above where it runs
        obj = getattr(importlib.import_module(package_name), name, None)
        if obj is None or ">>>" in (obj.__doc__ or ""):
            stale.append(key)
    assert not stale, f"listed without an example but they have one, or do not exist: {stale}"

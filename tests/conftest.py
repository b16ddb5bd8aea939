"""Shared test set-up.

Note for newcomers: no test folder may be named like an importable package the tests use.
pytest puts ``tests/`` on ``sys.path``, so a folder ``tests/solo/`` would become a namespace
package ``solo`` and pass for solo-learn where it is not installed (this bit us on CI); the
solo-learn adapter's tests therefore live in ``tests/adapter/``.

The ``requires_solo`` marker: tests that need the real solo-learn. Only a *missing* solo-learn may
skip them, and not under ``SFRIK_REQUIRE_SOLO=1`` (set by `make test` and CI); an installed
solo-learn that fails to import fails them with its import error.

The ``slow`` marker (`make test-fast` runs ``-m "not slow"``, `make test` and CI run everything):
a test is slow when it starts a process or trains. Nobody has to remember to mark it:

* at collection, :func:`slow_reason` reads the code of the test, of the test-folder helpers it
  calls and of its fixtures, and marks it ``slow`` when that code names a process starter
  (:data:`PROCESS_NAMES`: ``subprocess``, the helpers of ``tests/_subprocesses.py``, the profiler's
  ``run_isolated``, ``spawn``...) or a trainer (:data:`TRAIN_NAMES`: ``fit``, ``run_pretrain``...);
* at run time, a test that is *not* marked slow and still starts a process (``subprocess``,
  ``multiprocessing``, ``os.fork``, DataLoader workers) or calls Lightning's ``Trainer.fit`` fails
  with a line saying to mark it ``@pytest.mark.slow`` — in the fast lane and in `make test` alike,
  so a slow test that slips past the reading above cannot stay in the fast lane unnoticed.
"""

from __future__ import annotations

import dis
import functools
import importlib
import importlib.util
import inspect
import multiprocessing.process
import os
import subprocess
import sys
import types
from pathlib import Path

import pytest

SOLO_MISSING_REASON = "solo-learn is not installed in this environment (`make test` installs it; README 'Quick start')"


@functools.cache
def solo_learn_state() -> tuple[str, str]:
    """``("usable" | "missing" | "broken", detail)``.

    Only a *missing* solo-learn may skip the adapter tests (and not even that under
    ``SFRIK_REQUIRE_SOLO=1``, which `make test` and CI set): an installed solo-learn that fails to
    import (e.g. lightning's ``pkg_resources`` import under setuptools >= 81) must fail loudly.
    """
    if importlib.util.find_spec("solo") is None:
        return "missing", SOLO_MISSING_REASON
    try:
        import solo  # noqa: F401
        from solo.args.pretrain import parse_cfg  # noqa: F401
        from solo.methods import METHODS  # noqa: F401
    except Exception as error:  # anything: an import error of a dependency, a broken install
        return "broken", f"solo-learn is installed but does not import: {type(error).__name__}: {error}"
    return "usable", ""


def pytest_configure(config):
    config.addinivalue_line("markers", "requires_solo: needs the maintained solo-learn installed")
    config.addinivalue_line(
        "markers",
        "slow: starts a process or trains (set automatically, see tests/conftest.py); not in `make test-fast`",
    )


TESTS_ROOT = Path(__file__).resolve().parent

#: names whose use in a test's code (or its helpers' or fixtures') means it starts a process
PROCESS_NAMES = frozenset(
    {
        "subprocess",
        "Popen",
        "multiprocessing",
        "spawn",
        "start_processes",
        "fork",
        "run_isolated",  # sfrik_plugin.profiler: one fresh process per measurement
        "checkout_env",  # tests/_subprocesses.py: the environment of a child process
        "BENCH_CPU_OVERRIDES",  # tests/_subprocesses.py: the tiny benchmarks, run as processes
        "run_cli",  # tests/adapter/conftest.py: a launcher in a fresh process
    }
)
#: names whose use means it trains (Lightning's fit, the launchers' entry points, the demo, a method's own step)
TRAIN_NAMES = frozenset({"fit", "run_pretrain", "run_linear", "run_knn", "run_demo", "training_step"})
#: names of library calls that start a process inside a library the rule does not read
PROCESS_NAMES |= {"processor"}  # platform.processor() runs `uname -p`
#: tests whose process the code cannot show (a DataLoader's worker: ``num_workers=1``), by id
SLOW_TESTS = {
    "tests/test_data_image_folder.py::test_error_survives_a_dataloader_worker_as_one_line": "DataLoader worker",
}


def _code_objects(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _code_objects(const)


PACKAGE_ROOT = TESTS_ROOT.parent / "sfrik_plugin"


def _followed(obj) -> bool:
    """Whether the rule reads ``obj``'s code too: functions of the test folder and of the package."""
    try:
        path = Path(inspect.getfile(obj)).resolve()
    except (TypeError, OSError):
        return False
    return path.is_relative_to(TESTS_ROOT) or path.is_relative_to(PACKAGE_ROOT)


def _imported_functions(code: types.CodeType) -> list:
    """The package's and test folder's functions that ``code`` imports in its body
    (``from sfrik_plugin.x import f`` inside a test: the adapter's tests import lazily)."""
    found = []
    module = None
    for instruction in dis.get_instructions(code):
        if instruction.opname == "IMPORT_NAME":
            module = instruction.argval
        elif instruction.opname == "IMPORT_FROM" and isinstance(module, str):
            if not module.startswith("sfrik_plugin") and not (TESTS_ROOT / f"{module}.py").exists():
                continue
            try:
                imported = importlib.import_module(module)
            except Exception:  # e.g. the adapter without solo-learn: the run-time rule still holds
                continue
            helper = getattr(imported, instruction.argval, None)
            if isinstance(helper, types.FunctionType) and _followed(helper):
                found.append(helper)
    return found


def _slow_names(func, seen: set) -> set:
    """The slow names ``func``'s code uses, following the functions it names (by global name, or as
    an attribute of a module it names) that live in the test folder or the package."""
    func = inspect.unwrap(func)
    code = getattr(func, "__code__", None)
    if code is None or code in seen:
        return set()
    seen.add(code)
    namespace = getattr(func, "__globals__", {})
    found: set = set()
    for part in _code_objects(code):
        names = set(part.co_names)
        for helper in _imported_functions(part):
            found |= _slow_names(helper, seen)
        found |= names & (PROCESS_NAMES | TRAIN_NAMES)  # globals and attributes, not locals
        modules = [
            namespace[n] for n in names if isinstance(namespace.get(n), types.ModuleType) and _followed(namespace[n])
        ]
        for name in names:
            candidates = [namespace.get(name)] + [getattr(m, name, None) for m in modules]
            for helper in candidates:
                if isinstance(helper, types.FunctionType) and _followed(helper):
                    found |= _slow_names(helper, seen)
    return found


def slow_reason(item) -> str | None:
    """Why ``item`` is slow (the names its code or its fixtures' code uses), or None."""
    function = getattr(item, "function", None)
    if function is None:
        return None
    seen: set = set()
    found = _slow_names(function, seen)
    fixture_info = getattr(item, "_fixtureinfo", None)
    for defs in fixture_info.name2fixturedefs.values() if fixture_info else ():
        for fixture in defs:
            if _followed(fixture.func) and fixture.func is not _guard_function():
                found |= _slow_names(fixture.func, seen)
    if not found:
        return None
    kinds = [k for k, names in (("starts a process", PROCESS_NAMES), ("trains", TRAIN_NAMES)) if found & names]
    return f"{' and '.join(kinds)} ({', '.join(sorted(found))})"


def _guard_function():
    return inspect.unwrap(_fast_tests_start_no_process_and_train_nothing)


def _mark_slow(items) -> None:
    for item in items:
        if item.get_closest_marker("slow") is None:
            reason = SLOW_TESTS.get(item.nodeid.split("[")[0]) or slow_reason(item)
            if reason is not None:
                item.add_marker(pytest.mark.slow(reason=reason))


def pytest_collection_modifyitems(config, items):
    _mark_slow(items)
    state, detail = solo_learn_state()
    if state == "usable":
        return
    required = os.environ.get("SFRIK_REQUIRE_SOLO") == "1"
    for item in items:
        if item.get_closest_marker("requires_solo") is None:
            continue
        if state == "missing" and not required:
            item.add_marker(pytest.mark.skip(reason=detail))
        else:
            reason = detail if state == "broken" else f"SFRIK_REQUIRE_SOLO=1 but {detail}"
            item.add_marker(pytest.mark.usefixtures("_solo_learn_failure"))
            item.user_properties.append(("solo_failure", reason))


@pytest.fixture
def _solo_learn_failure(request):
    reason = dict(request.node.user_properties)["solo_failure"]
    pytest.fail(reason, pytrace=False)


# ------------------------------------------------------------------ the fast lane's run-time rule


def _refuse(what: str, nodeid: str):
    def refuse(*args, **kwargs):
        pytest.fail(
            f"{nodeid} {what} but is not marked slow: add @pytest.mark.slow (tests/conftest.py says "
            "which names mark a test slow by themselves)",
            pytrace=True,
        )

    return refuse


@pytest.fixture(autouse=True)
def _fast_tests_start_no_process_and_train_nothing(request, monkeypatch):
    """A test not marked ``slow`` may not start a process or call ``Trainer.fit`` (module docstring)."""
    if request.node.get_closest_marker("slow") is not None:
        yield
        return
    nodeid = request.node.nodeid
    monkeypatch.setattr(subprocess.Popen, "__init__", _refuse("starts a process (subprocess)", nodeid))
    monkeypatch.setattr(
        multiprocessing.process.BaseProcess, "start", _refuse("starts a process (multiprocessing)", nodeid)
    )
    for name in ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system"):
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _refuse(f"starts a process (os.{name})", nodeid))
    trainer_module = sys.modules.get("lightning.pytorch.trainer.trainer")
    if trainer_module is None and importlib.util.find_spec("lightning") is not None:
        import lightning.pytorch.trainer.trainer as trainer_module
    if trainer_module is not None:
        monkeypatch.setattr(trainer_module.Trainer, "fit", _refuse("trains (Trainer.fit)", nodeid))
    yield

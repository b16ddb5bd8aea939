"""The fast lane (`make test-fast`, ``-m "not slow"``): which tests are slow is decided by the
rule in tests/conftest.py — at collection from the code, at run time by refusing what a fast test
may not do — never by timing."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFTEST = Path(__file__).resolve().with_name("conftest.py")


@pytest.fixture
def root_conftest(request):
    """tests/conftest.py as pytest loaded it (``import conftest`` may give tests/adapter's)."""
    plugins = list(request.config.pluginmanager.get_plugins()) + list(sys.modules.values())
    return next(m for m in plugins if str(getattr(m, "__file__", "")) == str(CONFTEST))


def _item(function, fixtures=()):
    """The two attributes of a pytest item that ``slow_reason`` reads."""
    defs = {name: [types.SimpleNamespace(func=f)] for name, f in fixtures}
    return types.SimpleNamespace(function=function, _fixtureinfo=types.SimpleNamespace(name2fixturedefs=defs))


def _starts_a_process():
    subprocess.run(["true"], check=True)


def _trains_through_a_helper():
    from sfrik_plugin.solo.pretrain import run_pretrain  # noqa: F401  (the name is what counts)


def _calls_a_test_helper():
    return _starts_a_process()


def _pure():
    return sum(range(3))


def test_the_rule_reads_the_code_of_tests_helpers_and_fixtures(root_conftest):
    assert root_conftest.slow_reason(_item(_pure)) is None
    assert root_conftest.slow_reason(_item(_starts_a_process)) == "starts a process (subprocess)"
    assert root_conftest.slow_reason(_item(_calls_a_test_helper)) == "starts a process (subprocess)"
    reason = root_conftest.slow_reason(_item(_trains_through_a_helper))
    assert reason.startswith("trains (") and "run_pretrain" in reason
    # a fixture that starts a process makes its tests slow
    assert root_conftest.slow_reason(_item(_pure, [("server", _starts_a_process)])) == "starts a process (subprocess)"
    # the package's own functions are read too: the launchers' flows train
    from sfrik_plugin.solo import demo

    assert "trains" in root_conftest.slow_reason(_item(demo.main))


def test_make_test_fast_runs_the_tests_not_marked_slow_and_ci_still_runs_everything():
    makefile = (REPO_ROOT / "Makefile").read_text()
    fast = re.search(r"^test-fast:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert fast and '-m "not slow"' in fast.group(1)
    full = re.search(r"^test:.*\n((?:\t.*\n)+)", makefile, re.M)
    assert full and "-m" not in full.group(1).replace("-m pytest", "")


@pytest.mark.slow(reason="runs an inner pytest whose slow test starts a process")
def test_an_unmarked_test_that_starts_a_process_fails_and_a_marked_one_runs(pytester):
    pytester.makeconftest(CONFTEST.read_text())
    pytester.makepyfile(
        test_inner=textwrap.dedent(
            """
            import importlib
            import pytest

            def _sneaky():  # the process starter hidden from the collection-time reading
                return importlib.import_module("sub" + "process").run(["true"])

            def test_forgot_the_mark():
                _sneaky()

            @pytest.mark.slow
            def test_marked():
                _sneaky()

            def test_fast():
                assert 1 + 1 == 2
            """
        )
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_forgot_the_mark starts a process (subprocess) but is not marked slow*"])
    deselected = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-q", "-m", "not slow")
    deselected.assert_outcomes(passed=1, failed=1, deselected=1)

"""Shared test set-up.

Note for newcomers: no test folder may be named like an importable package the tests use.
pytest puts ``tests/`` on ``sys.path``, so a folder ``tests/solo/`` would become a namespace
package ``solo`` and pass for solo-learn where it is not installed (this bit us on CI); the
solo-learn adapter's tests therefore live in ``tests/adapter/``.

The ``requires_solo`` marker: tests that need the real solo-learn. Only a *missing* solo-learn may
skip them, and not under ``SFRIK_REQUIRE_SOLO=1`` (set by `make test` and CI); an installed
solo-learn that fails to import fails them with its import error.
"""

from __future__ import annotations

import functools
import importlib.util
import os

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


def pytest_collection_modifyitems(config, items):
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

"""Shared helpers for the solo-learn adapter tests.

Tests marked ``requires_solo`` run against the REAL solo-learn (the maintained GitHub version)
and are skipped, with the reason below, where it is not installed (e.g. CI). They import the
adapter lazily (inside fixtures/tests), so collection never needs solo-learn.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SOLO_MISSING_REASON = "solo-learn is not installed in this environment (`make test` installs it; README 'Quick start')"
REPO_ROOT = Path(__file__).resolve().parents[2]


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


def make_image_folder(root: Path, classes: int = 4, per_class: int = 8, size: int = 20, seed: int = 0) -> Path:
    """Writes a tiny labelled ImageFolder of generated RGB images whose colour depends on the class."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        folder = root / f"class_{c}"
        folder.mkdir(parents=True, exist_ok=True)
        base = np.zeros(3)
        base[c % 3] = 200.0
        for i in range(per_class):
            noise = rng.normal(0, 40, size=(size, size, 3))
            img = np.clip(base + noise + 20 * (c // 3), 0, 255).astype("uint8")
            Image.fromarray(img).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict:
    """{"train": path, "val": path}: generated 6-class ImageFolders (train 6x6, val 6x3 images of 20 px).
    Six classes because solo-learn's LinearModel computes top-5 accuracy unconditionally."""
    root = tmp_path_factory.mktemp("tiny_images")
    return {
        "train": make_image_folder(root / "train", classes=6, per_class=6, seed=0),
        "val": make_image_folder(root / "val", classes=6, per_class=3, seed=1),
    }


def run_cli(command: str, args: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    """Runs ``python -m sfrik_plugin.solo.cli <command> <args>`` in a fresh process."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONWARNINGS"] = "ignore"
    env.setdefault("OMP_NUM_THREADS", "1")
    env.pop("SFRIK_SOLO_CLI_COMMAND", None)
    proc = subprocess.run(
        [sys.executable, "-m", "sfrik_plugin.solo.cli", command, *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if proc.returncode != 0:
        raise AssertionError(
            f"`{command}` failed ({proc.returncode}).\nstdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"
        )
    return proc


# overrides that make any shipped pretraining config tiny and CPU-only
TINY_CPU = [
    "accelerator=cpu",
    "devices=1",
    "strategy=auto",
    "precision=32",
    "optimizer.batch_size=4",
    "data.num_workers=0",
    "method_kwargs.proj_hidden_dim=32",
    "method_kwargs.proj_output_dim=16",
    "++performance.disable_channel_last=True",
    "++enable_progress_bar=False",
    "++num_sanity_val_steps=0",
    "++log_every_n_steps=1",
    "wandb=off",
]


@pytest.fixture
def cli():
    """``cli(command, args, cwd)``: runs a launcher in a fresh process, raising with its output on failure."""
    return run_cli


@pytest.fixture
def tiny_overrides() -> list:
    return list(TINY_CPU)


@pytest.fixture
def compose():
    """``compose("cifar10/sfrik", [overrides])``: a shipped pretraining config, as the launcher reads it."""

    def _compose(name: str, overrides=()):
        from sfrik_plugin.solo.config import compose_config

        return compose_config("pretrain", name, list(overrides))

    return _compose

"""Shared fixtures of the solo-learn adapter tests (tiny image folders, the launchers in fresh
processes, tiny CPU overrides). The tests run against the REAL solo-learn (``requires_solo``, see
tests/conftest.py) and import the adapter lazily, so collection never needs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from _images import make_image_folder
from _subprocesses import checkout_env

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> dict:
    """{"train": path, "val": path}: generated 6-class ImageFolders (train 6x6, val 6x3 images of 20 px).
    Six classes because solo-learn's LinearModel computes top-5 accuracy unconditionally."""
    root = tmp_path_factory.mktemp("tiny_images")
    return {
        "train": make_image_folder(root / "train", classes=6, per_class=6, seed=0),
        "val": make_image_folder(root / "val", classes=6, per_class=3, seed=1),
    }


def run_cli(command: str, args: list, cwd: Path, timeout: int = 300, check: bool = True) -> subprocess.CompletedProcess:
    """Runs ``python -m sfrik_plugin.solo.cli <command> <args>`` in a fresh process (warnings left
    as a user sees them: the launchers silence the known upstream ones themselves)."""
    env = checkout_env()
    env.pop("PYTHONWARNINGS", None)
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
    if check and proc.returncode != 0:
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

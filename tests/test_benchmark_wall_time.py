"""The pretraining time of a resumed benchmark run is the time its attempts worked, not the time
the run stood still between them (a killed sweep resumed after a reboot)."""

from __future__ import annotations

import os

import pytest

from sfrik_plugin.benchmark.worker import _attempts_wall_time


def _checkpoint(run_dir, name, mtime):
    path = run_dir / "ckpt" / "method" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    os.utime(path, (mtime, mtime))


def test_an_interrupted_attempt_without_a_checkpoint_counts_nothing(tmp_path):
    # attempt 1 killed at 1000 before any checkpoint; attempt 2 runs 1833 -> 2027 and saves at 2027
    _checkpoint(tmp_path, "ep=2.ckpt", 2027.0)
    attempts = [{"start": 1000.0, "end": None}, {"start": 1833.0, "end": 2027.0}]
    assert _attempts_wall_time(attempts, tmp_path) == pytest.approx(194.0)


def test_an_interrupted_attempt_counts_until_its_own_last_checkpoint(tmp_path):
    _checkpoint(tmp_path, "ep=0.ckpt", 1040.0)
    _checkpoint(tmp_path, "ep=1.ckpt", 1080.0)
    _checkpoint(tmp_path, "ep=2.ckpt", 2100.0)  # written by the resumed attempt
    attempts = [{"start": 1000.0, "end": None}, {"start": 2000.0, "end": 2100.0}]
    assert _attempts_wall_time(attempts, tmp_path) == pytest.approx(80.0 + 100.0)


def test_a_last_attempt_killed_counts_until_its_last_checkpoint(tmp_path):
    _checkpoint(tmp_path, "ep=0.ckpt", 1030.0)
    _checkpoint(tmp_path, "ep=1.ckpt", 2050.0)
    attempts = [{"start": 1000.0, "end": None}, {"start": 2000.0, "end": None}]
    assert _attempts_wall_time(attempts, tmp_path) == pytest.approx(30.0 + 50.0)

"""The profiling scripts end to end on a tiny grid (a few seconds), and their help."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sfrik_plugin.files.records import read_csv

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_profile_loss_script_end_to_end_on_a_tiny_grid(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (a dev extra) is not installed")
    out = tmp_path / "out"
    command = [sys.executable, str(REPO_ROOT / "scripts" / "profile_loss.py"), "--sizes", "16", "--dims", "32,64"]
    command += ["--contenders", "sfrik-gram", "sfrik-blocked", "--max-repeats", "2", "--memory-budget", "1GiB"]
    command += ["--out", str(out)]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loss configurations" in proc.stderr  # progress
    rows = read_csv(out / "profile_loss.csv")
    assert {(r["contender"], r["q"], r["status"]) for r in rows} == {
        (c, q, "ok") for c in ("sfrik-gram", "sfrik-blocked") for q in ("32", "64")
    }
    payload = json.loads((out / "profile_loss.json").read_text())
    assert payload["machine"]["cpu_count"] == os.cpu_count() and payload["machine"]["torch"] == torch.__version__
    assert payload["memory_budget"] == "--memory-budget 1.0 GiB"
    assert "sfrik-gram" in payload["summary"]["slopes"]
    assert payload["contenders"]["sfrik-gram"].startswith("sfrik_loss_func(method='gram')")
    markdown = (out / "profile_loss.md").read_text()
    assert markdown.startswith("Machine:") and "| 16 | 64 | SFRIK (blocked) |" in markdown
    assert (out / "profile_loss.png").read_bytes()[:4] == b"\x89PNG"


def test_profile_scripts_help_prints_the_gpu_commands():
    for script, expected in (
        ("profile_loss.py", "--device cuda --sizes 256 2048"),
        ("profile_train.py", "--backbone resnet50 --image-size 224"),
    ):
        proc = subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / script), "--help"], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0 and expected in proc.stdout

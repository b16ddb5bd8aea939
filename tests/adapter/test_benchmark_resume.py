"""The benchmark runner killed at any stage resumes to the same results table (issue 13).

A tiny benchmark (one SSL method with a 2-value grid that gets extended, random init, one seed,
small_cnn, 3 epochs of 32 images) runs to completion in one folder: the reference. In a second
folder the runner is killed with SIGKILL — its whole process group, so the worker dies with it —
after the data are prepared, after the first tuning run, in the middle of a pretraining (an epoch
checkpoint written, the pretraining not finished), after the tuning phase and after the first test
evaluation, and re-run each time; then it runs to the end. results.csv and tuning.csv must equal the
reference's, and so must every trained backbone. The timing and memory columns of results.csv
(wall_time_s, peak_memory_mb) are left out of the comparison: they measure the machine, not the
result. Needs the real solo-learn."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _subprocesses import BENCH_CPU_OVERRIDES, checkout_env

pytestmark = pytest.mark.requires_solo

REPO_ROOT = Path(__file__).resolve().parents[2]
TIMING_COLUMNS = {"wall_time_s", "peak_memory_mb"}

TINY = """
data: {{kind: image_folder, train_root: {train}, test_root: {test}, train_per_class: 8, val_per_class: 4}}
seeds: [0]
tune_seeds: [0]
epochs: 3
crop_size: 16
batch_size: 4
projector: {{hidden: 32, q: 16}}
backbone: {{name: small_cnn, kwargs: {{width: 4}}}}
common_overrides: {common}               # with ++data.fast_augment=true, the shipped config's input pipeline
tuning: {{max_extensions: 1}}
methods:
  sfrik:
    config: custom/sfrik
    grid: [{{method_kwargs.sim_coeff: 100.0}}, {{method_kwargs.sim_coeff: 400.0}}]
evaluation:
  knn: {{k: 5}}
  semi_supervised: {{fractions: [0.01, 0.1], epochs: 1, batch_size: 4}}
"""


def _noisy_images(root: Path, per_class: int, seed: int) -> Path:
    """4 classes told apart by a faint vertical stripe in strong noise: accuracies between chance and 100 %."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(4):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = rng.normal(128, 60, size=(16, 16, 3))
            img[:, 4 * c : 4 * c + 4, :] += 45
            Image.fromarray(np.clip(img, 0, 255).astype("uint8")).save(root / f"c{c}" / f"{i:03d}.png")
    return root


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench_resume")
    train, test = _noisy_images(root / "train", 12, seed=0), _noisy_images(root / "test", 6, seed=1)
    path = root / "bench.yaml"
    path.write_text(
        TINY.format(train=train, test=test, common=json.dumps(["++data.fast_augment=true"] + BENCH_CPU_OVERRIDES))
    )
    return path


def _start(config: Path, out: Path) -> subprocess.Popen:
    env = checkout_env(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    out.mkdir(parents=True, exist_ok=True)
    log = open(out.parent / f"{out.name}.log", "a")  # noqa: SIM115 - closed with the process
    # a session of its own: killing its process group kills the runner and its worker, nothing else
    return subprocess.Popen(
        [sys.executable, "-m", "sfrik_plugin.benchmark.cli", "--config", str(config), "--out", str(out)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _run_to_the_end(config: Path, out: Path) -> None:
    proc = _start(config, out)
    assert proc.wait(timeout=600) == 0, (out.parent / f"{out.name}.log").read_text()[-4000:]


def _kill_when(config: Path, out: Path, condition: Callable[[], bool], timeout: float = 300) -> bool:
    """Starts the runner, SIGKILLs its process group once ``condition()`` holds; False if it finished first."""
    proc = _start(config, out)
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline:
        if condition():
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return True
        time.sleep(0.01)
    assert proc.poll() is not None, "the runner did not reach the kill point in time"
    assert proc.returncode == 0, (out.parent / f"{out.name}.log").read_text()[-4000:]
    return False


def _count(out: Path, pattern: str) -> int:
    return len(list(out.glob(pattern)))


def _mid_pretraining(out: Path) -> list[Path]:
    """Run folders with an epoch checkpoint whose pretraining has not finished."""
    return [
        d for d in out.glob("runs/*/*/seed*") if list(d.glob("ckpt/**/*.ckpt")) and not (d / "pretrain.json").exists()
    ]


def _table(path: Path) -> list[dict[str, object]]:
    from sfrik_plugin.files.records import read_csv

    rows = []
    for row in read_csv(path):
        kept: dict[str, object] = {}
        for key, value in row.items():
            if key in TIMING_COLUMNS:
                continue
            try:
                kept[key] = float(value)
            except ValueError:
                kept[key] = value
        rows.append(kept)
    return rows


def _same(a: list[dict[str, object]], b: list[dict[str, object]]) -> bool:
    if len(a) != len(b) or any(set(x) != set(y) for x, y in zip(a, b)):
        return False
    for x, y in zip(a, b):
        for key in x:
            u, v = x[key], y[key]
            if isinstance(u, float) and isinstance(v, float):
                if not (math.isclose(u, v, rel_tol=1e-6, abs_tol=1e-6) or (math.isnan(u) and math.isnan(v))):
                    return False
            elif u != v:
                return False
    return True


def test_killed_at_any_stage_the_benchmark_resumes_to_the_same_results(tmp_path, config):
    import torch

    from sfrik_plugin.files.checkpoints import load_checkpoint
    from sfrik_plugin.files.records import read_json

    reference = tmp_path / "reference"
    _run_to_the_end(config, reference)
    ref_rows, ref_tuning = _table(reference / "results.csv"), _table(reference / "tuning.csv")
    assert [r["method"] for r in ref_rows] == ["sfrik", "random_init"]
    assert [r["origin"] for r in ref_tuning][:2] == ["grid", "grid"] and str(ref_tuning[2]["origin"]).startswith(
        "extension 1"
    )
    assert 0.0 < float(ref_rows[0]["linear_mean"]) < 100.0  # not saturated: the comparison means something

    out = tmp_path / "killed"
    kills = [
        ("after the data", lambda: (out / "data.json").exists()),
        ("after the first tuning run", lambda: _count(out, "runs/*/*/seed*/done.json") >= 1),
    ]
    for what, condition in kills:
        assert _kill_when(config, out, condition), f"finished before the kill point: {what}"
    # in the middle of a pretraining: an epoch checkpoint exists, the pretraining has not finished
    interrupted = None
    for _ in range(4):
        if not _kill_when(config, out, lambda: bool(_mid_pretraining(out))):
            break
        caught = _mid_pretraining(out)
        if caught:
            interrupted = caught[0]
            break
    assert interrupted is not None, "could not kill the runner in the middle of a pretraining"
    for condition in (
        lambda: (out / "chosen.json").exists(),  # after the tuning phase
        lambda: _count(out, "runs/*/*/seed*/eval_test.json") >= 1,  # after the first test evaluation
    ):
        _kill_when(config, out, condition)  # may finish first on a fast machine: then nothing to kill
    _run_to_the_end(config, out)

    # the interrupted pretraining continued from its checkpoint
    attempts = read_json(interrupted / "attempts.json")
    assert len(attempts) >= 2 and attempts[0]["end"] is None and "ep=" in (attempts[-1]["resumed_from"] or "")
    assert "resuming from" in (interrupted / "train.log").read_text()

    assert _same(_table(out / "results.csv"), ref_rows), (_table(out / "results.csv"), ref_rows)
    assert _same(_table(out / "tuning.csv"), ref_tuning), (_table(out / "tuning.csv"), ref_tuning)
    # and the weights behind them
    folders = sorted(p.parent.relative_to(reference) for p in reference.glob("runs/*/*/seed*/backbone.pt"))
    assert folders == sorted(p.parent.relative_to(out) for p in out.glob("runs/*/*/seed*/backbone.pt"))
    for folder in folders:
        a, b = load_checkpoint(reference / folder / "backbone.pt"), load_checkpoint(out / folder / "backbone.pt")
        assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a), folder

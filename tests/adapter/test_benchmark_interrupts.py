"""Ctrl-C and SIGTERM at each stage of a benchmark never publish a wrong table (issue 19).

The tiny benchmark of ``test_benchmark_resume`` runs to completion in one folder: the reference. In
a second folder it is interrupted as people do it — SIGINT to its whole process group (a terminal's
Ctrl-C reaches the runner and its worker) or SIGTERM to the runner alone (``kill PID``) — in the
middle of a pretraining, while a checkpoint is being saved, during a test evaluation and during the
semi-supervised stage. Each time the runner must exit 130 / 143 with one line and no traceback, and
no interrupted pretraining may be marked done (the bug this guards against: an interrupted worker
wrote backbone.pt, pretrain.json with 25 of 96 steps and done.json, and the re-run published it).
Re-running then resumes to the reference's results.csv, tuning.csv and weights.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _subprocesses import checkout_env
from test_benchmark_resume import _count, _mid_pretraining, _run_to_the_end, _same, _table
from test_benchmark_resume import config as config  # noqa: F401 - the module-scoped fixture, shared

pytestmark = pytest.mark.requires_solo

# holds every atomic checkpoint save between its write and its rename (and says when): a signal lands inside
_SLOW_SAVE = """
import os, time
_replace = os.replace
def _slow_replace(src, dst, *args, **kwargs):
    if str(src).endswith(".partial") and os.environ.get("SFRIK_TEST_SAVING"):
        open(os.environ["SFRIK_TEST_SAVING"], "w").close()
        time.sleep(3.0)
    return _replace(src, dst, *args, **kwargs)
os.replace = _slow_replace
"""


def _start(config: Path, out: Path, hooks: Path | None = None, **extra: str) -> tuple[subprocess.Popen, Path]:
    env = checkout_env(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore", **extra)
    if hooks is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(hooks), env["PYTHONPATH"]])
    out.mkdir(parents=True, exist_ok=True)
    log = out.parent / f"{out.name}-{time.monotonic_ns()}.log"
    handle = open(log, "w")  # noqa: SIM115 - closed with the process
    proc = subprocess.Popen(
        [sys.executable, "-m", "sfrik_plugin.benchmark.cli", "--config", str(config), "--out", str(out)],
        stdout=handle,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    return proc, log


def _interrupt_when(
    config: Path, out: Path, condition: Callable[[float], bool], signum: int, group: bool, **start: object
) -> bool:
    """Starts the runner and signals it (its group, or the runner alone) once ``condition(started)``
    holds for what this invocation did; checks the exit status and the one line. False if the
    benchmark finished first."""
    started = time.time()
    proc, log = _start(config, out, **start)  # type: ignore[arg-type]
    deadline = started + 300
    while proc.poll() is None and time.time() < deadline:
        if condition(started):
            (os.killpg if group else os.kill)(proc.pid, signum)
            proc.wait(timeout=300)
            text = log.read_text()
            assert proc.returncode == 128 + signum, (proc.returncode, text[-4000:])
            assert "Traceback" not in text, text[-4000:]
            lines = [line for line in text.splitlines() if line.startswith("sfrik-benchmark: interrupted by")]
            assert len(lines) == 1 and signal.Signals(signum).name in lines[0], text[-4000:]
            assert "run the same command again to resume" in lines[0]
            return True
        time.sleep(0.01)
    assert proc.poll() is not None, "the runner did not reach the interrupt point in time"
    assert proc.returncode == 0, log.read_text()[-4000:]
    return False


def _stage_running(out: Path, stage: str, marker: str) -> Callable[[float], bool]:
    """A worker started by this invocation has announced ``stage`` for a run whose ``marker`` is not written yet."""

    def check(started: float) -> bool:
        for log in out.glob("runs/*/*/seed*/*.log"):
            if log.stat().st_mtime < started or (log.parent / marker).exists():
                continue
            latest = log.read_text(errors="replace").rsplit("\n===== ", 1)[-1]  # this worker's output
            if f"stage {stage}" in latest:
                return True
        return False

    return check


def _pretraining_in_progress(started: float) -> Callable[[Path], bool]:
    return lambda out: any(
        p.stat().st_mtime >= started for run in _mid_pretraining(out) for p in run.glob("ckpt/**/*.ckpt")
    )


def _no_unfinished_run_is_done(out: Path) -> None:
    from sfrik_plugin.benchmark.stages import is_done, pretraining_complete

    for run in out.glob("runs/*/*/seed*"):
        if (run / "done.json").exists() or (run / "pretrain.json").exists():
            assert pretraining_complete(run), f"{run}: an unfinished pretraining is recorded"
        if (run / "done.json").exists():
            assert is_done(run, "train")


def test_interrupted_at_each_stage_the_benchmark_resumes_to_the_same_results(tmp_path, config):  # noqa: F811
    import torch

    from sfrik_plugin.files.checkpoints import load_checkpoint

    reference = tmp_path / "reference"
    _run_to_the_end(config, reference)
    ref_rows, ref_tuning = _table(reference / "results.csv"), _table(reference / "tuning.csv")

    out = tmp_path / "interrupted"
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_SLOW_SAVE)
    saving = tmp_path / "saving"

    # mid-pretraining: Ctrl-C, then SIGTERM to the runner alone
    caught = []
    for signum, group in ((signal.SIGINT, True), (signal.SIGTERM, False)):
        assert _interrupt_when(config, out, lambda t: _pretraining_in_progress(t)(out), signum, group)
        caught += _mid_pretraining(out)
        _no_unfinished_run_is_done(out)
    assert caught, "no pretraining was interrupted in its middle"
    # inside a checkpoint save: the save completes, the run stops after it, nothing is half-written
    assert _interrupt_when(
        config, out, lambda t: saving.exists(), signal.SIGINT, True, hooks=hooks, SFRIK_TEST_SAVING=str(saving)
    ), "finished before a checkpoint save"
    assert not [p for p in out.rglob(".*.partial")]
    _no_unfinished_run_is_done(out)
    # the evaluation stages (may finish first on a fast machine: then there is nothing to interrupt)
    _interrupt_when(config, out, _stage_running(out, "test", "eval_test.json"), signal.SIGINT, True)
    _interrupt_when(config, out, _stage_running(out, "semi", "eval_semi.json"), signal.SIGTERM, False)
    _no_unfinished_run_is_done(out)
    _run_to_the_end(config, out)

    assert _count(out, "runs/*/*/seed*/done.json") == _count(reference, "runs/*/*/seed*/done.json")
    assert _same(_table(out / "results.csv"), ref_rows), (_table(out / "results.csv"), ref_rows)
    assert _same(_table(out / "tuning.csv"), ref_tuning), (_table(out / "tuning.csv"), ref_tuning)
    folders = sorted(p.parent.relative_to(reference) for p in reference.glob("runs/*/*/seed*/backbone.pt"))
    assert folders == sorted(p.parent.relative_to(out) for p in out.glob("runs/*/*/seed*/backbone.pt"))
    for folder in folders:
        a, b = load_checkpoint(reference / folder / "backbone.pt"), load_checkpoint(out / folder / "backbone.pt")
        assert all(torch.allclose(a[k], b[k], rtol=1e-5, atol=1e-6) for k in a), folder


def test_a_refused_backbone_is_one_line(tmp_path, config):  # noqa: F811
    """A backbone.pt that the trust policy refuses (or that is cut short) ends the benchmark with one
    line naming it and exit status 2, not the worker's traceback."""
    out = tmp_path / "bench"
    _run_to_the_end(config, out)
    run = next(p.parent for p in out.glob("runs/sfrik/*/seed*/eval_test.json"))
    (run / "eval_test.json").unlink()
    backbone = run / "backbone.pt"
    backbone.write_bytes(backbone.read_bytes()[: backbone.stat().st_size // 2])  # truncated
    proc, log = _start(config, out)
    proc.wait(timeout=300)
    text = log.read_text()
    assert proc.returncode == 2, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    (line,) = [line for line in text.splitlines() if line.startswith("sfrik-benchmark: error:")]
    assert str(backbone) in line and "not a readable PyTorch checkpoint" in line

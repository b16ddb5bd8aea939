"""Running one stage of one run in a worker process, and the markers that make it resumable.

A stage (``train``: pretraining + validation evaluation; ``test``: linear probe and kNN on the
test split; ``semi``: semi-supervised fine-tuning) runs in a fresh process
(``python -m sfrik_plugin.benchmark.worker RUN_DIR STAGE [STAGE...]``: the stages a run still
needs, in one process, so their imports are paid once) and ends by writing its marker atomically. :func:`run_stage` skips a stage whose marker exists
(and, for ``train``, whose run recorded all its planned steps); a run folder is tied to its
``spec.json`` (another spec in the same folder is an error, never a silent mix of settings).
An interrupted pretraining continues from the newest complete checkpoint in ``ckpt/``.

Example:
    >>> STAGE_MARKERS["train"], STAGE_MARKERS["test"], STAGE_MARKERS["semi"]
    ('done.json', 'eval_test.json', 'eval_semi.json')
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..console import InputError, get_logger
from ..files.records import jsonable, read_json, write_json
from ..interrupts import Interrupted

__all__ = [
    "STAGE_MARKERS",
    "StageFailed",
    "is_done",
    "pretraining_complete",
    "latest_checkpoint",
    "check_spec",
    "run_stage",
]

log = get_logger(__name__)

#: a worker's exit status for bad input (its last ``... error: ...`` line says which)
INPUT_ERROR_STATUS = 2

STAGE_MARKERS = {"train": "done.json", "test": "eval_test.json", "semi": "eval_semi.json"}


class StageFailed(RuntimeError):
    """A worker ended without writing its marker; ``log_path`` holds its output."""

    def __init__(self, message: str, run_dir: Path, stage: str, code: int, log_path: Path):
        super().__init__(message)
        self.run_dir, self.stage, self.code, self.log_path = run_dir, stage, code, log_path


def is_done(run_dir: str | os.PathLike, stage: str = "train") -> bool:
    """Whether the marker of ``stage`` exists (and is readable) in ``run_dir``; for ``train`` also
    whether the run's own record says its pretraining reached the planned number of steps (a worker
    that ended early, for whatever reason, never makes a stage count as done).

    Example:
        >>> import tempfile, pathlib
        >>> run = pathlib.Path(tempfile.mkdtemp())
        >>> _ = write_json(run / "done.json", {}), write_json(run / "pretrain.json", {"steps": 25, "planned_steps": 96})
        >>> is_done(run, "train")
        False
    """
    if stage not in STAGE_MARKERS:
        raise ValueError(f"stage must be one of {sorted(STAGE_MARKERS)}, got {stage!r}")
    run_dir = Path(run_dir)
    if read_json(run_dir / STAGE_MARKERS[stage]) is None:
        return False
    return stage != "train" or pretraining_complete(run_dir)


def pretraining_complete(run_dir: str | os.PathLike) -> bool:
    """Whether ``pretrain.json`` records as many steps as were planned (a record without the plan,
    from a version that did not keep it, cannot show that and does not count)."""
    record = read_json(Path(run_dir) / "pretrain.json")
    if not isinstance(record, dict) or record.get("planned_steps") is None:
        return False
    return int(record.get("steps") or 0) >= int(record["planned_steps"])


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete solo-learn checkpoint under ``run_dir/ckpt`` (highest epoch, then newest
    file), or None. Hidden partial files of an interrupted save are never returned."""
    from ..solo.checkpointing import checkpoint_epoch, is_complete_checkpoint

    found = [
        p
        for p in (Path(run_dir) / "ckpt").rglob("*.ckpt")
        if p.is_file() and not p.name.startswith(".") and is_complete_checkpoint(p)
    ]
    if not found:
        return None
    return max(found, key=lambda p: (checkpoint_epoch(p), p.stat().st_mtime))


def check_spec(run_dir: Path, spec: Mapping[str, Any]) -> None:
    """Writes ``spec.json`` on first use; raises :class:`InputError` if the folder was started with another spec."""
    old = read_json(run_dir / "spec.json")
    new = json.loads(json.dumps(jsonable(spec), sort_keys=True))
    if old is not None and old != new:
        changed = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
        raise InputError(
            f"{run_dir} was started with another specification (differs in {changed}); use another --out "
            f"folder (or delete that run) instead of mixing results"
        )
    if old is None:
        write_json(run_dir / "spec.json", new)


def run_stage(
    run_dir: str | os.PathLike, spec: Mapping[str, Any], stages: str | Sequence[str], python: str | None = None
) -> str:
    """Runs the given stages of a run (in order) in one worker process, skipping those whose marker exists.

    Returns ``"skipped"`` when every stage was finished before, else ``"done"``; raises
    :class:`StageFailed` when the worker ends without the markers (its output is in
    ``run_dir/<stage>.log``). Ctrl-C or a kill of this process stops the worker too (a resumed
    benchmark restarts it).
    """
    run_dir = Path(run_dir)
    wanted = [stages] if isinstance(stages, str) else list(stages)
    for stage in wanted:
        if stage not in STAGE_MARKERS:
            raise ValueError(f"stage must be one of {sorted(STAGE_MARKERS)}, got {stage!r}")
    run_dir.mkdir(parents=True, exist_ok=True)
    check_spec(run_dir, spec)
    todo = [stage for stage in wanted if not is_done(run_dir, stage)]
    if not todo:
        return "skipped"
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore")
    cmd = [python or sys.executable, "-m", "sfrik_plugin.benchmark.worker", str(run_dir), *todo]
    log_path = run_dir / f"{todo[0]}.log"
    start = time.time()
    with open(log_path, "a") as handle:
        handle.write(f"\n===== {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(cmd)}\n")
        handle.flush()
        proc = subprocess.Popen(cmd, stdout=handle, stderr=subprocess.STDOUT, env=env)
        try:
            code = proc.wait()
        except BaseException as error:
            # Ctrl-C reached the worker too (same process group); a SIGTERM to this process alone does
            # not: pass it on. The worker stops at its next safe point, keeping its last checkpoint.
            proc.terminate()
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if isinstance(error, (Interrupted, KeyboardInterrupt)):
                signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
                raise Interrupted(signum, f"during stage {'+'.join(todo)} of {run_dir}") from None
            raise
    missing = [stage for stage in todo if not is_done(run_dir, stage)]
    if code == INPUT_ERROR_STATUS:  # the worker's one-line refusal (e.g. an untrusted backbone.pt)
        lines = [line for line in log_path.read_text(errors="replace").splitlines() if ": error: " in line]
        reason = lines[-1].split(": error: ", 1)[1] if lines else f"bad input (exit status {code})"
        raise InputError(f"stage {'+'.join(todo)} of {run_dir}: {reason} (log: {log_path})")
    if code != 0 or missing:
        tail = log_path.read_text(errors="replace")[-3000:]
        stage = missing[0] if missing else todo[-1]
        raise StageFailed(
            f"stage {stage!r} of {run_dir} failed (exit code {code}); log {log_path}:\n{tail}",
            run_dir,
            stage,
            code,
            log_path,
        )
    log.info("  %s: %s (%.0f s)", "+".join(todo), run_dir, time.time() - start)
    return "done"

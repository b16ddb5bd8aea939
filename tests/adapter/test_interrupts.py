"""Ctrl-C and SIGTERM during pretraining, as a person sends them, with the real solo-learn on CPU.

A terminal's Ctrl-C is SIGINT to the whole process group (the launcher, its DDP ranks and its
DataLoader workers); ``kill PID`` is SIGTERM to one process. Either must stop the run at a safe
point with exit status 130 / 143 (never 0: Lightning's own "graceful shutdown" returned as if
training had finished), one line naming the last complete checkpoint and no traceback, keep that
checkpoint whole (also when the signal arrives while it is being written), and the same command
must then resume to the weights of a run that was never interrupted. The auto-resumer's choice of
checkpoint goes through the trust policy like an explicit one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _images import make_image_folder
from _subprocesses import checkout_env
from test_resume_faults import EPOCHS
from test_resume_faults import _command as resume_command

pytestmark = pytest.mark.requires_solo

# a sitecustomize that holds every atomic checkpoint save between its write and its rename for a
# while (and says when), so that a signal lands inside the save
_SLOW_SAVE = """
import os, time
_replace = os.replace
def _slow_replace(src, dst, *args, **kwargs):
    if str(src).endswith(".partial"):
        open(os.environ["SFRIK_TEST_SAVING"], "w").close()
        time.sleep(3.0)
    return _replace(src, dst, *args, **kwargs)
os.replace = _slow_replace
"""


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("interrupt_images")
    # 6 classes x 20 images, batch 4: 30 steps an epoch, long enough to be interrupted in the middle
    return {
        "train": make_image_folder(root / "train", classes=6, per_class=20, size=16, seed=0),
        "val": make_image_folder(root / "val", classes=6, per_class=2, size=16, seed=1),
    }


def _command(data, ckpt_dir: Path, workers: int = 0, devices: int = 1) -> list[str]:
    return resume_command(data, ckpt_dir, workers, epochs=EPOCHS, devices=devices)


def _env(**extra: str) -> dict:
    env = checkout_env(OMP_NUM_THREADS="1", **extra)
    env.pop("SFRIK_SOLO_CLI_COMMAND", None)
    return env


def _start(command: list[str], cwd: Path, env: dict) -> subprocess.Popen:
    # a session of its own: the test can signal the process group as a terminal does
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )


def _interrupt_when(proc: subprocess.Popen, ready, signum: int, group: bool, after: float = 0.4) -> tuple[str, str]:
    deadline = time.time() + 300
    while not ready() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the run ended before it could be interrupted:\n" + proc.communicate()[1][-3000:]
    time.sleep(after)
    (os.killpg if group else os.kill)(proc.pid, signum)
    return proc.communicate(timeout=300)


def _final_weights(ckpt_dir: Path) -> tuple[dict, int]:
    from sfrik_plugin.files.checkpoints import load_checkpoint

    (final,) = list(ckpt_dir.rglob(f"*-ep={EPOCHS - 1}.ckpt"))
    state = load_checkpoint(final)
    return state["state_dict"], state["global_step"]


def _assert_same_weights(ours: Path, reference: Path) -> None:
    import torch

    expected, expected_steps = _final_weights(reference)
    got, steps = _final_weights(ours)
    assert steps == expected_steps and set(got) == set(expected)
    for name, tensor in expected.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(got[name], tensor, rtol=1e-6, atol=1e-7, msg=name)
        else:
            assert torch.equal(got[name], tensor), name


def _assert_one_line(stderr: str, signame: str, checkpoint: Path) -> None:
    assert "Traceback" not in stderr, stderr[-3000:]
    lines = [line for line in stderr.splitlines() if "interrupted" in line]
    assert len(lines) == 1, stderr[-3000:]
    assert lines[0].startswith(f"sfrik-pretrain: interrupted by {signame}; stopped in epoch "), lines[0]
    assert f"last complete checkpoint: {checkpoint}" in lines[0] and "run the same command again to resume" in lines[0]


def _complete_checkpoints(ckpt_dir: Path) -> list[Path]:
    return sorted(p for p in ckpt_dir.rglob("*.ckpt") if not p.name.startswith("."))


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict:
    """Uninterrupted runs, one per DataLoader worker count, made on first use."""
    made: dict[int, Path] = {}

    def get(workers: int) -> Path:
        if workers not in made:
            folder = tmp_path_factory.mktemp(f"straight{workers}")
            proc = subprocess.run(
                _command(data, folder / "ckpt", workers), cwd=folder, env=_env(), capture_output=True, text=True
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            made[workers] = folder / "ckpt"
        return made[workers]

    return get  # type: ignore[return-value]


@pytest.mark.parametrize(
    "signum, group, workers",
    [(signal.SIGINT, True, 1), (signal.SIGTERM, False, 0)],
    ids=["ctrl-c-to-the-group-with-a-dataloader-worker", "sigterm-to-the-launcher"],
)
def test_an_interrupted_pretraining_exits_128_plus_signal_and_resumes_exactly(
    data, tmp_path, reference, signum, group, workers
):
    ckpt_dir = tmp_path / "ckpt"
    proc = _start(_command(data, ckpt_dir, workers), tmp_path, _env())
    out, err = _interrupt_when(proc, lambda: bool(list(ckpt_dir.rglob("*-ep=0.ckpt"))), signum, group)

    assert proc.returncode == 128 + signum, (proc.returncode, err[-3000:])
    assert "pretraining done" not in out + err
    (kept,) = _complete_checkpoints(ckpt_dir)  # epoch 0; epoch 1 was interrupted and is not saved
    assert kept.name.endswith("-ep=0.ckpt")
    _assert_one_line(err, signal.Signals(signum).name, kept)
    assert not [p for p in ckpt_dir.rglob(".*") if p.is_file()]  # no partial file either

    resumed = subprocess.run(
        _command(data, ckpt_dir, workers), cwd=tmp_path, env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "auto-resume: continuing from" in resumed.stdout
    _assert_same_weights(ckpt_dir, reference(workers))


def test_a_signal_during_a_checkpoint_save_keeps_that_checkpoint_whole(data, tmp_path, reference):
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(_SLOW_SAVE)
    saving = tmp_path / "saving"
    env = _env(SFRIK_TEST_SAVING=str(saving))
    env["PYTHONPATH"] = os.pathsep.join([str(hooks), env["PYTHONPATH"]])
    ckpt_dir = tmp_path / "ckpt"
    proc = _start(_command(data, ckpt_dir), tmp_path, env)
    out, err = _interrupt_when(proc, saving.exists, signal.SIGINT, group=True, after=0.5)

    assert proc.returncode == 130, err[-3000:]
    (kept,) = _complete_checkpoints(ckpt_dir)  # the save in progress finished and took its name
    assert kept.name.endswith("-ep=0.ckpt")
    _assert_one_line(err, "SIGINT", kept)
    assert not [p for p in ckpt_dir.rglob(".*") if p.is_file()]

    resumed = subprocess.run(_command(data, ckpt_dir), cwd=tmp_path, env=_env(), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _assert_same_weights(ckpt_dir, reference(0))


def test_ddp_ranks_stop_after_the_same_batch_on_ctrl_c(data, tmp_path):
    """Two CPU processes: both ranks stop together (a rank stopping alone would leave the other in the
    next gradient all-reduce), rank 0 is not SIGKILLed by Lightning's child observer, and it exits 130."""
    ckpt_dir = tmp_path / "ckpt"
    proc = _start(_command(data, ckpt_dir, devices=2), tmp_path, _env())
    started = time.time()
    out, err = _interrupt_when(proc, lambda: bool(list(ckpt_dir.rglob("*-ep=0.ckpt"))), signal.SIGINT, group=True)

    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    (kept,) = _complete_checkpoints(ckpt_dir)
    _assert_one_line(err, "SIGINT", kept)
    assert time.time() - started < 240
    ranks = subprocess.run(["pgrep", "-f", str(ckpt_dir)], capture_output=True, text=True).stdout.split()
    assert not ranks, f"rank processes left running: {ranks}"


def test_the_auto_resumer_refuses_a_crafted_checkpoint_by_its_own_policy(data, tmp_path, reference):
    """A checkpoint planted in a matching run folder: with torch's weights-only default switched off
    (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1``, as on torch < 2.6), only the project's policy stands
    between it and Lightning's unpickler."""
    import shutil

    from test_bad_input import _malicious_checkpoint

    straight = reference(0)
    run = next(p.parent for p in straight.rglob("args.json"))
    ckpt_dir = tmp_path / "ckpt"
    planted = ckpt_dir / "sfrik" / run.name
    planted.mkdir(parents=True)
    shutil.copy(run / "args.json", planted / "args.json")  # matches the command's settings
    marker = tmp_path / "PWNED"
    crafted = _malicious_checkpoint(planted / f"sfrik-custom-{run.name}-ep=1.ckpt", marker)

    proc = subprocess.run(
        _command(data, ckpt_dir),
        cwd=tmp_path,
        env=_env(TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1"),
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert str(crafted) in proc.stderr and "--trust-pickle" in proc.stderr
    assert not marker.exists()


def test_ctrl_c_during_the_demo_is_one_line_and_status_130(tmp_path):
    source = tmp_path / "images"
    make_image_folder(source / "train", classes=6, per_class=24, size=28, seed=0)
    make_image_folder(source / "val", classes=6, per_class=4, size=28, seed=1)
    work = tmp_path / "work"
    command = [sys.executable, "-m", "sfrik_plugin.solo.demo", "--workdir", str(work), "--data", str(source)]
    command += [
        "--train-per-class",
        "24",
        "--val-per-class",
        "4",
        "--batch-size",
        "8",
        "--epochs",
        "3",
        "--threads",
        "1",
    ]
    proc = _start(command, tmp_path, _env())
    out, err = _interrupt_when(
        proc, lambda: bool(list(work.rglob("*-ep=0.ckpt"))), signal.SIGINT, group=True, after=0.2
    )

    assert proc.returncode == 130, (proc.returncode, err[-3000:])
    assert "Traceback" not in err, err[-3000:]
    (line,) = [line for line in err.splitlines() if "interrupted" in line]
    assert line.startswith("sfrik-demo: interrupted by SIGINT; stopped in epoch ") and "run sfrik-demo again" in line
    assert not (work / "demo_results.json").exists()  # nothing that looks like a result

"""Faults during pretraining, with the real solo-learn on CPU: a run killed mid-epoch and resumed
ends with the same weights as an uninterrupted one, and a checkpoint cut off while being written
is never what the resumer picks up."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _images import make_image_folder

pytestmark = pytest.mark.requires_solo

EPOCHS = 3
REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("resume_images")
    # 6 classes x 20 images, batch 4: 30 steps an epoch, long enough to be killed in the middle
    return {
        "train": make_image_folder(root / "train", classes=6, per_class=20, size=16, seed=0),
        "val": make_image_folder(root / "val", classes=6, per_class=2, size=16, seed=1),
    }


def _command(data, ckpt_dir: Path, workers: int | str, epochs: int = EPOCHS, devices: int = 1) -> list[str]:
    """``workers``: DataLoader workers of solo-learn's pipeline, or "fast" for data.fast_augment;
    ``devices``: CPU processes (DDP from 2). Also used by test_interrupts.py."""
    fast = workers == "fast"
    return [
        sys.executable,
        "-m",
        "sfrik_plugin.solo.cli",
        "pretrain",
        "--config-name",
        "custom/sfrik",
        f"data.train_path={data['train']}",
        f"data.val_path={data['val']}",
        f"data.num_workers={0 if fast else workers}",
        f"++data.fast_augment={fast}",
        "augmentations.0.crop_size=16",
        "augmentations.1.crop_size=16",
        "accelerator=cpu",
        f"devices={devices}",
        f"strategy={'ddp' if devices > 1 else 'auto'}",
        "precision=32",
        "optimizer.batch_size=4",
        "method_kwargs.proj_hidden_dim=32",
        "method_kwargs.proj_output_dim=16",
        "backbone.name=resnet18",
        f"checkpoint.dir={ckpt_dir}",
        f"max_epochs={epochs}",
        "auto_resume.enabled=True",
        "++limit_val_batches=1",
        "++num_sanity_val_steps=0",
        "++enable_progress_bar=False",
        "++performance.disable_channel_last=True",
        "++seed=3",
    ]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(REPO_ROOT))
    env.pop("SFRIK_SOLO_CLI_COMMAND", None)
    return env


def _run(command, cwd, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=600, **kwargs)
    return proc


def _final_weights(ckpt_dir: Path) -> dict:
    from sfrik_plugin.files.checkpoints import load_checkpoint

    (final,) = [p for p in ckpt_dir.rglob(f"*-ep={EPOCHS - 1}.ckpt")]
    state = load_checkpoint(final)
    return state["state_dict"], state["global_step"]


@pytest.mark.parametrize("workers", [0, 1, "fast"])
def test_killed_mid_epoch_and_resumed_equals_uninterrupted(data, tmp_path, workers):
    import torch

    reference = _run(_command(data, tmp_path / "straight", workers), tmp_path)
    assert reference.returncode == 0, reference.stderr[-3000:]

    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(
        _command(data, interrupted, workers), cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 300
    while not list(interrupted.rglob("*-ep=0.ckpt")) and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    time.sleep(0.4)  # well into epoch 2 of 3
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before it could be killed: make epochs longer"
    assert list(interrupted.rglob("*-ep=0.ckpt")) and not list(interrupted.rglob(f"*-ep={EPOCHS - 1}.ckpt"))

    resumed = _run(_command(data, interrupted, workers), tmp_path)  # the same command: auto-resume
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "auto-resume: continuing from" in resumed.stdout
    assert len({p.parent for p in interrupted.rglob("*.ckpt")}) == 1  # it continued the killed run

    expected, expected_steps = _final_weights(tmp_path / "straight")
    ours, steps = _final_weights(interrupted)
    assert steps == expected_steps
    assert set(ours) == set(expected)
    for name, tensor in expected.items():
        if tensor.is_floating_point():
            torch.testing.assert_close(ours[name], tensor, rtol=1e-6, atol=1e-7, msg=name)
        else:
            assert torch.equal(ours[name], tensor), name


def _limit_file_size():
    # a write beyond 8 MiB fails with EFBIG: the first checkpoint (~45 MB) is cut off half-way
    resource.setrlimit(resource.RLIMIT_FSIZE, (8 << 20, 8 << 20))


def test_a_checkpoint_cut_off_while_written_is_never_resumed_from(data, tmp_path):
    ckpt_dir = tmp_path / "ckpt"
    crashed = _run(_command(data, ckpt_dir, 0), tmp_path, preexec_fn=_limit_file_size)
    assert crashed.returncode != 0
    partial = [p for p in ckpt_dir.rglob("*") if p.is_file() and p.name != "args.json"]
    assert partial and all(p.name.startswith(".") and not p.name.endswith(".ckpt") for p in partial), partial
    assert all(p.stat().st_size <= 8 << 20 for p in partial)  # really cut off

    finished = _run(_command(data, ckpt_dir, 0), tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert "auto-resume" not in finished.stdout  # nothing complete to resume from: a fresh start
    assert list(ckpt_dir.rglob(f"*-ep={EPOCHS - 1}.ckpt"))


def test_the_resumer_skips_truncated_checkpoints_and_takes_the_newest_complete_one(data, tmp_path):
    """A crash inside a non-atomic writer (solo-learn's own) leaves a truncated ``.ckpt`` under its
    final name: the resumer must pass over it to the newest complete one."""
    from omegaconf import OmegaConf

    from sfrik_plugin.solo.checkpointing import find_resumable_checkpoint

    ckpt_dir = tmp_path / "ckpt"
    first = _run(_command(data, ckpt_dir, 0, epochs=1), tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    (complete,) = ckpt_dir.rglob("*-ep=0.ckpt")
    truncated = complete.with_name(complete.name.replace("ep=0", "ep=7"))
    shutil.copyfile(complete, truncated)
    with open(truncated, "r+b") as handle:
        handle.truncate(truncated.stat().st_size // 2)
    args = OmegaConf.create((complete.parent / "args.json").read_text())
    found, _ = find_resumable_checkpoint(ckpt_dir, args)
    assert found == complete

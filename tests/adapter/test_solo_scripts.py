"""solo-learn's OWN scripts (main_pretrain.py, main_linear.py, main_knn.py of the pinned commit,
unpacked from ../shared/wheels) run with SFRIK through ``sfrik-solo``, on one process and under
2-process DDP on CPU, as a solo-learn user runs them: nothing of solo-learn is patched."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
from _subprocesses import REPO_ROOT, checkout_env

pytestmark = pytest.mark.requires_solo

WHEELS = REPO_ROOT.parent / "shared" / "wheels"
SOURCE = "solo-learn-9187ea3-src.tar.gz"
PACKAGED = REPO_ROOT / "sfrik_plugin" / "solo" / "configs"
TRAIN_IMAGES = 36  # tiny_data: 6 classes x 6 images


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    """The unchanged solo-learn source of the pinned commit (its sha256 checked), unpacked."""
    archive = WHEELS / SOURCE
    if not archive.is_file():
        message = f"{archive} is missing (CI and `make test` have ../shared beside the clone)"
        if os.environ.get("SFRIK_REQUIRE_SOLO") == "1":
            pytest.fail(message)
        pytest.skip(message)
    sums = dict(line.split()[::-1] for line in (WHEELS / "SHA256SUMS").read_text().splitlines() if line.strip())
    assert _sha256(archive) == sums[SOURCE], f"{archive} does not match SHA256SUMS"
    root = tmp_path_factory.mktemp("solo_checkout")
    with tarfile.open(archive) as tar:
        tar.extractall(root, filter="data")
    (folder,) = [p for p in root.iterdir() if (p / "main_pretrain.py").is_file()]
    return folder


@pytest.fixture(scope="module")
def sfrik_solo(tmp_path_factory) -> Path:
    """The console script pip makes from pyproject's ``sfrik-solo`` entry: a file that stays
    ``sys.argv[0]``, which is what Lightning re-runs for the other DDP ranks."""
    entry = re.search(r'^sfrik-solo\s*=\s*"([\w.]+):(\w+)"', (REPO_ROOT / "pyproject.toml").read_text(), re.M)
    assert entry, "pyproject.toml [project.scripts] has no sfrik-solo entry"
    module, function = entry.groups()
    script = tmp_path_factory.mktemp("bin") / "sfrik-solo"
    script.write_text(f"#!{sys.executable}\nimport sys\nfrom {module} import {function}\nsys.exit({function}())\n")
    script.chmod(0o755)
    return script


def _run(command: list, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = checkout_env(OMP_NUM_THREADS="1")
    env.pop("SFRIK_SOLO_SCRIPT", None)
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def _ok(proc: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert proc.returncode == 0, (
        f"exit {proc.returncode}\nstdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-6000:]}"
    )
    return proc


# solo-learn's scripts on CPU: devices as a string (its lr scaling takes len(devices)), no sync-BN
CPU = [
    "accelerator=cpu",
    "precision=32",
    "sync_batchnorm=False",
    "optimizer.batch_size=4",
    "data.num_workers=0",
    "auto_resume.enabled=False",
    "max_epochs=1",
    "++performance.disable_channel_last=True",
    "++enable_progress_bar=False",
]


def _pretrain_args(tiny_data, ckpt_dir: Path, devices: int) -> list:
    return [
        f"data.train_path={tiny_data['train']}",
        "data.val_path=null",
        "augmentations.0.crop_size=16",
        "augmentations.1.crop_size=16",
        "method_kwargs.proj_hidden_dim=32",
        "method_kwargs.proj_output_dim=16",
        f"checkpoint.dir={ckpt_dir}",
        f'devices="{devices}"',
        "strategy=" + ("ddp" if devices > 1 else "auto"),
        *CPU,
    ]


def _load(path: Path) -> dict:
    import torch

    return torch.load(path, map_location="cpu", weights_only=True)


def _only(folder: Path, pattern: str) -> Path:
    (found,) = list(folder.rglob(pattern))
    return found


@pytest.fixture(scope="module")
def pretrained(checkout, sfrik_solo, tiny_data, tmp_path_factory) -> Path:
    """main_pretrain.py, one process, the packaged custom/sfrik config copied into the checkout's
    scripts/ and named by a RELATIVE --config-path (hydra resolves it against the script's folder)."""
    import shutil

    shutil.copytree(PACKAGED / "pretrain" / "custom", checkout / "scripts" / "pretrain" / "sfrik-custom")
    run = tmp_path_factory.mktemp("pretrain_1")
    args = ["--config-path", "scripts/pretrain/sfrik-custom", "--config-name", "sfrik.yaml"]
    _ok(
        _run(
            [sys.executable, sfrik_solo, checkout / "main_pretrain.py", *args, *_pretrain_args(tiny_data, run, 1)], run
        )
    )
    return _only(run / "sfrik", "*.ckpt")


def test_main_pretrain_alone_does_not_know_sfrik(checkout, tiny_data, tmp_path):
    # the reference: the same script without the wrapper refuses method=sfrik
    args = ["--config-path", PACKAGED / "pretrain" / "custom", "--config-name", "sfrik"]
    proc = _run(
        [sys.executable, checkout / "main_pretrain.py", *args, *_pretrain_args(tiny_data, tmp_path, 1)], tmp_path
    )
    assert proc.returncode != 0 and "AssertionError: Choose from" in proc.stderr, proc.stderr[-3000:]


def test_main_pretrain_one_process_trains_sfrik(pretrained):
    import json

    state = _load(pretrained)
    assert state["global_step"] == TRAIN_IMAGES // 4  # every batch of the epoch (drop_last, batch 4)
    assert any(k.startswith("projector.") for k in state["state_dict"])
    assert len([k for k in state["state_dict"] if k.startswith("backbone.")]) == 120  # resnet18
    assert json.loads((pretrained.parent / "args.json").read_text())["method"] == "sfrik"


def test_main_pretrain_two_ddp_processes(checkout, sfrik_solo, tiny_data, tmp_path):
    args = ["--config-path", PACKAGED / "pretrain" / "custom", "--config-name", "sfrik"]
    proc = _ok(
        _run(
            [sys.executable, sfrik_solo, checkout / "main_pretrain.py", *args, *_pretrain_args(tiny_data, tmp_path, 2)],
            tmp_path,
        )
    )
    assert "AssertionError" not in proc.stderr
    state = _load(_only(tmp_path / "sfrik", "*.ckpt"))
    # two ranks share the epoch: each sees half of the images, so the epoch has half the steps
    assert state["global_step"] == (TRAIN_IMAGES // 2) // 4


def test_main_linear_reads_every_backbone_weight_of_an_sfrik_checkpoint(
    checkout, sfrik_solo, pretrained, tiny_data, tmp_path
):
    args = [
        "--config-path",
        PACKAGED / "linear",
        "--config-name",
        "custom",
        f"pretrained_feature_extractor='{pretrained}'",  # hydra wants a value holding '=' quoted
        f"data.train_path={tiny_data['train']}",
        f"data.val_path={tiny_data['val']}",
        f"checkpoint.dir={tmp_path}",
        'devices="1"',
        "strategy=auto",
        "++limit_train_batches=2",
        "++limit_val_batches=1",
        *CPU,
    ]
    _ok(_run([sys.executable, sfrik_solo, checkout / "main_linear.py", *args], tmp_path))
    before = _load(pretrained)["state_dict"]
    after = _load(_only(tmp_path / "linear", "*.ckpt"))["state_dict"]
    backbone = [k for k in before if k.startswith("backbone.")]
    # the frozen backbone of the linear model is the pretrained one, tensor for tensor (its
    # load_state_dict(strict=False) would have kept random weights without a word)
    assert len(backbone) == 120 and all(k in after for k in backbone)
    import torch

    assert all(torch.equal(before[k], after[k]) for k in backbone)


def test_main_knn_loads_an_sfrik_checkpoint(checkout, sfrik_solo, pretrained, tiny_data, tmp_path):
    args = [
        "--dataset", "custom",
        "--train_data_path", tiny_data["train"],
        "--val_data_path", tiny_data["val"],
        "--batch_size", "4",
        "--num_workers", "0",
        "--pretrained_checkpoint_dir", pretrained.parent,
        "--k", "2",
        "--temperature", "0.1",
        "--feature_type", "backbone",
        "--distance_function", "cosine",
    ]  # fmt: skip
    alone = _run([sys.executable, checkout / "main_knn.py", *args], tmp_path)
    assert "KeyError: 'sfrik'" in alone.stderr, alone.stderr[-3000:]
    proc = _run([sys.executable, sfrik_solo, checkout / "main_knn.py", *args], tmp_path)
    assert "KeyError" not in proc.stderr, proc.stderr[-3000:]
    # the model is built from args.json and the checkpoint, the data prepared; then main_knn.py
    # moves every batch to CUDA (`.cuda()`, solo-learn's): without a GPU it stops there
    assert "Result: acc@1=" in proc.stdout or "in extract_features" in proc.stderr, proc.stderr[-3000:]


def test_sfrik_solo_bad_input_is_one_line(sfrik_solo, tmp_path):
    for argv, fragment in ([["nothere.py"], "no script 'nothere.py'"], [[], "usage: sfrik-solo SCRIPT.py"]):
        proc = _run([sys.executable, sfrik_solo, *argv], tmp_path)
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("sfrik-solo: error: ") and fragment in proc.stderr
    helped = _run([sys.executable, sfrik_solo, "--help"], tmp_path)
    assert helped.returncode == 0 and helped.stdout.startswith("usage: sfrik-solo SCRIPT.py"), helped.stderr


def test_a_ddp_rank_finds_the_script_in_the_environment(tmp_path):
    from sfrik_plugin.console import InputError
    from sfrik_plugin.solo.solo_scripts import SCRIPT_ENV, script_from_argv

    script = tmp_path / "main_pretrain.py"
    script.write_text("")
    environ: dict = {}
    first, args = script_from_argv([str(script), "--config-name", "x"], environ)
    assert first == script and args == ["--config-name", "x"] and environ[SCRIPT_ENV] == str(script)
    # what Lightning runs for rank 1: the wrapper again, the script's arguments plus hydra's
    rank, args = script_from_argv(["--config-name", "x", "hydra.run.dir=."], environ)
    assert rank == script and args == ["--config-name", "x", "hydra.run.dir=."]
    with pytest.raises(InputError, match="usage"):
        script_from_argv(["--config-name", "x"], {})

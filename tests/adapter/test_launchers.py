"""The console launchers, run as users run them (fresh processes, hydra overrides, real solo-learn):
pretrain -> checkpoint -> offline linear and kNN evaluation, resume, and 2-process DDP on CPU."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest

pytestmark = pytest.mark.requires_solo


def _checkpoints(folder: Path) -> list:
    return sorted(folder.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)


def _pretrain_args(tiny_data, tmp_path, extra=()):
    return [
        "--config-name",
        "custom/sfrik",
        f"data.train_path={tiny_data['train']}",
        f"data.val_path={tiny_data['val']}",
        "augmentations.0.crop_size=16",
        "augmentations.1.crop_size=16",
        f"checkpoint.dir={tmp_path / 'ckpt'}",
        "max_epochs=1",
        "++limit_train_batches=2",
        "++limit_val_batches=1",
        "auto_resume.enabled=False",
        *extra,
    ]


def test_pretrain_then_linear_knn_and_resume(cli, tiny_overrides, tiny_data, tmp_path):
    import torch

    # 1. pretrain one short epoch with online linear evaluation
    out = cli("pretrain", tiny_overrides + _pretrain_args(tiny_data, tmp_path), cwd=tmp_path)
    assert "[sfrik] pretraining done" in out.stdout and "val_acc1=" in out.stdout
    (ckpt,) = _checkpoints(tmp_path / "ckpt" / "sfrik")
    args = json.loads((ckpt.parent / "args.json").read_text())
    assert args["method"] == "sfrik" and args["method_kwargs"]["proj_output_dim"] == 16
    state = torch.load(ckpt, map_location="cpu", weights_only=False)
    assert state["global_step"] == 2
    assert any(k.startswith("backbone.") for k in state["state_dict"])

    # 2. offline linear evaluation of that checkpoint (its name holds '=': no quoting needed)
    out = cli(
        "linear",
        [
            "--config-name",
            "custom",
            f"pretrained_feature_extractor={ckpt}",
            f"data.train_path={tiny_data['train']}",
            f"data.val_path={tiny_data['val']}",
            "data.augmentations.crop_size=16",
            "data.num_workers=0",
            "optimizer.batch_size=8",
            f"checkpoint.dir={tmp_path / 'ckpt'}",
            "max_epochs=1",
            "auto_resume.enabled=False",
            "accelerator=cpu",
            "devices=1",
            "precision=32",
            "++enable_progress_bar=False",
            "++num_sanity_val_steps=0",
        ],
        cwd=tmp_path,
    )
    assert f"loaded backbone weights from {ckpt}" in out.stdout
    assert "[sfrik] linear evaluation done: val_acc1=" in out.stdout
    assert _checkpoints(tmp_path / "ckpt" / "linear")

    # 3. offline kNN on the pretraining run folder
    results = tmp_path / "knn.json"
    cli(
        "knn",
        [
            "--config-name",
            "knn",
            f"pretrained_checkpoint_dir={ckpt.parent}",
            "data.num_workers=0",
            "batch_size=8",
            "k=[3]",
            "feature_type=[backbone,projector]",
            "device=cpu",
            f"output={results}",
        ],
        cwd=tmp_path,
    )
    rows = json.loads(results.read_text())
    assert {r["feature_type"] for r in rows} == {"backbone", "projector"}
    assert all(0 <= r["acc1"] <= 100 for r in rows)

    # 4. resume from the checkpoint for a second epoch: training continues where it stopped
    out = cli(
        "pretrain",
        tiny_overrides + _pretrain_args(tiny_data, tmp_path, ["max_epochs=2", f"resume_from_checkpoint={ckpt}"]),
        cwd=tmp_path,
    )
    assert f"[sfrik] resuming from '{ckpt}'" in out.stdout
    resumed = _checkpoints(tmp_path / "ckpt" / "sfrik")[-1]
    state = torch.load(resumed, map_location="cpu", weights_only=False)
    assert state["epoch"] == 1 and state["global_step"] == 4

    # 5. auto-resume (solo-learn's AutoResumer): the same command finds the matching run by itself
    out = cli(
        "pretrain",
        tiny_overrides + _pretrain_args(tiny_data, tmp_path, ["max_epochs=2", "auto_resume.enabled=True"]),
        cwd=tmp_path,
    )
    assert "auto-resume: continuing from" in out.stdout


def test_launcher_rejects_a_bad_config_before_training(cli, tiny_overrides, tiny_data, tmp_path):
    with pytest.raises(AssertionError, match=r"unknown method_kwargs key\(s\) for method 'sfrik': sim_coef"):
        cli(
            "pretrain",
            tiny_overrides + _pretrain_args(tiny_data, tmp_path, ["++method_kwargs.sim_coef=1"]),
            cwd=tmp_path,
        )
    assert not (tmp_path / "ckpt").exists()


def test_launcher_without_a_config_lists_the_shipped_ones(cli, tmp_path):
    with pytest.raises(AssertionError, match=r"(?s)choose a config.*cifar10/sfrik.*imagenet/vicreg"):
        cli("pretrain", [], cwd=tmp_path)


def _csv_losses(folder: Path) -> list:
    (metrics,) = list(folder.rglob("metrics.csv"))
    with open(metrics) as f:
        rows = [r for r in csv.DictReader(f) if r.get("train_sfrik_loss_step")]
    return [float(r["train_sfrik_loss_step"]) for r in rows]


def test_ddp_two_cpu_processes_sharded_equals_replicated(cli, tiny_overrides, tiny_data, tmp_path):
    losses = {}
    for mode in ("sharded", "replicated"):
        run = tmp_path / mode
        run.mkdir()
        overrides = [o for o in tiny_overrides if not o.startswith(("devices=", "strategy="))]
        out = cli(
            "pretrain",
            overrides
            + _pretrain_args(tiny_data, run, ["++limit_val_batches=0", f"++method_kwargs.distributed={mode}"])
            + ["devices=2", "strategy=ddp", "++csv.enabled=True", f"++csv.dir={run / 'logs'}", "++seed=7"],
            cwd=run,
        )
        log = out.stdout + out.stderr
        # Lightning started a second process (which registered sfrik itself) and formed a group of 2
        assert "on 2 process(es) (1 node(s), strategy DDPStrategy)" in log
        losses[mode] = _csv_losses(run / "logs")
    assert len(losses["sharded"]) == 2
    assert all(math.isfinite(x) for x in losses["sharded"])
    assert losses["sharded"] == pytest.approx(losses["replicated"], rel=1e-4)

"""The console launchers, run as users run them (fresh processes, hydra overrides, real solo-learn):
pretrain -> checkpoint -> offline linear and kNN evaluation, resume, and 2-process DDP on CPU."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import pytest
from _tiny_runs import tiny_linear_args, tiny_pretrain_args

pytestmark = pytest.mark.requires_solo


def _checkpoints(folder: Path) -> list:
    return sorted(folder.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)


def _pretrain_args(tiny_data, tmp_path, extra=()):
    return tiny_pretrain_args(tiny_data, tmp_path, "custom/sfrik", extra)


def _metrics(folder: Path) -> list[dict]:
    (path,) = list(folder.rglob("metrics.csv"))
    with open(path) as handle:
        return list(csv.DictReader(handle))


def _last(rows: list[dict], key: str) -> float:
    return [float(r[key]) for r in rows if r.get(key)][-1]


def _backbone(state: dict) -> dict:
    return {k[len("backbone.") :]: v for k, v in state["state_dict"].items() if k.startswith("backbone.")}


def test_pretrain_then_linear_knn_and_resume(cli, tiny_overrides, tiny_data, tmp_path):
    import torch

    from sfrik_plugin.files.checkpoints import load_checkpoint

    csv_on = ["++csv.enabled=True", f"++csv.dir={tmp_path / 'logs'}"]
    # 1. pretrain one short epoch with online linear evaluation, without upstream import noise
    out = cli("pretrain", tiny_overrides + _pretrain_args(tiny_data, tmp_path, csv_on), cwd=tmp_path)
    for noise in ("Importing from timm", "in registry with solo", "pkg_resources", "custom_fwd", "LeafSpec"):
        assert noise not in out.stderr + out.stdout, noise
    (ckpt,) = _checkpoints(tmp_path / "ckpt" / "sfrik")
    args = json.loads((ckpt.parent / "args.json").read_text())
    assert args["method"] == "sfrik" and args["method_kwargs"]["proj_output_dim"] == 16
    state = load_checkpoint(ckpt)  # tensors and plain data only: weights_only reads it
    assert state["global_step"] == 2 and state["epoch"] == 0
    assert _backbone(state)
    assert 0 <= _last(_metrics(tmp_path / "logs"), "val_acc1") <= 100

    # 2. offline linear evaluation of that checkpoint (its name holds '=': no quoting needed)
    cli(
        "linear",
        [
            *tiny_linear_args(tiny_data, tmp_path, ckpt),
            "++csv.enabled=True",
            f"++csv.dir={tmp_path / 'linear-logs'}",
        ],
        cwd=tmp_path,
    )
    (linear_ckpt,) = _checkpoints(tmp_path / "ckpt" / "linear")
    linear_state = load_checkpoint(linear_ckpt)
    # the classifier trained on top of exactly the pretrained backbone weights, left frozen
    for name, tensor in _backbone(state).items():
        if not name.endswith("num_batches_tracked"):
            assert torch.equal(linear_state["state_dict"][f"backbone.{name}"], tensor), name
    assert 0 <= _last(_metrics(tmp_path / "linear-logs"), "val_acc1") <= 100

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
    cli(
        "pretrain",
        tiny_overrides + _pretrain_args(tiny_data, tmp_path, ["max_epochs=2", f"resume_from_checkpoint={ckpt}"]),
        cwd=tmp_path,
    )
    resumed = _checkpoints(tmp_path / "ckpt" / "sfrik")[-1]
    assert resumed.name.endswith("-ep=1.ckpt")
    assert load_checkpoint(resumed)["global_step"] == 4

    # 5. auto-resume finds that run by itself: it is complete, so nothing new is trained or written
    before = {p: p.stat().st_mtime for p in _checkpoints(tmp_path / "ckpt" / "sfrik")}
    cli(
        "pretrain",
        tiny_overrides + _pretrain_args(tiny_data, tmp_path, ["max_epochs=2", "auto_resume.enabled=True"]),
        cwd=tmp_path,
    )
    assert {p: p.stat().st_mtime for p in _checkpoints(tmp_path / "ckpt" / "sfrik")} == before


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
        cli(
            "pretrain",
            overrides
            + _pretrain_args(tiny_data, run, ["++limit_val_batches=0", f"++method_kwargs.distributed={mode}"])
            + ["devices=2", "strategy=ddp", "++csv.enabled=True", f"++csv.dir={run / 'logs'}", "++seed=7"],
            cwd=run,
        )
        # Lightning started a second process (which registered sfrik itself) and formed a group of 2
        (args_json,) = list((run / "ckpt").rglob("args.json"))
        assert json.loads(args_json.read_text())["num_devices"] == 2
        losses[mode] = _csv_losses(run / "logs")
    assert len(losses["sharded"]) == 2
    assert all(math.isfinite(x) for x in losses["sharded"])
    assert losses["sharded"] == pytest.approx(losses["replicated"], rel=1e-4)

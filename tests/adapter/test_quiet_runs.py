"""Quiet means quiet: a CPU pretraining, linear evaluation and kNN print their ``[sfrik]`` lines and
no warning (solo-learn's loaders pin host memory unconditionally, which on a machine without an
accelerator ended every run with torch's ``pin_memory`` UserWarning); and a key passed on purpose
through ``unchecked_keys`` reaches the run's own record."""

from __future__ import annotations

import json

import pytest
from _tiny_runs import tiny_linear_args, tiny_pretrain_args

pytestmark = pytest.mark.requires_solo


def _warnings(text: str) -> list[str]:
    return [line for line in text.splitlines() if "Warning" in line or "pin_memory" in line]


def test_cpu_pretraining_linear_and_knn_print_no_warning(cli, tiny_overrides, tiny_data, tmp_path):
    pretrain = [
        *tiny_pretrain_args(tiny_data, tmp_path, "custom/sfrik"),
        "++unchecked_keys=[run_tag]",  # the escape hatch: kept on purpose although nothing reads it
        "++run_tag=quiet-7",
    ]
    out = cli("pretrain", tiny_overrides + pretrain, cwd=tmp_path)
    assert not _warnings(out.stderr + out.stdout), out.stderr
    (ckpt,) = (tmp_path / "ckpt" / "sfrik").rglob("*.ckpt")
    assert json.loads((ckpt.parent / "args.json").read_text())["run_tag"] == "quiet-7"

    out = cli(
        "knn",
        ["--config-name", "knn", f"pretrained_checkpoint_dir={ckpt.parent}", "data.num_workers=0", "batch_size=8"]
        + ["k=[3]", "device=cpu"],
        cwd=tmp_path,
    )
    assert not _warnings(out.stderr + out.stdout), out.stderr
    assert "kNN backbone" in out.stdout

    linear = tiny_linear_args(tiny_data, tmp_path, ckpt, extra=["strategy=auto"])
    out = cli("linear", linear, cwd=tmp_path)
    assert not _warnings(out.stderr + out.stdout), out.stderr


def test_loaders_pin_memory_only_with_a_cuda_device(tiny_data, compose):
    import torch
    from solo.args.linear import parse_cfg as parse_linear_cfg
    from solo.args.pretrain import parse_cfg

    from sfrik_plugin.solo.config import compose_config
    from sfrik_plugin.solo.launch import parse_with_devices
    from sfrik_plugin.solo.loaders import classification_loaders, pretrain_train_loader, pretrain_val_loader

    common = [f"data.train_path={tiny_data['train']}", f"data.val_path={tiny_data['val']}", "data.num_workers=0"]
    cfg = compose("custom/sfrik", [*common, "accelerator=cpu", "devices=1"])
    cfg = parse_with_devices(cfg, parse_cfg)
    loaders = [pretrain_train_loader(cfg), pretrain_val_loader(cfg)]
    linear = compose_config("linear", "custom", [*common, "accelerator=cpu", "devices=1"])
    linear = parse_with_devices(linear, parse_linear_cfg)
    loaders += list(classification_loaders(linear))
    assert len(loaders) == 4
    for loader in loaders:
        assert loader.pin_memory == torch.cuda.is_available()

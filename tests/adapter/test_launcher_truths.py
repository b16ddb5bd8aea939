"""What the launchers say is what they do: the precision recorded is the one trained in, ``--help``
names configs as ``--config-name`` takes them, a ViT gets the crop size, ``custom/`` has multi-crop
presets (and the run keeps its own name), and online kNN on a partial validation set is refused
before training instead of crashing in solo-learn after it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.requires_solo


def _tiny(tiny_overrides, tiny_data, tmp_path, extra=(), drop=()):
    base = [o for o in tiny_overrides if not o.startswith(tuple(drop))]
    return [
        "--config-name",
        "custom/sfrik",
        *base,
        f"data.train_path={tiny_data['train']}",
        f"data.val_path={tiny_data['val']}",
        "augmentations.0.crop_size=16",
        "augmentations.1.crop_size=16",
        f"checkpoint.dir={tmp_path / 'ckpt'}",
        "max_epochs=1",
        "++limit_train_batches=1",
        "++limit_val_batches=1",
        "auto_resume.enabled=False",
        *extra,
    ]


def _args_json(tmp_path: Path) -> tuple[Path, dict]:
    (ckpt,) = list((tmp_path / "ckpt").rglob("*.ckpt"))
    return ckpt, json.loads((ckpt.parent / "args.json").read_text())


def test_cpu_precision_is_chosen_and_recorded_as_used(tiny_overrides, tiny_data, tmp_path):
    # the shipped config says 16-mixed (GPU); on CPU Lightning would silently train in bf16-mixed
    from sfrik_plugin.solo.config import compose_config
    from sfrik_plugin.solo.pretrain import run_pretrain

    overrides = _tiny(tiny_overrides, tiny_data, tmp_path, drop=["precision="])
    result = run_pretrain(compose_config("pretrain", "custom/sfrik", overrides[2:]))
    _, args = _args_json(tmp_path)
    assert result["trainer"].precision == "32-true"
    assert args["precision"] == result["trainer"].precision


def test_bf16_on_cpu_stays_when_asked_for():
    from sfrik_plugin.console import InputError
    from sfrik_plugin.solo.launch import precision_used

    assert precision_used("bf16-mixed", "cpu") == "bf16-mixed"
    assert precision_used("16-mixed", "gpu") == "16-mixed"
    with pytest.raises(InputError, match="precision='17'"):
        precision_used("17", "cpu")


def test_help_names_the_configs_as_config_name_takes_them(cli, tmp_path):
    out = cli("pretrain", ["--help"], cwd=tmp_path).stdout
    lines = [line.strip() for line in out.splitlines()]
    assert "custom/sfrik" in lines and "imagenet100/vicreg" in lines
    assert "configs/pretrain" not in out  # hydra's folder-relative listing
    assert "custom/*: augmentations={asymmetric, asymmetric_multicrop}" in lines
    # the name the help gives is one --config-name takes
    shown = cli("pretrain", ["--config-name", "custom/sfrik", "--help"], cwd=tmp_path).stdout
    assert "name: sfrik-custom" in shown


def test_online_knn_on_a_partial_validation_set_is_one_line_before_training(cli, tiny_overrides, tiny_data, tmp_path):
    extra = ["++knn_eval.enabled=True", "++limit_val_batches=2"]
    proc = cli("pretrain", _tiny(tiny_overrides, tiny_data, tmp_path, extra), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (line,) = [x for x in proc.stderr.splitlines() if ": error: " in x]
    assert "knn_eval.enabled=True" in line and "limit_val_batches=2" in line
    assert not (tmp_path / "ckpt").exists()


def test_a_vit_gets_the_crop_size_and_a_patch_size(cli, tiny_overrides, tiny_data, tmp_path):
    extra = ["backbone.name=vit_tiny", "augmentations.0.crop_size=32", "augmentations.1.crop_size=32"]
    out = cli("pretrain", _tiny(tiny_overrides, tiny_data, tmp_path, extra), cwd=tmp_path)
    assert "img_size=32 patch_size=4" in out.stdout + out.stderr
    ckpt, args = _args_json(tmp_path)
    assert args["backbone"]["kwargs"] == {"img_size": 32, "patch_size": 4}
    # the checkpoint is a ViT of 8 x 8 patches of 4 px (+ the class token)
    import torch

    state = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert tuple(state["backbone.pos_embed"].shape) == (1, 8 * 8 + 1, 192)


def test_vit_sizes_for_multi_crop_and_a_mismatch_named(compose):
    import torch

    from sfrik_plugin.console import InputError
    from sfrik_plugin.solo.backbones import build_backbone, fit_backbone_to_crops

    cfg = compose(
        "custom/sfrik",
        ["backbone.name=vit_tiny", "augmentations=asymmetric_multicrop"]
        + [f"augmentations.{i}.crop_size={s}" for i, s in enumerate((16, 16, 8))],
    )
    fit_backbone_to_crops(cfg)
    assert dict(cfg.backbone.kwargs) == {"img_size": 16, "patch_size": 2, "dynamic_img_size": True}
    backbone = build_backbone(cfg, "sfrik").eval()
    with torch.no_grad():
        for size in (16, 8):  # the large and the small views go through one ViT
            assert backbone(torch.randn(2, 3, size, size)).shape == (2, 192)
    mismatch = compose("custom/sfrik", ["backbone.name=vit_tiny", "++backbone.kwargs.img_size=224"])
    for i in (0, 1):
        mismatch.augmentations[i].crop_size = 32
    with pytest.raises(InputError, match=r"\+\+backbone.kwargs.img_size=32 \+\+backbone.kwargs.patch_size=4"):
        fit_backbone_to_crops(mismatch)
    swin = compose("custom/sfrik", ["backbone.name=swin_tiny", "augmentations.0.crop_size=32"])
    with pytest.raises(InputError, match="backbone.name=swin_tiny"):
        fit_backbone_to_crops(swin)


def test_custom_data_has_a_multi_crop_preset_and_keeps_its_run_name(cli, tiny_overrides, tiny_data, tmp_path):
    crops = ["augmentations=asymmetric_multicrop", "augmentations.2.crop_size=8", "augmentations.2.num_crops=2"]
    cli("pretrain", _tiny(tiny_overrides, tiny_data, tmp_path, crops), cwd=tmp_path)
    ckpt, args = _args_json(tmp_path)
    assert (args["data"]["num_large_crops"], args["data"]["num_small_crops"]) == (2, 2)
    assert args["name"] == "sfrik-custom" and ckpt.name.startswith("sfrik-custom-")

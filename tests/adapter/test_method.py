"""SFRIK inside the real solo-learn: config checks, training steps, logged loss, checkpoints."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

requires_solo = pytest.mark.requires_solo


def _parse(cfg):
    """solo-learn's own pretraining config parsing, as the launcher applies it (CPU, 1 device)."""
    from solo.args.pretrain import parse_cfg

    from sfrik_plugin.solo.launch import parse_with_devices

    return parse_with_devices(cfg, parse_cfg)


def _loader(cfg, root, batch_size=4):
    """solo-learn's pretraining dataset/transform machinery on an ImageFolder of generated images."""
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
        dataset_with_index,
    )
    from torch.utils.data import DataLoader
    from torchvision.datasets import ImageFolder

    transform = FullTransformPipeline(
        [NCropAugmentation(build_transform_pipeline(cfg.data.dataset, a), a.num_crops) for a in cfg.augmentations]
    )
    dataset = dataset_with_index(ImageFolder)(str(root), transform)
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, num_workers=0)


def _loss_probe():
    """A callback recomputing ``sfrik_*loss_func`` on the batch's embeddings before each step and
    comparing it with what the method logged for that step."""
    import torch
    from lightning.pytorch.callbacks import Callback

    from sfrik_plugin import sfrik_loss_func, sfrik_multicrop_loss_func
    from sfrik_plugin.solo.method import SFRIK_LOSS_KEYWORDS

    class LossProbe(Callback):
        def __init__(self):
            self.pairs = []

        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            _, crops, _ = batch
            with torch.no_grad():
                large = [module(x)["z"] for x in crops[: module.num_large_crops]]
                small = [module.multicrop_forward(x)["z"] for x in crops[module.num_large_crops :]]
            # an independent path: the loss functions rebuilt from the config at every call
            kw = {keyword: module.cfg.method_kwargs[key] for key, keyword in SFRIK_LOSS_KEYWORDS.items()}
            kw["weights"] = tuple(kw["weights"])
            if small:
                self.expected = sfrik_multicrop_loss_func(large, small, regularize_small=module.reg_small, **kw)
            else:
                self.expected = sfrik_loss_func(large[0], large[1], **kw)

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            m = trainer.callback_metrics
            logged = {
                k: float(m.get(f"train_sfrik_{k}_step", m.get(f"train_sfrik_{k}")))
                for k in ("loss", "invariance", "mmd")
            }
            self.pairs.append((logged, {k: float(getattr(self.expected, k)) for k in logged}))

    return LossProbe()


def _fit(cfg, data_root, max_steps=2, extra_callbacks=(), ckpt_dir=None):
    from lightning.pytorch import Trainer, seed_everything
    from solo.methods import METHODS
    from solo.utils.checkpointer import Checkpointer

    seed_everything(0)
    model = METHODS["sfrik"](cfg)
    callbacks = list(extra_callbacks)
    checkpointer = None
    if ckpt_dir is not None:
        checkpointer = Checkpointer(cfg, logdir=os.path.join(ckpt_dir, "sfrik"), frequency=1)
        callbacks.append(checkpointer)
    trainer = Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=1,
        max_steps=max_steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        callbacks=callbacks,
    )
    trainer.fit(model, _loader(cfg, data_root))
    return model, trainer, checkpointer


# ------------------------------------------------------------------------------------ registry


@requires_solo
def test_import_registers_sfrik_idempotently():
    from solo.methods import METHODS

    import sfrik_plugin.solo as adapter

    assert METHODS["sfrik"] is adapter.SFRIK
    adapter.register()
    adapter.register()
    assert METHODS["sfrik"] is adapter.SFRIK
    assert list(METHODS).count("sfrik") == 1


def test_core_package_does_not_import_solo():
    code = "import sys, sfrik_plugin; assert 'solo' not in sys.modules and 'sfrik_plugin.solo' not in sys.modules"
    subprocess.run(
        [sys.executable, "-c", code], check=True, cwd=REPO_ROOT, env={**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    )


def _import_adapter_with(tmp_path, solo_init: str | None) -> subprocess.CompletedProcess:
    """Imports sfrik_plugin.solo in a fresh process where ``solo`` is missing or a stand-in old one."""
    paths = [str(REPO_ROOT)]
    if solo_init is not None:
        (tmp_path / "solo").mkdir()
        (tmp_path / "solo" / "__init__.py").write_text(solo_init)
        paths.insert(0, str(tmp_path))
    code = "import sys\n" + ("sys.modules['solo'] = None\n" if solo_init is None else "") + "import sfrik_plugin.solo\n"
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(paths)},
    )


def test_missing_solo_learn_gives_install_instructions(tmp_path):
    proc = _import_adapter_with(tmp_path, None)
    assert proc.returncode != 0
    assert "SoloLearnNotAvailable" in proc.stderr
    assert "solo-learn is not installed" in proc.stderr
    assert "PIP_CONSTRAINT" in proc.stderr and "setuptools<81" in proc.stderr


def test_old_pypi_solo_learn_is_rejected_as_wrong_generation(tmp_path):
    # the layout of PyPI's 1.0.2: a `solo` package without the omegaconf-era `solo.args.pretrain`
    proc = _import_adapter_with(tmp_path, "__version__ = '1.0.2'\n")
    assert proc.returncode != 0
    assert "wrong generation" in proc.stderr and "1.0.2" in proc.stderr
    assert "github.com/vturrisi/solo-learn" in proc.stderr


# ------------------------------------------------------------------------------------ config errors


@requires_solo
@pytest.mark.parametrize(
    "override, message",
    [
        (
            "++method_kwargs.sim_coef=10",
            r"unknown method_kwargs key\(s\) for method 'sfrik': sim_coef\. Allowed keys: .*sim_coeff",
        ),
        ("method_kwargs.weights=[1.0,-40.0,40.0]", r"method_kwargs\.weights: .*>= 0"),
        ("method_kwargs.proj_output_dim=1", r"proj_output_dim \(q, the sphere dimension\) must be an integer >= 2"),
        ("method_kwargs.sim_coeff=-1", r"sim_coeff must be a finite number >= 0"),
        ("++method_kwargs.estimator=w", r"estimator must be one of \['v', 'u'\]"),
        ("++method_kwargs.distributed=everywhere", r"distributed must be one of"),
    ],
)
def test_bad_method_kwargs_are_clear_errors(compose, tiny_overrides, override, message):
    from solo.methods import METHODS

    cfg = _parse(compose("cifar10/sfrik", tiny_overrides + [override]))
    with pytest.raises(ValueError, match=message):
        METHODS["sfrik"](cfg)


@requires_solo
def test_defaults_come_from_one_place(compose, tiny_overrides):
    from sfrik_plugin import SFRIK_LOSS_DEFAULTS
    from sfrik_plugin.solo.method import SFRIK, SFRIK_METHOD_DEFAULTS

    cfg = _parse(compose("custom/sfrik", tiny_overrides + ["data.train_path=.", "data.val_path=null"]))
    del cfg.method_kwargs.sim_coeff, cfg.method_kwargs.weights, cfg.method_kwargs.reg_small
    cfg = SFRIK.add_and_assert_specific_cfg(cfg)
    assert cfg.method_kwargs.sim_coeff == SFRIK_LOSS_DEFAULTS["sim_coeff"]
    assert tuple(cfg.method_kwargs.weights) == tuple(SFRIK_LOSS_DEFAULTS["weights"])
    assert cfg.method_kwargs.mmd_method == SFRIK_LOSS_DEFAULTS["method"]
    assert set(cfg.method_kwargs) == set(SFRIK_METHOD_DEFAULTS)


@requires_solo
def test_projector_follows_the_paper(compose, tiny_overrides):
    import torch.nn as nn
    from solo.methods import METHODS

    cfg = _parse(
        compose(
            "cifar10/sfrik",
            tiny_overrides + ["method_kwargs.proj_hidden_dim=[48,40,24]", "~method_kwargs.proj_hidden_layers"],
        )
    )
    model = METHODS["sfrik"](cfg)
    kinds = [type(m) for m in model.projector]
    assert kinds == [nn.Linear, nn.BatchNorm1d, nn.ReLU] * 3 + [nn.Linear]
    widths = [m.out_features for m in model.projector if isinstance(m, nn.Linear)]
    assert widths == [48, 40, 24, 16]
    assert model.projector[-1].bias is None
    assert all(m.bias is not None for m in list(model.projector)[:-1] if isinstance(m, nn.Linear))


@requires_solo
def test_defaults_fill_only_the_missing_keys(compose, tiny_overrides):
    # a key the user gave keeps its value, an interpolation stays one (it used to be re-defaulted:
    # resolved and written back); a missing key gets SFRIK's default
    from omegaconf import OmegaConf

    from sfrik_plugin.solo.method import SFRIK, SFRIK_METHOD_DEFAULTS

    cfg = _parse(compose("cifar10/sfrik", tiny_overrides))
    cfg.method_kwargs.proj_hidden_dim = "${method_kwargs.proj_output_dim}"
    del cfg.method_kwargs.reg_small
    cfg = SFRIK.add_and_assert_specific_cfg(cfg)
    assert OmegaConf.is_interpolation(cfg.method_kwargs, "proj_hidden_dim")
    assert cfg.method_kwargs.proj_hidden_dim == cfg.method_kwargs.proj_output_dim == 16
    assert cfg.method_kwargs.reg_small is SFRIK_METHOD_DEFAULTS["reg_small"]


@requires_solo
@pytest.mark.parametrize(
    "override, message",
    [
        ("++method_kwargs.mmd_method=fast", r"^method_kwargs\.mmd_method must be one of \['auto', 'gram'"),
        ("++method_kwargs.block_size=0", r"^method_kwargs\.block_size must be a positive integer or None, got 0$"),
        ("++method_kwargs.mmd_coeff=inf", r"^method_kwargs\.mmd_coeff must be a finite number >= 0, got inf$"),
        ("++method_kwargs.proj_hidden_layers=-1", r"^method_kwargs\.proj_hidden_layers must be an integer >= 0"),
    ],
)
def test_the_loss_and_projector_checks_name_the_method_kwargs_key(compose, tiny_overrides, override, message):
    from solo.methods import METHODS

    cfg = _parse(compose("cifar10/sfrik", tiny_overrides + [override]))
    with pytest.raises(ValueError, match=message):
        METHODS["sfrik"](cfg)


@requires_solo
def test_the_loss_settings_are_built_once_not_at_every_step(compose, tiny_overrides, monkeypatch):
    # the kernel and the MMD options are made when the method is built; a training step only computes
    import torch
    from solo.methods import METHODS

    from sfrik_plugin import sfrik_loss_func, sfrik_multicrop_loss_func
    from sfrik_plugin.maths.kernels import TruncatedLegendreKernel
    from sfrik_plugin.maths.options import MMDOptions

    built: list[str] = []
    for cls, method in ((TruncatedLegendreKernel, "__init__"), (MMDOptions, "__post_init__")):
        original = getattr(cls, method)

        def counting(self, *args, _original=original, _name=cls.__name__, **kwargs):
            built.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(cls, method, counting)

    cfg = _parse(compose("cifar10/sfrik", tiny_overrides + ["++method_kwargs.mmd_method=gram"]))
    model = METHODS["sfrik"](cfg)
    assert sorted(built) == ["MMDOptions", "TruncatedLegendreKernel"]  # checked once, when the method is built
    built.clear()
    z = [torch.randn(8, 16) for _ in range(4)]
    two, multi = model.sfrik_loss(z[:2]), model.sfrik_loss(z)
    model.sfrik_loss(z[:2])
    assert built == []
    kwargs = dict(sim_coeff=cfg.method_kwargs.sim_coeff, weights=tuple(cfg.method_kwargs.weights), method="gram")
    assert torch.allclose(two.loss, sfrik_loss_func(z[0], z[1], **kwargs).loss)
    assert torch.allclose(multi.loss, sfrik_multicrop_loss_func(z[:2], z[2:], **kwargs).loss)


# ------------------------------------------------------------------------------------ training


@requires_solo
def test_cifar_variant_fits_logs_the_true_loss_and_checkpoints(compose, tiny_overrides, tiny_data, tmp_path):
    import torch
    import torch.nn as nn
    from solo.methods import METHODS
    from solo.methods.base import BaseMethod

    overrides = tiny_overrides + ["augmentations.0.crop_size=16", "data.train_path=unused", "data.val_path=null"]
    cfg = _parse(compose("cifar10/sfrik", overrides))
    probe = _loss_probe()
    model, trainer, checkpointer = _fit(
        cfg, tiny_data["train"], max_steps=2, extra_callbacks=[probe], ckpt_dir=str(tmp_path)
    )

    # the CIFAR stem solo-learn uses for cifar10/100
    assert model.backbone.conv1.kernel_size == (3, 3) and isinstance(model.backbone.maxpool, nn.Identity)
    assert trainer.global_step == 2 and len(probe.pairs) == 2
    for logged, expected in probe.pairs:
        for key in logged:
            assert math.isfinite(logged[key])
            assert logged[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key
        assert logged["loss"] == pytest.approx(
            cfg.method_kwargs.sim_coeff * logged["invariance"] + logged["mmd"], rel=1e-5
        )

    # reload the checkpoint with solo-learn's linear-evaluation rule: keep `backbone.*`, strip the prefix
    ckpt = Path(checkpointer.last_ckpt)
    assert ckpt.is_file() and (ckpt.parent / "args.json").is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    for k in list(state):
        if "backbone" in k:
            state[k.replace("backbone.", "")] = state[k]
        del state[k]
    backbone = BaseMethod._BACKBONES["resnet18"]("sfrik")
    backbone.fc = nn.Identity()
    backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    backbone.maxpool = nn.Identity()
    backbone.load_state_dict(state, strict=True)
    for key, value in model.backbone.state_dict().items():
        assert torch.equal(backbone.state_dict()[key], value), key

    # ... and with solo-learn's kNN rule: the method class rebuilt from args.json + load_from_checkpoint
    import json

    from omegaconf import OmegaConf

    saved_cfg = OmegaConf.create(json.loads((ckpt.parent / "args.json").read_text()))
    reloaded = METHODS[saved_cfg.method].load_from_checkpoint(str(ckpt), strict=False, cfg=saved_cfg)
    x = torch.randn(3, 3, 16, 16)
    model.eval(), reloaded.eval()
    with torch.no_grad():
        out_a, out_b = model(x), reloaded(x)
    assert set(out_b) >= {"feats", "z", "logits"}
    assert torch.allclose(out_a["z"], out_b["z"], atol=1e-5)


@requires_solo
@pytest.mark.parametrize("reg_small", [True, False])
def test_imagenet_variant_with_small_crops(compose, tiny_overrides, tiny_data, reg_small):
    import torch.nn as nn

    overrides = tiny_overrides + [
        "augmentations=asymmetric_multicrop",
        "augmentations.0.crop_size=24",
        "augmentations.1.crop_size=24",
        "augmentations.2.crop_size=12",
        "augmentations.2.num_crops=2",
        f"method_kwargs.reg_small={reg_small}",
        "data.train_path=unused",
        "data.val_path=null",
    ]
    cfg = _parse(compose("imagenet100/sfrik", overrides))
    assert cfg.data.num_large_crops == 2 and cfg.data.num_small_crops == 2
    probe = _loss_probe()
    model, trainer, _ = _fit(cfg, tiny_data["train"], max_steps=1, extra_callbacks=[probe])
    assert isinstance(model.backbone.maxpool, nn.MaxPool2d)  # ImageNet stem
    assert model.multicrop and model.reg_small is reg_small
    ((logged, expected),) = probe.pairs
    for key in logged:
        assert logged[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6), key


@requires_solo
def test_ddp_logs_the_global_loss_without_lightnings_sync_dist_warnings(cli, tiny_overrides, tiny_data, tmp_path):
    # the loss is global on every rank already, so it is logged without sync_dist (no all-reduce
    # per value per step); Lightning's three "It is recommended to use sync_dist=True" warnings,
    # which cannot know that, do not reach the user
    overrides = [o for o in tiny_overrides if not o.startswith(("devices=", "strategy="))]
    proc = cli(
        "pretrain",
        overrides
        + [
            "--config-name",
            "custom/sfrik",
            f"data.train_path={tiny_data['train']}",
            "data.val_path=null",
            "augmentations.0.crop_size=16",
            "augmentations.1.crop_size=16",
            f"checkpoint.dir={tmp_path / 'ckpt'}",
            "max_epochs=1",
            "++limit_train_batches=2",
            "auto_resume.enabled=False",
            "devices=2",
            "strategy=ddp",
        ],
        cwd=tmp_path,
    )
    output = proc.stdout + proc.stderr
    assert "train_sfrik_loss" in output  # the loss is still logged (the launcher's progress lines)
    assert "sync_dist=True" not in output, output[-3000:]


@requires_solo
@pytest.mark.parametrize("method", ["sfrik", "vicreg", "barlow"])
def test_the_memory_model_counts_the_projector_the_method_builds(compose, tiny_overrides, method):
    # SFRIK's last projector layer has no bias, solo-learn's VICReg and Barlow Twins keep one: the
    # memory model (and the launcher's memory check) count each as it is built
    from solo.methods import METHODS

    from sfrik_plugin.contenders import get_train_method

    entry = get_train_method(method)
    cfg = _parse(compose(f"cifar10/{entry.config}", tiny_overrides + ["method_kwargs.proj_hidden_dim=24"]))
    model = METHODS[entry.solo_method](cfg)
    built = sum(p.numel() for p in model.projector.parameters())
    predicted = entry.projector(model.features_dim, cfg.method_kwargs)
    assert predicted.parameters() == built
    assert predicted.widths == (model.features_dim, 24, 24, 16)
    assert (model.projector[-1].bias is not None) is predicted.last_bias is (method != "sfrik")

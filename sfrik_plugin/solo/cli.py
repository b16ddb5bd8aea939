"""Launchers for a pip-installed solo-learn: pretraining, offline linear evaluation, kNN evaluation.

solo-learn's own ``main_pretrain.py`` / ``main_linear.py`` / ``main_knn.py`` are not part of its
installed package, so these launchers are written against its library API (config parsing,
data loading, methods, checkpointer, auto-resumer). They read hydra configs exactly as solo-learn
users write them, with the same command-line overrides, and add:

* ``--config-name cifar10/sfrik`` picks a config shipped inside this package (see
  ``sfrik_plugin/solo/configs``); ``--config-path`` may be relative to the current directory;
* CPU runs work: ``devices`` may be an int, ``strategy`` defaults sensibly, sync-BN is turned off
  on CPU, and custom/ImageNet validation images are resized for the pretraining crop size;
* ``csv.enabled=true`` writes metrics to CSV; wandb is off unless a config turns it on;
* every process registers SFRIK first, so Lightning's DDP (several GPUs or CPU processes, several
  nodes via ``num_nodes``) finds the method in each process it starts.

Entry points (console scripts): ``sfrik-pretrain``, ``sfrik-linear``, ``sfrik-knn``; without
installation: ``python -m sfrik_plugin.solo.cli {pretrain,linear,knn} [hydra args]``.
"""

from __future__ import annotations

import inspect
import json
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..data.transforms import classifier_train_transform, eval_transform
from .launch import names_a_config, no_config_message, parse_with_devices, rewrite_argv

_COMMAND_ENV = "SFRIK_SOLO_CLI_COMMAND"


def _run_hydra(kind: str, main: Callable) -> Any:
    import hydra

    argv = rewrite_argv(sys.argv[1:], kind)
    if not names_a_config(argv):
        sys.exit(no_config_message(kind))
    from . import register

    register()
    # Lightning re-runs sys.argv for each DDP process it starts: keep the rewritten form there
    sys.argv[1:] = argv
    entry = hydra.main(version_base="1.2", config_path=None, config_name=None)(main)
    return entry()


def _set_struct_off(cfg):
    from omegaconf import OmegaConf

    OmegaConf.set_struct(cfg, False)
    return cfg


def _trainer(cfg, callbacks: list, logger) -> Any:
    from lightning.pytorch import Trainer
    from lightning.pytorch.strategies.ddp import DDPStrategy
    from omegaconf import OmegaConf

    container = OmegaConf.to_container(cfg, resolve=True)
    valid = inspect.signature(Trainer.__init__).parameters
    kwargs = {name: container[name] for name in valid if name in container}
    strategy = cfg.strategy
    if strategy == "ddp":
        strategy = DDPStrategy(find_unused_parameters=False)
    kwargs.update(
        {
            "logger": logger if logger is not None else False,
            "callbacks": callbacks,
            "enable_checkpointing": False,  # solo-learn's Checkpointer does it
            "strategy": strategy,
        }
    )
    return Trainer(**kwargs)


def _loggers(cfg, model=None) -> tuple:
    """wandb (as solo-learn configures it) and/or a CSV logger; returns (loggers, callbacks)."""
    loggers, callbacks = [], []
    if cfg.get("wandb", {}).get("enabled", False):
        from lightning.pytorch.callbacks import LearningRateMonitor
        from lightning.pytorch.loggers.wandb import WandbLogger
        from omegaconf import OmegaConf

        wandb_logger = WandbLogger(
            name=cfg.name,
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            offline=cfg.wandb.offline,
            resume="allow" if cfg.get("_wandb_run_id") else None,
            id=cfg.get("_wandb_run_id"),
        )
        if model is not None:
            wandb_logger.watch(model, log="gradients", log_freq=100)
        wandb_logger.log_hyperparams(OmegaConf.to_container(cfg))
        loggers.append(wandb_logger)
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.get("csv", {}).get("enabled", False):
        from lightning.pytorch.loggers import CSVLogger

        loggers.append(CSVLogger(save_dir=cfg.csv.get("dir", "logs"), name=cfg.name))
    if not loggers:
        return None, callbacks
    return (loggers[0] if len(loggers) == 1 else loggers), callbacks


def _resume(cfg, subdir: str) -> str | None:
    """solo-learn's resume rules: an explicit ``resume_from_checkpoint``, else the auto-resumer."""
    from solo.utils.auto_resumer import AutoResumer

    ckpt_path = None
    if cfg.resume_from_checkpoint is not None:
        ckpt_path = str(cfg.resume_from_checkpoint)
        del cfg.resume_from_checkpoint
        print(f"[sfrik] resuming from '{ckpt_path}'", flush=True)
    elif cfg.auto_resume.enabled:
        resumer = AutoResumer(
            checkpoint_dir=os.path.join(cfg.checkpoint.dir, subdir), max_hours=cfg.auto_resume.max_hours
        )
        ckpt_path, wandb_run_id = resumer.find_checkpoint(cfg)
        if ckpt_path is not None:
            print(f"[sfrik] auto-resume: continuing from '{ckpt_path}'", flush=True)
            cfg._wandb_run_id = wandb_run_id
    return ckpt_path


class _ProgressPrinter:
    """Prints one line of metrics per epoch (and at the end), whatever the logger."""

    def __new__(cls, keys_prefixes: Sequence[str]):
        from lightning.pytorch.callbacks import Callback

        class ProgressPrinter(Callback):
            def __init__(self):
                self.prefixes = tuple(keys_prefixes)

            def on_train_start(self, trainer, pl_module):
                if trainer.is_global_zero:
                    print(
                        f"[sfrik] training {type(pl_module).__name__} on {trainer.world_size} process(es) "
                        f"({trainer.num_nodes} node(s), strategy {type(trainer.strategy).__name__})",
                        flush=True,
                    )

            def on_train_epoch_end(self, trainer, pl_module):
                if trainer.is_global_zero and not trainer.sanity_checking:
                    line = _format_metrics(trainer.callback_metrics, self.prefixes)
                    print(f"[sfrik] epoch {trainer.current_epoch + 1}/{trainer.max_epochs} {line}", flush=True)

        return ProgressPrinter()


def _format_metrics(metrics: dict[str, Any], prefixes: Sequence[str]) -> str:
    parts = []
    for key in sorted(metrics):
        if key.startswith(tuple(prefixes)) and not key.endswith("_step"):
            value = metrics[key]
            value = float(value.item() if hasattr(value, "item") else value)
            parts.append(f"{key}={value:.4g}")
    return " ".join(parts)


def _final_metrics(trainer) -> dict[str, float]:
    out = {}
    for key, value in trainer.callback_metrics.items():
        try:
            out[key] = float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError):
            continue
    return out


# --------------------------------------------------------------------------------------------
# transforms for datasets solo-learn would resize to 224 whatever the crop size


def _mean_std(dataset: str, aug: Any):
    from timm.data.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    if dataset in ("imagenet", "imagenet100") or aug is None:
        return IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
    return tuple(aug.get("mean", IMAGENET_DEFAULT_MEAN)), tuple(aug.get("std", IMAGENET_DEFAULT_STD))


def _cifar_like(dataset: str) -> bool:
    return dataset in ("cifar10", "cifar100", "stl10")


# --------------------------------------------------------------------------------------------
# pretraining


def _pretrain_val_loader(cfg):
    from solo.data.classification_dataloader import prepare_data, prepare_dataloaders, prepare_datasets

    dataset = cfg.data.dataset
    if cfg.data.val_path is None and dataset in ("custom", "imagenet", "imagenet100"):
        return None
    if dataset == "custom" and cfg.data.no_labels:
        return None
    data_format = "image_folder" if cfg.data.format == "dali" else cfg.data.format
    if _cifar_like(dataset):
        _, val_loader = prepare_data(
            dataset,
            train_data_path=cfg.data.train_path,
            val_data_path=cfg.data.val_path,
            data_format=data_format,
            batch_size=cfg.optimizer.batch_size,
            num_workers=cfg.data.num_workers,
        )
        return val_loader
    aug = cfg.augmentations[0]
    T = eval_transform(int(aug.crop_size), *_mean_std(dataset, aug))
    _, val_dataset = prepare_datasets(
        dataset, T, T, train_data_path=cfg.data.train_path, val_data_path=cfg.data.val_path, data_format=data_format
    )
    # prepare_dataloaders builds both loaders; only the validation one is used here
    _, val_loader = prepare_dataloaders(
        val_dataset, val_dataset, batch_size=cfg.optimizer.batch_size, num_workers=cfg.data.num_workers
    )
    return val_loader


def _pretrain_train_loader(cfg):
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
        prepare_dataloader,
        prepare_datasets,
    )

    if cfg.data.format == "dali":
        raise NotImplementedError("data.format=dali is not wired into sfrik-pretrain yet; use image_folder or h5")
    pipelines = [
        NCropAugmentation(build_transform_pipeline(cfg.data.dataset, aug), aug.num_crops) for aug in cfg.augmentations
    ]
    transform = FullTransformPipeline(pipelines)
    if cfg.debug_augmentations:
        print("Transforms:\n", transform)
    dataset = prepare_datasets(
        cfg.data.dataset,
        transform,
        train_data_path=cfg.data.train_path,
        data_format=cfg.data.format,
        no_labels=cfg.data.no_labels,
        data_fraction=cfg.data.fraction,
    )
    return prepare_dataloader(dataset, batch_size=cfg.optimizer.batch_size, num_workers=cfg.data.num_workers)


def run_pretrain(cfg) -> dict[str, Any]:
    """Pretrains ``METHODS[cfg.method]`` from a solo-learn pretraining config (a DictConfig).

    Returns ``{"trainer", "model", "checkpoint" (last checkpoint path or None), "metrics"}``.
    """
    import torch
    from lightning.pytorch import seed_everything
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS
    from solo.utils.checkpointer import Checkpointer
    from solo.utils.misc import make_contiguous

    from . import register
    from .method import check_sfrik_method_kwargs

    register()
    cfg = _set_struct_off(cfg)
    if cfg.get("method") not in METHODS:
        raise ValueError(f"unknown method {cfg.get('method')!r}; choose from {sorted(METHODS)}")
    if cfg.method == "sfrik":  # fail on a bad config before touching data or building a backbone
        check_sfrik_method_kwargs(cfg.get("method_kwargs", {}))
    cfg = parse_with_devices(cfg, parse_cfg)
    if cfg.data.num_large_crops != 2 and cfg.method not in ("wmse", "mae", "sfrik"):
        raise ValueError(f"{cfg.method} needs exactly 2 large crops, got {cfg.data.num_large_crops}")

    seed_everything(cfg.seed)
    model = METHODS[cfg.method](cfg)
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)

    val_loader = _pretrain_val_loader(cfg)
    train_loader = _pretrain_train_loader(cfg)

    ckpt_path = _resume(cfg, cfg.method)
    logger, callbacks = _loggers(cfg, model)
    checkpointer = None
    if cfg.checkpoint.enabled:
        checkpointer = Checkpointer(
            cfg,
            logdir=os.path.join(cfg.checkpoint.dir, cfg.method),
            frequency=cfg.checkpoint.frequency,
            keep_prev=cfg.checkpoint.keep_prev,
        )
        callbacks.append(checkpointer)
    callbacks.append(_ProgressPrinter(("train_sfrik", f"train_{cfg.method}", "train_acc1", "val_")))

    trainer = _trainer(cfg, callbacks, logger)
    trainer.fit(model, train_loader, val_loader, ckpt_path=ckpt_path)

    last = None
    if checkpointer is not None:
        last = getattr(checkpointer, "last_ckpt", None)
        if last is None and ckpt_path is not None:
            # resumed a run that had already reached max_epochs: nothing trained, nothing saved
            print("[sfrik] the resumed run was already complete; nothing left to train", flush=True)
            last = ckpt_path
    metrics = _final_metrics(trainer)
    if trainer.is_global_zero:
        print(f"[sfrik] pretraining done: {_format_metrics(metrics, ('train_', 'val_'))}", flush=True)
        if last is not None:
            print(f"[sfrik] checkpoint: {last}", flush=True)
    return {"trainer": trainer, "model": model, "checkpoint": str(last) if last else None, "metrics": metrics}


# --------------------------------------------------------------------------------------------
# loading a backbone the way solo-learn's linear evaluation does


def backbone_state_dict(path: str) -> dict[str, Any]:
    """The backbone weights of a checkpoint, without the ``backbone.`` prefix.

    Accepts solo-learn / Lightning checkpoints (``state_dict`` with ``backbone.*`` keys, the rule
    solo-learn's ``main_linear.py`` applies) and plain backbone state dicts (e.g. released
    torchvision-style ResNet weights). Raises ``ValueError`` when no backbone weights are found.
    """
    import torch

    state = torch.load(path, map_location="cpu", weights_only=False)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} does not hold a state dict")
    prefixed = {k[len("backbone.") :]: v for k, v in state.items() if k.startswith("backbone.")}
    if prefixed:
        return prefixed
    legacy = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    if legacy:
        return legacy
    if any(k.startswith(("classifier.", "projector.", "momentum_")) for k in state):
        raise ValueError(f"{path} is a method checkpoint without backbone.* weights")
    return dict(state)


def load_backbone(backbone, path: str) -> None:
    """Loads :func:`backbone_state_dict` into ``backbone``; every backbone weight must be present."""
    state = backbone_state_dict(path)
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    if missing:
        raise ValueError(
            f"{path}: the checkpoint lacks {len(missing)} backbone weight(s), e.g. {missing[:5]}; "
            "is it the same backbone (and the same cifar/imagenet stem)?"
        )
    unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if unexpected:
        warnings.warn(f"{path}: ignoring {len(unexpected)} unexpected weight(s), e.g. {unexpected[:5]}")


def build_backbone(cfg, method: str | None = None):
    """A solo-learn backbone without its fc layer, with the CIFAR stem for cifar10/100."""
    import torch.nn as nn
    from solo.methods.base import BaseMethod

    if cfg.backbone.name not in BaseMethod._BACKBONES:
        raise ValueError(f"unknown backbone {cfg.backbone.name!r}; choose from {sorted(BaseMethod._BACKBONES)}")
    backbone = BaseMethod._BACKBONES[cfg.backbone.name](method, **cfg.backbone.kwargs)
    if cfg.backbone.name.startswith("resnet"):
        backbone.fc = nn.Identity()
        if cfg.data.dataset in ("cifar10", "cifar100"):
            backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
            backbone.maxpool = nn.Identity()
    return backbone


# --------------------------------------------------------------------------------------------
# offline linear evaluation


def _classification_loaders(cfg, train_transform=None, val_transform=None):
    from solo.data.classification_dataloader import prepare_data, prepare_dataloaders, prepare_datasets

    data_format = "image_folder" if cfg.data.format == "dali" else cfg.data.format
    if _cifar_like(cfg.data.dataset):
        return prepare_data(
            cfg.data.dataset,
            train_data_path=cfg.data.train_path,
            val_data_path=cfg.data.val_path,
            data_format=data_format,
            batch_size=cfg.optimizer.batch_size,
            num_workers=cfg.data.num_workers,
            auto_augment=cfg.get("auto_augment", False),
        )
    train_ds, val_ds = prepare_datasets(
        cfg.data.dataset,
        train_transform,
        val_transform,
        train_data_path=cfg.data.train_path,
        val_data_path=cfg.data.val_path,
        data_format=data_format,
        data_fraction=cfg.data.fraction,
    )
    return prepare_dataloaders(train_ds, val_ds, batch_size=cfg.optimizer.batch_size, num_workers=cfg.data.num_workers)


def run_linear(cfg) -> dict[str, Any]:
    """Offline linear evaluation (frozen backbone, or fine-tuning with ``finetune=true``).

    Returns ``{"trainer", "model", "checkpoint", "metrics"}``.
    """
    import torch
    from lightning.pytorch import seed_everything
    from solo.args.linear import parse_cfg
    from solo.methods.linear import LinearModel
    from solo.utils.checkpointer import Checkpointer
    from solo.utils.misc import make_contiguous

    from . import register

    register()
    cfg = _set_struct_off(cfg)
    ckpt = cfg.get("pretrained_feature_extractor")
    if ckpt in (None, "None", "???") or not os.path.isfile(str(ckpt)):
        raise ValueError(f"pretrained_feature_extractor must be an existing checkpoint file, got {ckpt!r}")
    cfg = parse_with_devices(cfg, parse_cfg)
    seed_everything(cfg.seed)

    backbone = build_backbone(cfg, cfg.pretrain_method)
    load_backbone(backbone, str(cfg.pretrained_feature_extractor))
    print(f"[sfrik] loaded backbone weights from {cfg.pretrained_feature_extractor}", flush=True)

    mixup_func, loss_func = None, torch.nn.CrossEntropyLoss()
    if cfg.mixup > 0 or cfg.cutmix > 0:
        from timm.data.mixup import Mixup
        from timm.loss import SoftTargetCrossEntropy

        mixup_func = Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            prob=1.0,
            switch_prob=0.5,
            mode="batch",
            label_smoothing=cfg.label_smoothing,
            num_classes=cfg.data.num_classes,
        )
        loss_func = SoftTargetCrossEntropy()
    elif cfg.label_smoothing > 0:
        from timm.loss import LabelSmoothingCrossEntropy

        loss_func = LabelSmoothingCrossEntropy(smoothing=cfg.label_smoothing)

    model = LinearModel(backbone, loss_func=loss_func, mixup_func=mixup_func, cfg=cfg)
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)

    aug = cfg.data.augmentations
    mean, std = _mean_std(cfg.data.dataset, aug)
    crop = int(aug.crop_size)
    train_loader, val_loader = _classification_loaders(
        cfg,
        classifier_train_transform(crop, mean, std, float(aug.get("crop_min_scale", 0.08))),
        eval_transform(crop, mean, std),
    )

    ckpt_path = _resume(cfg, "linear")
    logger, callbacks = _loggers(cfg, model)
    checkpointer = None
    if cfg.checkpoint.enabled:
        checkpointer = Checkpointer(
            cfg,
            logdir=os.path.join(cfg.checkpoint.dir, "linear"),
            frequency=cfg.checkpoint.frequency,
            keep_prev=cfg.checkpoint.keep_prev,
        )
        callbacks.append(checkpointer)
    callbacks.append(_ProgressPrinter(("train_loss", "train_acc1", "val_")))
    trainer = _trainer(cfg, callbacks, logger)
    trainer.fit(model, train_loader, val_loader, ckpt_path=ckpt_path)

    metrics = _final_metrics(trainer)
    last = getattr(checkpointer, "last_ckpt", None) if checkpointer is not None else None
    if trainer.is_global_zero:
        print(f"[sfrik] linear evaluation done: {_format_metrics(metrics, ('val_',))}", flush=True)
    return {"trainer": trainer, "model": model, "checkpoint": str(last) if last else None, "metrics": metrics}


# --------------------------------------------------------------------------------------------
# offline kNN evaluation


def _find_pretrain_checkpoint(cfg):
    """(checkpoint file, args.json) from ``pretrained_checkpoint_dir`` or ``pretrained_feature_extractor``."""
    ckpt = cfg.get("pretrained_feature_extractor")
    folder = cfg.get("pretrained_checkpoint_dir")
    if ckpt not in (None, "None"):
        ckpt = Path(str(ckpt))
        folder = ckpt.parent
    elif folder not in (None, "None"):
        folder = Path(str(folder))
        ckpts = sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
        if not ckpts:
            raise ValueError(f"no .ckpt file in pretrained_checkpoint_dir={folder}")
        ckpt = ckpts[-1]
    else:
        raise ValueError("set pretrained_checkpoint_dir (a pretraining run folder) or pretrained_feature_extractor")
    args = Path(folder) / "args.json"
    if not ckpt.is_file() or not args.is_file():
        raise ValueError(f"need {ckpt} and the args.json solo-learn writes next to it ({args})")
    return ckpt, args


def run_knn(cfg) -> dict[str, Any]:
    """Weighted kNN on frozen features of a pretrained model (backbone and/or projector features).

    Returns ``{"results": [{"feature_type", "k", "distance_fx", "T", "acc1", "acc5"}, ...]}``.
    """
    import torch
    from omegaconf import OmegaConf
    from solo.data.classification_dataloader import prepare_dataloaders, prepare_datasets, prepare_transforms
    from solo.methods import METHODS
    from solo.utils.knn import WeightedKNNClassifier

    from . import register

    register()
    cfg = _set_struct_off(cfg)
    ckpt, args_path = _find_pretrain_checkpoint(cfg)
    method_cfg = OmegaConf.create(json.loads(args_path.read_text()))
    OmegaConf.set_struct(method_cfg, False)
    method = method_cfg.method
    if method not in METHODS:
        raise ValueError(f"{args_path} names method {method!r}, which is not registered")
    model = METHODS[method](method_cfg)
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    missing, _ = model.load_state_dict(state, strict=False)
    needed = [k for k in missing if k.startswith(("backbone.", "projector."))]
    if needed:
        raise ValueError(f"{ckpt} lacks weights the kNN needs, e.g. {needed[:5]}")
    device = torch.device(cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device).eval()

    dataset = cfg.data.get("dataset") or method_cfg.data.dataset
    if _cifar_like(dataset):
        _, T = prepare_transforms(dataset)
    else:
        aug = method_cfg.augmentations[0] if "augmentations" in method_cfg else None
        crop = int(cfg.data.get("crop_size") or (aug.crop_size if aug is not None else 224))
        T = eval_transform(crop, *_mean_std(dataset, aug))
    train_ds, val_ds = prepare_datasets(
        dataset,
        T_train=T,
        T_val=T,
        train_data_path=cfg.data.train_path or method_cfg.data.train_path,
        val_data_path=cfg.data.val_path or method_cfg.data.val_path,
        data_format=cfg.data.get("format") or "image_folder",
    )
    train_loader, val_loader = prepare_dataloaders(
        train_ds, val_ds, batch_size=cfg.batch_size, num_workers=cfg.data.get("num_workers", 0)
    )
    train_loader = torch.utils.data.DataLoader(
        train_ds, batch_size=cfg.batch_size, shuffle=False, num_workers=cfg.data.get("num_workers", 0)
    )

    @torch.no_grad()
    def features(loader):
        feats, projs, labels = [], [], []
        for images, targets in loader:
            out = model(images.to(device))
            feats.append(out["feats"].float().cpu())
            projs.append(out["z"].float().cpu())
            labels.append(targets)
        return {"backbone": torch.cat(feats), "projector": torch.cat(projs)}, torch.cat(labels)

    train_feats, train_targets = features(train_loader)
    val_feats, val_targets = features(val_loader)
    results = []
    for feature_type in cfg.feature_type:
        for k in cfg.k:
            for distance_fx in cfg.distance_function:
                for T in cfg.temperature if distance_fx == "cosine" else [None]:
                    knn = WeightedKNNClassifier(k=int(k), T=T if T is not None else 0.07, distance_fx=distance_fx)
                    knn(
                        train_features=train_feats[feature_type],
                        train_targets=train_targets,
                        test_features=val_feats[feature_type],
                        test_targets=val_targets,
                    )
                    acc1, acc5 = knn.compute()
                    row = dict(feature_type=feature_type, k=int(k), distance_fx=distance_fx, T=T, acc1=acc1, acc5=acc5)
                    results.append(row)
                    print(
                        f"[sfrik] kNN {feature_type:9s} k={int(k):<4d} {distance_fx:9s} T={T}: "
                        f"acc@1={acc1:.2f} acc@5={acc5:.2f}",
                        flush=True,
                    )
    if cfg.get("output"):
        Path(cfg.output).parent.mkdir(parents=True, exist_ok=True)
        Path(cfg.output).write_text(json.dumps(results, indent=2))
    return {"results": results}


# --------------------------------------------------------------------------------------------
# console entry points


def pretrain() -> None:
    """``sfrik-pretrain --config-name cifar10/sfrik [key=value ...]``"""
    _run_hydra("pretrain", run_pretrain)


def linear() -> None:
    """``sfrik-linear --config-name cifar10/linear pretrained_feature_extractor=PATH [key=value ...]``"""
    _run_hydra("linear", run_linear)


def knn() -> None:
    """``sfrik-knn --config-name knn pretrained_checkpoint_dir=DIR data.train_path=... data.val_path=...``"""
    _run_hydra("knn", run_knn)


_COMMANDS = {"pretrain": pretrain, "linear": linear, "knn": knn}


def main() -> None:
    """``python -m sfrik_plugin.solo.cli {pretrain,linear,knn} [hydra args]``.

    The sub-command is removed from ``sys.argv`` (hydra must not see it) and remembered in an
    environment variable, which the processes Lightning starts for DDP inherit.
    """
    if len(sys.argv) > 1 and sys.argv[1] in _COMMANDS:
        command = sys.argv.pop(1)
        os.environ[_COMMAND_ENV] = command
    else:
        command = os.environ.get(_COMMAND_ENV)
    if command not in _COMMANDS:
        sys.exit("usage: python -m sfrik_plugin.solo.cli {pretrain,linear,knn} --config-name NAME [key=value ...]")
    _COMMANDS[command]()


if __name__ == "__main__":
    main()

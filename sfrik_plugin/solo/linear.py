"""Offline linear evaluation of a pretrained backbone (frozen, or fine-tuned with ``finetune=true``).

solo-learn's ``LinearModel`` on a backbone read with the project's trust policy
(:func:`.backbones.load_backbone`); the training and validation images get the classifier and
evaluation transforms of :mod:`sfrik_plugin.data.transforms` at the config's crop size.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..console import InputError, get_logger
from ..data.transforms import classifier_train_transform, eval_transform
from ..interrupts import WATCH
from .backbones import build_backbone, load_backbone
from .loaders import check_data_paths, classification_loaders, mean_std
from .runtime import (
    ProgressLines,
    build_checkpointer,
    build_loggers,
    build_trainer,
    final_metrics,
    format_metrics,
    resume_checkpoint,
)

__all__ = ["run_linear"]

log = get_logger(__name__)


def _loss_and_mixup(cfg: Any) -> tuple[Any, Any]:
    import torch

    if cfg.mixup > 0 or cfg.cutmix > 0:
        from timm.data.mixup import Mixup
        from timm.loss import SoftTargetCrossEntropy

        mixup = Mixup(
            mixup_alpha=cfg.mixup,
            cutmix_alpha=cfg.cutmix,
            prob=1.0,
            switch_prob=0.5,
            mode="batch",
            label_smoothing=cfg.label_smoothing,
            num_classes=cfg.data.num_classes,
        )
        return SoftTargetCrossEntropy(), mixup
    if cfg.label_smoothing > 0:
        from timm.loss import LabelSmoothingCrossEntropy

        return LabelSmoothingCrossEntropy(smoothing=cfg.label_smoothing), None
    return torch.nn.CrossEntropyLoss(), None


def run_linear(cfg: Any) -> dict[str, Any]:
    """Trains a linear classifier on the backbone of ``pretrained_feature_extractor``; returns
    ``{"trainer", "model", "checkpoint", "metrics"}``."""
    import torch
    from lightning.pytorch import seed_everything
    from omegaconf import OmegaConf
    from solo.args.linear import parse_cfg
    from solo.methods.linear import LinearModel
    from solo.utils.misc import make_contiguous

    from . import register
    from .known_keys import check_config_keys
    from .launch import parse_with_devices

    register()
    OmegaConf.set_struct(cfg, False)
    check_config_keys("linear", cfg)  # a typo is an error, not a default
    weights = cfg.get("pretrained_feature_extractor")
    if weights in (None, "None", "???") or not Path(str(weights)).is_file():
        raise InputError(f"pretrained_feature_extractor must be an existing checkpoint file, got {weights!r}")
    check_data_paths(cfg.data, train_labelled=True)
    trust_pickle = bool(cfg.get("trust_pickle", False))
    cfg = parse_with_devices(cfg, parse_cfg)
    seed_everything(cfg.seed)

    backbone = build_backbone(cfg, cfg.pretrain_method)
    load_backbone(backbone, str(cfg.pretrained_feature_extractor), trust_pickle=trust_pickle)
    log.info("loaded backbone weights from %s", cfg.pretrained_feature_extractor)
    loss_func, mixup_func = _loss_and_mixup(cfg)
    model = LinearModel(backbone, loss_func=loss_func, mixup_func=mixup_func, cfg=cfg)
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)

    aug = cfg.data.augmentations
    mean, std = mean_std(cfg.data.dataset, aug)
    crop = int(aug.crop_size)
    train_loader, val_loader = classification_loaders(
        cfg,
        classifier_train_transform(crop, mean, std, float(aug.get("crop_min_scale", 0.08))),
        eval_transform(crop, mean, std),
    )

    ckpt_path = resume_checkpoint(cfg, "linear")
    logger, callbacks = build_loggers(cfg, model)
    checkpointer = build_checkpointer(cfg, "linear", resume_from=ckpt_path)
    if checkpointer is not None:
        callbacks.append(checkpointer)
    callbacks.append(ProgressLines(("train_loss", "train_acc1", "val_")))
    trainer = build_trainer(cfg, callbacks, logger)
    trainer.fit(model, train_loader, val_loader, ckpt_path=ckpt_path)

    metrics = final_metrics(trainer)
    last = getattr(checkpointer, "last_ckpt", None)
    log.info("linear evaluation done: %s", format_metrics(metrics, ("val_",)))
    WATCH.raise_if_pending(f"the linear evaluation had finished; final checkpoint: {last}")
    return {"trainer": trainer, "model": model, "checkpoint": str(last) if last else None, "metrics": metrics}

"""Pretraining through solo-learn: config checks, a memory check, loaders, trainer, checkpoints.

:func:`run_pretrain` takes a solo-learn pretraining config (as :func:`.config.compose_config` or
hydra gives it) and trains ``METHODS[cfg.method]`` — SFRIK or any solo-learn method. Everything
that can be checked before training is checked first and fails with one line naming the key:
an unknown method, SFRIK's ``method_kwargs``, the data folders, and whether the model and its loss
can fit in memory at all (VICReg's q × q covariance at q = 131072 needs hundreds of GiB).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..console import InputError, get_logger
from ..interrupts import WATCH
from .loaders import check_data_paths, pretrain_train_loader, pretrain_val_loader
from .runtime import (
    ProgressLines,
    build_checkpointer,
    build_loggers,
    build_trainer,
    final_metrics,
    format_metrics,
    resume_checkpoint,
)

__all__ = ["run_pretrain", "check_memory", "check_knn_eval"]

log = get_logger(__name__)


def _as_input_error(key: str, error: ValueError) -> InputError:
    return error if isinstance(error, InputError) else InputError(f"{key}: {error}")


def check_memory(cfg: Any) -> None:
    """Refuses a configuration whose weights, optimiser state and loss alone exceed the memory
    this machine (CPU) or device (GPU) has available, saying how much it would need.

    A lower bound: activations are not counted, so what passes may still not fit; what fails
    cannot. Methods without a memory model in :mod:`sfrik_plugin.contenders` are not checked.
    """
    from omegaconf import OmegaConf

    from ..contenders import TRAIN_METHODS
    from ..contenders.memory import format_bytes, memory_available_bytes, predict_loss_peak_bytes
    from .backbones import build_backbone

    entry = next((m for m in TRAIN_METHODS.values() if m.solo_method == cfg.method), None)
    kwargs: Any = OmegaConf.to_container(cfg.method_kwargs, resolve=True) if cfg.get("method_kwargs") else {}
    q = kwargs.get("proj_output_dim")
    if entry is None or not isinstance(q, int) or "proj_hidden_dim" not in kwargs:
        return
    backbone = build_backbone(cfg, cfg.method)
    features = getattr(backbone, "num_features", None) or getattr(backbone, "inplanes", None)
    if not isinstance(features, int):
        return
    # the projector counted as the method builds it (widths, and a last-layer bias or not)
    parameters = sum(p.numel() for p in backbone.parameters()) + entry.projector(features, kwargs).parameters()
    del backbone
    batch = int(cfg.optimizer.batch_size)
    weights = 4 * 4 * parameters  # weights, gradients and two optimiser buffers, float32
    loss = predict_loss_peak_bytes(entry.loss, batch, q)
    accelerator = str(cfg.get("accelerator", "auto"))
    device = "cuda" if accelerator in ("gpu", "cuda") else "cpu"
    available = memory_available_bytes(device)
    processes = int(cfg.get("num_devices", 1)) if device == "cpu" else 1  # CPU processes share the RAM
    needed = (weights + loss) * processes
    if available is not None and needed > available:
        raise InputError(
            f"method_kwargs.proj_output_dim={q} cannot fit: {entry.label} with batch {batch} needs at least "
            f"{format_bytes(needed)} ({format_bytes(weights)} of weights and optimiser state, {format_bytes(loss)} "
            f"for the loss{f', x {processes} processes' if processes > 1 else ''}) but this {device} has "
            f"{format_bytes(available)} available; lower proj_output_dim or optimizer.batch_size"
            + ("" if cfg.method == "sfrik" else ", or use method=sfrik (memory O(N²) instead of O(q²))")
        )


def check_knn_eval(cfg: Any) -> None:
    """solo-learn's online kNN (``knn_eval.enabled``) counts the classes from the validation labels
    it has seen, so a partial validation set ends in an index error after the first epoch: refuse
    it before training.

    Example:
        >>> from omegaconf import OmegaConf
        >>> check_knn_eval(OmegaConf.create({"knn_eval": {"enabled": True}}))  # the whole set: fine
        >>> check_knn_eval(OmegaConf.create({"knn_eval": {"enabled": True}, "limit_val_batches": 2}))
        Traceback (most recent call last):
        ...
        sfrik_plugin.console.InputError: knn_eval.enabled=True needs the whole validation set ...
    """
    limit = cfg.get("limit_val_batches")
    whole = limit is None or (isinstance(limit, float) and limit == 1.0) or limit == 0  # (0: no validation)
    if whole or not cfg.get("knn_eval", {}).get("enabled", False):
        return
    raise InputError(
        f"knn_eval.enabled=True needs the whole validation set (solo-learn counts the classes from the "
        f"validation labels it sees) but limit_val_batches={limit}: drop limit_val_batches, or use "
        "knn_eval.enabled=False and `sfrik-knn` after training"
    )


def run_pretrain(cfg: Any) -> dict[str, Any]:
    """Pretrains ``METHODS[cfg.method]``; returns ``{"trainer", "model", "checkpoint", "metrics"}``
    (``checkpoint``: the last checkpoint written, or the one resumed when nothing was left to do)."""
    import torch
    from lightning.pytorch import seed_everything
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS
    from solo.utils.misc import make_contiguous

    from . import register
    from .backbones import fit_backbone_to_crops
    from .known_keys import check_config_keys
    from .launch import parse_with_devices
    from .method import check_sfrik_method_kwargs
    from .unlabelled import label_masked

    register()
    OmegaConf.set_struct(cfg, False)
    check_config_keys("pretrain", cfg)  # a typo is an error, not a default (known_keys.py)
    if cfg.get("method") not in METHODS:
        raise InputError(f"method={cfg.get('method')!r} is not a registered method; choose from {sorted(METHODS)}")
    if cfg.method == "sfrik":  # a bad config fails before any data or backbone is touched
        try:
            cfg.method_kwargs = check_sfrik_method_kwargs(cfg.get("method_kwargs", {}))  # complete: defaults filled
        except ValueError as error:
            raise _as_input_error("method_kwargs", error) from None
    check_data_paths(cfg.data, train_labelled=not cfg.data.get("no_labels", False))
    cfg = parse_with_devices(cfg, parse_cfg)
    if cfg.data.num_large_crops != 2 and cfg.method not in ("wmse", "mae", "sfrik"):
        raise InputError(
            f"{cfg.method} needs exactly 2 large crops, got data.num_large_crops={cfg.data.num_large_crops}"
        )
    if cfg.data.format == "dali":
        raise InputError("data.format=dali is not supported by sfrik-pretrain; use image_folder or h5")
    fit_backbone_to_crops(cfg)  # a ViT gets the crop size (and a patch size) unless they are set
    check_knn_eval(cfg)
    check_memory(cfg)

    seed_everything(cfg.seed)
    model = label_masked(METHODS[cfg.method])(cfg)  # unlabelled rows train no classifier (not METHODS)
    make_contiguous(model)
    if not cfg.performance.disable_channel_last:
        model = model.to(memory_format=torch.channels_last)

    ckpt_path = resume_checkpoint(cfg, cfg.method)
    logger, callbacks = build_loggers(cfg, model)
    checkpointer = build_checkpointer(cfg, cfg.method, resume_from=ckpt_path)
    if checkpointer is not None:
        callbacks.append(checkpointer)
    callbacks.append(ProgressLines(("train_sfrik", f"train_{cfg.method}", "train_acc1", "val_")))
    trainer = build_trainer(cfg, callbacks, logger)
    # the epoch about to start, as the fit loop counts it (restored before any iterator is made)
    progress: Any = trainer.fit_loop.epoch_progress
    train_loader = pretrain_train_loader(cfg, epoch_source=lambda: progress.current.processed)
    trainer.fit(model, train_loader, pretrain_val_loader(cfg), ckpt_path=ckpt_path)

    last = getattr(checkpointer, "last_ckpt", None)
    if last is None and ckpt_path is not None:
        log.info("the resumed run was already complete; nothing left to train")
        last = ckpt_path
    metrics = final_metrics(trainer)
    log.info("pretraining done: %s", format_metrics(metrics, ("train_", "val_")))
    if last is not None:
        log.info("checkpoint: %s", last)
    # a signal that came after the last safe point: the run is complete, but the caller asked to stop
    WATCH.raise_if_pending(f"the pretraining had finished; final checkpoint: {last}")
    return {"trainer": trainer, "model": model, "checkpoint": str(Path(last)) if last else None, "metrics": metrics}

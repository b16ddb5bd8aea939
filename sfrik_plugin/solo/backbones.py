"""Backbones the way solo-learn builds them, and their weights read with the project's trust policy.

:func:`build_backbone` makes the encoder a pretraining config names (solo-learn's registry, no
classification head, the CIFAR stem for cifar10/100). :func:`backbone_state_dict` reads the encoder
weights of a checkpoint through :func:`sfrik_plugin.files.checkpoints.load_checkpoint` — tensors
only, ``--trust-pickle`` for files you made yourself, never for downloads — from a solo-learn /
Lightning checkpoint (``backbone.*`` keys, the rule of solo-learn's linear evaluation) or a plain
backbone state dict (e.g. released torchvision-style ResNet weights).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..console import InputError, get_logger
from ..files.checkpoints import load_checkpoint

__all__ = ["vit_patch_size", "fit_backbone_to_crops", "build_backbone", "backbone_state_dict", "load_backbone"]

log = get_logger(__name__)

_BACKBONE_PREFIXES = ("backbone.", "encoder.")  # "encoder." = older solo-learn checkpoints
_METHOD_PREFIXES = ("classifier.", "projector.", "momentum_")


def vit_patch_size(crop: int) -> int:
    """A patch size for a ViT at ``crop`` pixels: 16 (the usual ViT/16) from 128 px up when it
    divides the crop, else the largest divisor of the crop that gives at least 8 x 8 patches.

    Example:
        >>> [vit_patch_size(c) for c in (224, 160, 96, 64, 32, 28)]
        [16, 16, 12, 8, 4, 2]
    """
    if crop >= 128 and crop % 16 == 0:
        return 16
    return max(p for p in range(1, max(1, crop // 8) + 1) if crop % p == 0)


def fit_backbone_to_crops(cfg: Any) -> None:
    """Gives a timm ViT backbone (``vit_*``) the crop size of the config: ``backbone.kwargs.img_size``
    = the large-crop size and a patch size from :func:`vit_patch_size`, unless set; with smaller
    multi-crop views too, ``dynamic_img_size`` (timm interpolates the position embedding). Swin
    backbones have fixed windows: a crop other than their ``img_size`` (224 unless set) is one
    :class:`~sfrik_plugin.console.InputError` naming the keys to set. Other backbones take any size.
    """
    name = str(cfg.backbone.name)
    if not name.startswith(("vit_", "swin_")) or not cfg.get("augmentations"):
        return
    sizes = [int(aug.crop_size) for aug in cfg.augmentations]
    crop = sizes[0]
    if cfg.backbone.get("kwargs") is None:
        cfg.backbone.kwargs = {}
    kwargs = cfg.backbone.kwargs
    if name.startswith("swin_"):
        size = int(kwargs.get("img_size", 224))
        if any(s != size for s in sizes):
            raise InputError(
                f"backbone.name={name} has fixed attention windows for {size}-px images but the crops are "
                f"{sorted(set(sizes))} px: set augmentations.*.crop_size={size}, or ++backbone.kwargs.img_size={crop} "
                "with a window size that divides its patch grid (++backbone.kwargs.window_size=...)"
            )
        return
    chosen = []
    if "img_size" not in kwargs:
        kwargs.img_size = crop
        chosen.append(f"img_size={crop}")
    if "patch_size" not in kwargs:
        kwargs.patch_size = vit_patch_size(int(kwargs.img_size))
        chosen.append(f"patch_size={kwargs.patch_size}")
    if int(kwargs.img_size) % int(kwargs.patch_size):
        raise InputError(
            f"backbone.kwargs.patch_size={kwargs.patch_size} does not divide backbone.kwargs.img_size={kwargs.img_size}"
        )
    if int(kwargs.img_size) != crop and "dynamic_img_size" not in kwargs:
        raise InputError(
            f"backbone.kwargs.img_size={kwargs.img_size} but the large crops are {crop} px: set "
            f"++backbone.kwargs.img_size={crop} ++backbone.kwargs.patch_size={vit_patch_size(crop)}"
        )
    if any(s != int(kwargs.img_size) for s in sizes) and "dynamic_img_size" not in kwargs:
        kwargs.dynamic_img_size = True  # the small multi-crop views
        chosen.append("dynamic_img_size=True")
    if chosen:
        log.info("backbone %s at %d-px crops: %s (set backbone.kwargs.* to choose)", name, crop, " ".join(chosen))


def build_backbone(cfg: Any, method: str | None = None) -> nn.Module:
    """A solo-learn backbone without its fc layer, with the CIFAR stem for cifar10/100."""
    from solo.methods.base import BaseMethod

    name = cfg.backbone.name
    if name not in BaseMethod._BACKBONES:
        raise InputError(
            f"backbone.name={name!r} is not a solo-learn backbone; choose from {sorted(BaseMethod._BACKBONES)}"
        )
    backbone = BaseMethod._BACKBONES[name](method, **cfg.backbone.get("kwargs", {}))
    if name.startswith("resnet"):
        backbone.fc = nn.Identity()
        if cfg.data.dataset in ("cifar10", "cifar100"):
            backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
            backbone.maxpool = nn.Identity()
    return backbone


def backbone_state_dict(path: str | os.PathLike, *, trust_pickle: bool = False) -> dict[str, torch.Tensor]:
    """The backbone weights in a checkpoint file, without the ``backbone.`` prefix.

    Raises :class:`~sfrik_plugin.console.InputError` (one line) when the file is not a readable
    checkpoint, needs full unpickling, or holds no backbone weights.
    """
    state = load_checkpoint(path, trust_pickle=trust_pickle)
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path} is a PyTorch file but not a state dict of tensors: not a checkpoint of weights")
    for prefix in _BACKBONE_PREFIXES:
        prefixed = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
        if prefixed:
            return prefixed
    if any(k.startswith(_METHOD_PREFIXES) for k in state):
        raise InputError(f"{path} is a method checkpoint without backbone.* weights")
    return dict(state)


def load_backbone(backbone: nn.Module, path: str | os.PathLike, *, trust_pickle: bool = False) -> None:
    """Loads :func:`backbone_state_dict` into ``backbone``; every backbone weight must be present."""
    state = backbone_state_dict(path, trust_pickle=trust_pickle)
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as error:  # shape mismatches: another architecture or stem
        first = str(error).strip().splitlines()[1:2] or [str(error)]
        raise InputError(f"{path} does not fit backbone {type(backbone).__name__}: {first[0].strip()}") from None
    if missing:
        raise InputError(
            f"{path}: the checkpoint lacks {len(missing)} backbone weight(s), e.g. {missing[:5]}; "
            "is it the same backbone (and the same cifar/imagenet stem)?"
        )
    unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if unexpected:
        log.warning("%s: ignoring %d unexpected weight(s), e.g. %s", path, len(unexpected), unexpected[:5])

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

__all__ = ["build_backbone", "backbone_state_dict", "load_backbone"]

log = get_logger(__name__)

_BACKBONE_PREFIXES = ("backbone.", "encoder.")  # "encoder." = older solo-learn checkpoints
_METHOD_PREFIXES = ("classifier.", "projector.", "momentum_")


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

"""Conversions between the official SFRIK backbone format and the tools people use.

Formats
-------
``official``
    What ``valeoai/sfrik`` publishes: ``torch.save`` of ``backbone.state_dict()``, torchvision's
    ResNet names, no ``fc`` (:mod:`sfrik_plugin.zoo.backbone`).
``torchvision`` / ``timm``
    ``state_dict`` for ``torchvision.models.resnet50()`` / ``timm.create_model("resnet50")``
    with everything but the classifier (``fc.weight``, ``fc.bias``).
``solo``
    A solo-learn checkpoint directory (:mod:`sfrik_plugin.zoo.solo_export`).

This module is the entry point, :func:`convert`, and gathers the public names of the pieces
(:mod:`~sfrik_plugin.zoo.models`, :mod:`~sfrik_plugin.zoo.backbone`,
:mod:`~sfrik_plugin.zoo.solo_export`) so that ``sfrik_plugin.zoo.convert`` offers them all.

Example::

    >>> convert("sfrik_32k_in1000_200ep_r50_backbone.pth", "timm", "r50_timm.pth")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..files.checkpoints import save_checkpoint
from .backbone import (
    check_backbone,
    extract_backbone,
    infer_arch,
    infer_stem,
    load_model,
    to_official,
    to_timm,
    to_torchvision,
)
from .models import ARCHS, STEMS, ConversionError, build_model, check_choice
from .reading import read_weights
from .solo_export import solo_args, to_solo

__all__ = [
    "ARCHS",
    "STEMS",
    "CONVERT_TARGETS",
    "ConversionError",
    "build_model",
    "check_backbone",
    "convert",
    "extract_backbone",
    "infer_arch",
    "infer_stem",
    "load_model",
    "read_weights",
    "solo_args",
    "to_official",
    "to_solo",
    "to_timm",
    "to_torchvision",
]

#: Targets of ``convert`` (files on disk).
CONVERT_TARGETS = ("solo", "torchvision", "timm", "official")


def convert(
    src: str | os.PathLike | Mapping,
    target: str,
    out: str | os.PathLike,
    *,
    arch: str | None = None,
    trust_pickle: bool = False,
    **solo_kwargs: Any,
) -> Path:
    """Convert a checkpoint file (or loaded dict) to ``target`` and write it to ``out``.

    ``target`` is one of ``solo`` (``out`` is a directory), ``torchvision``, ``timm``,
    ``official`` (``out`` is a ``.pth`` file). A file is read weights-only; ``trust_pickle``
    allows full unpickling for a checkpoint you made yourself (never for a download).

    Example::

        >>> convert("sfrik_32k_in1000_200ep_r50_backbone.pth", "timm", "r50_timm.pth")  # doctest: +SKIP
    """
    check_choice(target, CONVERT_TARGETS, "conversion target")
    obj = src if isinstance(src, Mapping) else read_weights(src, trust_pickle=trust_pickle)
    if target == "solo":
        sd = to_official(obj, arch)
        return to_solo(sd, out, **solo_kwargs)
    fn = {"official": to_official, "torchvision": to_torchvision, "timm": to_timm}[target]
    return save_checkpoint(fn(obj, arch), out)

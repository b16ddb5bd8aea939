"""Randomly initialised ResNet feature extractors of torchvision and timm (classifier removed).

The architectures and stems the zoo converts between, and the models it hands weights to.
torchvision and timm are imported only when a model is built.

Example::

    >>> from sfrik_plugin.zoo.models import build_model
    >>> m = build_model("torchvision", "resnet18", "cifar")   # doctest: +SKIP
    >>> m(torch.randn(1, 3, 32, 32)).shape                    # doctest: +SKIP
    torch.Size([1, 512])
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from ..console import InputError

__all__ = ["ARCHS", "STEMS", "ConversionError", "check_choice", "torchvision_model", "build_model"]

#: ResNet depths the converters understand: block type and blocks per stage.
ARCHS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}
#: ``imagenet``: 7x7/2 conv + max-pool; ``cifar``: solo-learn's 3x3/1 conv (padding 2), no max-pool.
STEMS = ("imagenet", "cifar")


class ConversionError(InputError):
    """The input is not a backbone these converters understand (the message says why)."""


def check_choice(value: str, allowed: Iterable[str], what: str) -> str:
    """``value`` if it is one of ``allowed``, else a :class:`ConversionError` listing them."""
    allowed = tuple(allowed)
    if value not in allowed:
        raise ConversionError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


def torchvision_model(arch: str, device: Any = None) -> nn.Module:
    """``torchvision.models.<arch>(weights=None)``, built on ``device`` (``"meta"``: no memory)."""
    import torchvision

    fn = getattr(torchvision.models, arch)
    if device is None:
        return fn(weights=None)
    with torch.device(device):
        return fn(weights=None)


def _cifar_stem(model: nn.Module) -> None:
    # solo-learn's small-image stem: 3x3 stride-1 convolution (padding 2), no max-pool.
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    model.maxpool = nn.Identity()


def build_model(target: str, arch: str = "resnet50", stem: str = "imagenet", device: Any = None) -> nn.Module:
    """A randomly initialised feature extractor (``fc`` removed) of the given library.

    Example::

        >>> build_model("timm", "resnet50", device="meta").num_features   # doctest: +SKIP
        2048
    """
    check_choice(target, ("timm", "torchvision"), "model target")
    check_choice(arch, tuple(ARCHS), "architecture")
    check_choice(stem, STEMS, "stem")
    if target == "torchvision":
        model = torchvision_model(arch, device)
        model.fc = nn.Identity()
    else:
        import timm

        if device is None:
            model = timm.create_model(arch, pretrained=False, num_classes=0)
        else:
            with torch.device(device):
                model = timm.create_model(arch, pretrained=False, num_classes=0)
    if stem == "cifar":
        if device is None:
            _cifar_stem(model)
        else:
            with torch.device(device):
                _cifar_stem(model)
    return model

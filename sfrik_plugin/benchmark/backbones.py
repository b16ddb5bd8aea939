"""A small convolutional backbone for CPU benchmarks, and backbone construction for evaluation.

solo-learn's smallest backbone (ResNet-18) trains at roughly 100 images per second on a 2-core CPU
at 32 px, far too slow for a benchmark of a dozen pretraining runs in about an hour. ``small_cnn`` is
four 3x3 conv-BN-ReLU layers (widths w, 2w, 4w, 8w; strides 1, 2, 2, 2) and global average pooling,
``num_features = 8w`` (256 for w = 32). :func:`register_backbones` adds it to solo-learn's backbone
registry, so a pretraining config selects it with ``backbone.name=small_cnn`` like any solo-learn
backbone, for every method alike.

Example:
    >>> import torch
    >>> make_backbone("small_cnn", {"width": 16})(torch.zeros(2, 3, 28, 28)).shape
    torch.Size([2, 128])
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

__all__ = ["SmallCNN", "small_cnn", "LOCAL_BACKBONES", "register_backbones", "make_backbone"]


class SmallCNN(nn.Module):
    def __init__(self, width: int = 32, in_channels: int = 3):
        super().__init__()
        layers, c_in = [], in_channels
        for i, stride in enumerate((1, 2, 2, 2)):
            c_out = width * 2**i
            layers += [nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = c_in

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.features(x)), 1)


def small_cnn(method: str | None = None, width: int = 32, **kwargs: Any) -> SmallCNN:
    """solo-learn backbone signature: ``fn(method, **backbone.kwargs)``."""
    return SmallCNN(width=width, **kwargs)


def resnet18_cifar(method: str | None = None, **kwargs: Any) -> nn.Module:
    """torchvision's ResNet-18 with the CIFAR stem (3x3 stride-1 first convolution, no max-pool),
    the backbone solo-learn trains on cifar10/100, for CIFAR images stored as an ImageFolder
    (solo-learn only swaps the stem for its own cifar datasets). ``fc`` is left for solo-learn to drop."""
    from torchvision.models import resnet18

    net = resnet18(**kwargs)
    net.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    net.maxpool = nn.Identity()
    return net


def _headless(fn):
    def build(method: str | None = None, **kwargs: Any) -> nn.Module:
        net = fn(method, **kwargs)
        if hasattr(net, "fc"):
            net.fc = nn.Identity()
        return net

    return build


LOCAL_BACKBONES = {"small_cnn": small_cnn, "resnet18_cifar": resnet18_cifar}


def register_backbones() -> None:
    """Adds :data:`LOCAL_BACKBONES` to ``solo.methods.base.BaseMethod._BACKBONES`` (idempotent)."""
    from solo.methods.base import BaseMethod

    for name, fn in LOCAL_BACKBONES.items():
        current = BaseMethod._BACKBONES.get(name)
        if current is not None and current is not fn:
            raise RuntimeError(f"solo-learn already has a backbone named {name!r}")
        BaseMethod._BACKBONES[name] = fn


def make_backbone(name: str, kwargs: dict[str, Any] | None = None, dataset: str = "custom") -> nn.Module:
    """The backbone a pretraining with ``backbone.name=name`` trains, without its classification head.

    Local backbones need only torch; solo-learn backbones are built through the adapter
    (``sfrik_plugin.solo.backbones.build_backbone``: no fc, CIFAR stem for cifar10/100).
    """
    kwargs = dict(kwargs or {})
    if name in LOCAL_BACKBONES:
        return _headless(LOCAL_BACKBONES[name])(None, **kwargs)
    from omegaconf import OmegaConf

    from sfrik_plugin.solo.backbones import build_backbone

    cfg = OmegaConf.create({"backbone": {"name": name, "kwargs": kwargs}, "data": {"dataset": dataset}})
    return build_backbone(cfg)

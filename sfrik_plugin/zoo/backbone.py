"""Find, check and rename the backbone weights in a checkpoint.

``official`` is what ``valeoai/sfrik`` publishes and its ``evaluate.py`` loads: ``torch.save`` of
``backbone.state_dict()``, a flat dict of tensors with torchvision's ResNet names and no ``fc``.
(The official ResNet pads the input by one pixel and uses ``padding=2`` in ``conv1``; that is the
same computation as torchvision's ``padding=3``, so the weights are interchangeable.)
:func:`to_official` also accepts a solo-learn / Lightning checkpoint (``state_dict`` with
``backbone.*``; ``projector.*``, ``classifier.*``, momentum copies... are dropped), an official
full training checkpoint (``model`` with ``module.backbone.*``), or an already-flat state_dict.
:func:`to_torchvision` / :func:`to_timm` give the ``state_dict`` of those libraries' ResNets
without the classifier, checked against the libraries' own names.

Example::

    >>> from sfrik_plugin.files.checkpoints import load_checkpoint
    >>> sd = to_timm(load_checkpoint("sfrik_32k_in1000_200ep_r50_backbone.pth"))  # doctest: +SKIP
    >>> import timm
    >>> m = timm.create_model("resnet50", pretrained=False, num_classes=0)        # doctest: +SKIP
    >>> m.load_state_dict(sd)                                                      # doctest: +SKIP
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from .models import ARCHS, ConversionError, build_model, check_choice, torchvision_model

__all__ = [
    "extract_backbone",
    "infer_arch",
    "infer_stem",
    "check_backbone",
    "to_official",
    "to_torchvision",
    "to_timm",
    "load_model",
]

_PREFIXES_TO_STRIP = ("module.", "_orig_mod.")
_BACKBONE_PREFIXES = ("backbone.", "encoder.")  # "encoder." = old solo-learn checkpoints


def extract_backbone(obj: Any) -> tuple[OrderedDict[str, torch.Tensor], list[str]]:
    """Find the backbone weights in a checkpoint-like object.

    Returns ``(state_dict, dropped_keys)`` where ``state_dict`` has bare ResNet names.
    Understands flat backbone dicts, Lightning/solo-learn checkpoints (``state_dict`` with
    ``backbone.*``), official full checkpoints (``model`` with ``module.backbone.*``).
    """
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, Mapping):
        raise ConversionError(f"expected a dict of tensors or a checkpoint dict, got {type(obj).__name__}")
    sd: Mapping = obj
    for container in ("state_dict", "model", "backbone"):
        inner = sd.get(container) if isinstance(sd, Mapping) else None
        if isinstance(inner, Mapping) and inner and not isinstance(inner, torch.Tensor):
            sd = inner
            break
    tensors: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in sd.items():
        if not isinstance(v, torch.Tensor):
            continue
        for p in _PREFIXES_TO_STRIP:
            while k.startswith(p):
                k = k[len(p) :]
        tensors[k] = v
    if not tensors:
        raise ConversionError("no tensors found in the checkpoint")

    dropped: list[str] = []
    prefix = next((p for p in _BACKBONE_PREFIXES if any(k.startswith(p) for k in tensors)), None)
    out: OrderedDict[str, torch.Tensor] = OrderedDict()
    for k, v in tensors.items():
        if prefix is not None:
            if not k.startswith(prefix):
                dropped.append(k)  # projector.*, classifier.*, momentum_backbone.*, ...
                continue
            k = k[len(prefix) :]
        if k.startswith("fc."):
            dropped.append(k)  # a classifier is not part of the backbone
            continue
        out[k] = v
    return out, dropped


def _stage_blocks(sd: Mapping[str, torch.Tensor], stage: int) -> int:
    idx = {int(k.split(".")[1]) for k in sd if k.startswith(f"layer{stage}.") and k.split(".")[1].isdigit()}
    return max(idx) + 1 if idx else 0


def infer_arch(sd: Mapping[str, torch.Tensor]) -> str:
    """Name of the ResNet whose structure ``sd`` has (resnet18/34/50/101)."""
    block = "bottleneck" if "layer1.0.conv3.weight" in sd else "basic"
    blocks = tuple(_stage_blocks(sd, s) for s in (1, 2, 3, 4))
    for name, spec in ARCHS.items():
        if spec == (block, blocks):
            if block == "bottleneck" and tuple(sd["layer1.0.conv1.weight"].shape[:1]) != (64,):
                break  # wide / widened variants: same depth, different widths
            return name
    raise ConversionError(
        f"not a supported ResNet backbone ({block} blocks per stage {blocks}); supported: "
        f"{', '.join(ARCHS)} with standard widths"
    )


def infer_stem(sd: Mapping[str, torch.Tensor]) -> str:
    """``imagenet`` (7x7 first convolution) or ``cifar`` (3x3)."""
    w = sd.get("conv1.weight")
    if w is None:
        raise ConversionError("no 'conv1.weight' in the state_dict: is this a ResNet backbone?")
    k = tuple(w.shape[-2:])
    if k == (7, 7):
        return "imagenet"
    if k == (3, 3):
        return "cifar"
    raise ConversionError(f"first convolution has an unexpected kernel size {k}")


def _reference_shapes(arch: str, stem: str) -> OrderedDict[str, torch.Size]:
    model = torchvision_model(arch, device="meta")  # no memory, no init cost
    shapes = OrderedDict((k, v.shape) for k, v in model.state_dict().items() if not k.startswith("fc."))
    if stem == "cifar":
        shapes["conv1.weight"] = torch.Size((64, 3, 3, 3))
    return shapes


def check_backbone(sd: Mapping[str, torch.Tensor], arch: str | None = None) -> tuple[str, str]:
    """Check that ``sd`` is exactly a ResNet backbone (no more, no less); return (arch, stem)."""
    found = infer_arch(sd)
    if arch is not None and arch != "auto":
        check_choice(arch, tuple(ARCHS), "architecture")
        if found != arch:
            raise ConversionError(f"the weights are a {found}, not a {arch}")
    stem = infer_stem(sd)
    ref = _reference_shapes(found, stem)
    missing = [k for k in ref if k not in sd]
    unexpected = [k for k in sd if k not in ref]
    wrong = [f"{k}: {tuple(sd[k].shape)} != {tuple(ref[k])}" for k in ref if k in sd and sd[k].shape != ref[k]]
    if missing or unexpected or wrong:
        parts = []
        for label, items in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{label}: {', '.join(items[:5])}{more}")
        raise ConversionError(f"not a standard {found} backbone; " + "; ".join(parts))
    return found, stem


def _ordered_copy(sd: Mapping[str, torch.Tensor], order: Iterable[str]) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, sd[k].detach().clone().contiguous()) for k in order)


def to_official(obj: Any, arch: str | None = None) -> OrderedDict[str, torch.Tensor]:
    """Backbone state_dict in the official SFRIK format (what ``evaluate.py`` loads).

    Example::

        >>> sd = to_official(load_checkpoint("sfrik-xyz-ep=99.ckpt"))   # doctest: +SKIP
        >>> torch.save(sd, "my_backbone.pth")                           # doctest: +SKIP
    """
    sd, _ = extract_backbone(obj)
    found, stem = check_backbone(sd, arch)
    return _ordered_copy(sd, _reference_shapes(found, stem))


def to_torchvision(obj: Any, arch: str | None = None) -> OrderedDict[str, torch.Tensor]:
    """state_dict for ``torchvision.models.<arch>()``: loads with only ``fc.*`` missing."""
    return to_official(obj, arch)


def to_timm(obj: Any, arch: str | None = None) -> OrderedDict[str, torch.Tensor]:
    """state_dict for ``timm.create_model(arch)``: loads with only ``fc.*`` missing.

    The names are checked against a real timm model (built on the meta device, nothing is
    downloaded) so a timm renaming would fail loudly here rather than load silently wrong.
    """
    sd = to_official(obj, arch)
    found, stem = infer_arch(sd), infer_stem(sd)
    model = build_model("timm", found, stem, device="meta")
    ref = model.state_dict()
    if set(ref) != set(sd):
        diff = sorted(set(ref) ^ set(sd))
        raise ConversionError(f"timm's {found} names differ from torchvision's: {diff[:8]}")
    return _ordered_copy(sd, ref)


def load_model(obj: Any, target: str = "timm") -> nn.Module:
    """Feature extractor of ``target`` (timm / torchvision) holding the backbone of ``obj``."""
    sd = to_official(obj)
    arch, stem = infer_arch(sd), infer_stem(sd)
    model = build_model(target, arch, stem)
    model.load_state_dict(to_timm(sd) if target == "timm" else sd, strict=True)
    return model.eval()

"""Conversions between the official SFRIK backbone format and the tools people use.

Formats
-------
``official``
    What ``valeoai/sfrik`` publishes and its ``evaluate.py`` loads: ``torch.save`` of
    ``backbone.state_dict()``, a flat dict of tensors with torchvision's ResNet names
    (``conv1.weight``, ``layer1.0.bn1.running_mean``, ``layer4.2.downsample...``) and no
    ``fc``.  (The official ResNet pads the input by one pixel and uses ``padding=2`` in
    ``conv1``; that is the same computation as torchvision's ``padding=3``, so the weights
    are interchangeable.)
``torchvision`` / ``timm``
    ``state_dict`` for ``torchvision.models.resnet50()`` / ``timm.create_model("resnet50")``
    with everything but the classifier (``fc.weight``, ``fc.bias``).
``solo``
    A solo-learn checkpoint directory: ``<name>.ckpt`` (a Lightning-style dict whose
    ``state_dict`` holds ``backbone.*`` keys) and ``args.json`` next to it, which is what
    solo-learn's ``main_linear.py`` (``pretrained_feature_extractor``) and ``main_knn.py``
    (``pretrained_checkpoint_dir``) read.

The reverse direction (``to_official``) accepts a solo-learn / Lightning checkpoint
(``state_dict`` with ``backbone.*``; ``projector.*``, ``classifier.*``, momentum copies...
are dropped), an official full training checkpoint (``model`` with ``module.backbone.*``), or
an already-flat backbone state_dict.

Example::

    >>> from sfrik_plugin.zoo.convert import load_checkpoint, to_timm
    >>> sd = to_timm(load_checkpoint("sfrik_32k_in1000_200ep_r50_backbone.pth"))  # doctest: +SKIP
    >>> import timm
    >>> m = timm.create_model("resnet50", pretrained=False, num_classes=0)        # doctest: +SKIP
    >>> m.load_state_dict(sd)                                                      # doctest: +SKIP
"""

from __future__ import annotations

import copy
import json
import os
import pickle
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

#: ResNet depths the converters understand: block type and blocks per stage.
ARCHS: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
}
#: Targets of ``convert`` (files on disk).
CONVERT_TARGETS = ("solo", "torchvision", "timm", "official")
#: Targets of ``load_pretrained`` (objects in memory).
LOAD_TARGETS = ("timm", "torchvision", "state_dict")
#: ``imagenet``: 7x7/2 conv + max-pool; ``cifar``: solo-learn's 3x3/1 conv (padding 2), no max-pool.
STEMS = ("imagenet", "cifar")

_PREFIXES_TO_STRIP = ("module.", "_orig_mod.")
_BACKBONE_PREFIXES = ("backbone.", "encoder.")  # "encoder." = old solo-learn checkpoints


class ConversionError(ValueError):
    """The input is not a backbone these converters understand (the message says why)."""


def _check_choice(value: str, allowed, what: str) -> str:
    if value not in allowed:
        raise ConversionError(f"unknown {what} {value!r}; allowed: {', '.join(allowed)}")
    return value


# --------------------------------------------------------------------------- loading


def load_checkpoint(path: str | os.PathLike, trust_pickle: bool = False) -> Any:
    """``torch.load`` on CPU, refusing arbitrary pickled objects unless ``trust_pickle``.

    Weight files only need tensors and plain containers, which ``weights_only=True`` loads
    without executing code from the file.  A Lightning checkpoint that stores other objects
    needs ``trust_pickle=True`` (CLI: ``--trust-pickle``): only do that for files you made.
    """
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"no such file: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        if not trust_pickle:
            raise ConversionError(
                f"{path} holds Python objects besides tensors, so it was not loaded (loading it "
                f"could run code from the file). If you made this file yourself, pass "
                f"trust_pickle=True (CLI: --trust-pickle). Detail: {str(e).splitlines()[0]}"
            ) from None
    return torch.load(path, map_location="cpu", weights_only=False)


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


# --------------------------------------------------------------------------- checking


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


def _torchvision_model(arch: str, device=None) -> nn.Module:
    import torchvision

    fn = getattr(torchvision.models, arch)
    if device is None:
        return fn(weights=None)
    with torch.device(device):
        return fn(weights=None)


def _reference_shapes(arch: str, stem: str) -> OrderedDict[str, torch.Size]:
    model = _torchvision_model(arch, device="meta")  # no memory, no init cost
    shapes = OrderedDict((k, v.shape) for k, v in model.state_dict().items() if not k.startswith("fc."))
    if stem == "cifar":
        shapes["conv1.weight"] = torch.Size((64, 3, 3, 3))
    return shapes


def check_backbone(sd: Mapping[str, torch.Tensor], arch: str | None = None) -> tuple[str, str]:
    """Check that ``sd`` is exactly a ResNet backbone (no more, no less); return (arch, stem)."""
    found = infer_arch(sd)
    if arch is not None and arch != "auto":
        _check_choice(arch, tuple(ARCHS), "architecture")
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


def _ordered_copy(sd: Mapping[str, torch.Tensor], order) -> OrderedDict[str, torch.Tensor]:
    return OrderedDict((k, sd[k].detach().clone().contiguous()) for k in order)


# --------------------------------------------------------------------------- targets


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


def _deep_merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    for k, v in extra.items():
        if isinstance(v, Mapping) and isinstance(base.get(k), dict):
            _deep_merge(base[k], v)
        else:
            base[k] = copy.deepcopy(v)
    return base


_SOLO_DATASETS = {
    "imagenet-1k": ("imagenet", 1000),
    "imagenet": ("imagenet", 1000),
    "imagenet100": ("imagenet100", 100),
    "imagenet-100": ("imagenet100", 100),
    "cifar10": ("cifar10", 10),
    "cifar100": ("cifar100", 100),
    "stl10": ("stl10", 10),
}


def solo_args(
    arch: str,
    stem: str,
    *,
    name: str,
    method: str = "sfrik",
    dataset: str | None = None,
    epochs: int = 0,
    entry: Any = None,
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The ``args.json`` content written next to a converted solo-learn checkpoint.

    It is a complete solo-learn config (the keys ``BaseMethod`` reads) so that
    ``METHODS[cfg["method"]].load_from_checkpoint(ckpt, strict=False, cfg=cfg)`` (what
    solo-learn's ``main_knn.py`` does) can rebuild the model.  ``dataset`` decides the stem
    in solo-learn (cifar10/cifar100 → 3x3 stem), so it must agree with the weights.
    ``extra`` is deep-merged last (e.g. the adapter's exact ``method_kwargs``).
    """
    if dataset is None:
        dataset = getattr(entry, "dataset", None) or ("imagenet" if stem == "imagenet" else "cifar10")
    solo_ds, num_classes = _SOLO_DATASETS.get(dataset.lower(), (dataset, 1000))
    if (solo_ds in ("cifar10", "cifar100")) != (stem == "cifar"):
        raise ConversionError(
            f"dataset {dataset!r} makes solo-learn build a {'cifar' if stem != 'cifar' else 'imagenet'} "
            f"stem but the weights have a {stem} stem; pass a matching dataset"
        )
    dims: list[int] = []
    if entry is not None and getattr(entry, "projector", None):
        dims = [int(x) for x in entry.projector.split("-")]
    kernel = getattr(entry, "kernel", None) or {}
    method_kwargs: dict[str, Any] = {}
    if method == "sfrik":
        # the keys of our solo-learn adapter (sfrik_plugin.solo.method), which rejects unknown ones
        if dims:
            method_kwargs["proj_hidden_dim"] = dims[:-1]
            method_kwargs["proj_hidden_layers"] = len(dims) - 1
            method_kwargs["proj_output_dim"] = dims[-1]
        for key in ("weights", "sim_coeff", "mmd_coeff"):
            if key in kernel:
                method_kwargs[key] = kernel[key]
    else:
        # other solo-learn methods (vicreg, barlow, ...) take one int hidden width
        method_kwargs = {
            "proj_hidden_dim": dims[0] if len(dims) > 1 else 2048,
            "proj_output_dim": dims[-1] if dims else 2048,
        }
    cfg: dict[str, Any] = {
        "name": name,
        "method": method,
        "backbone": {"name": arch, "kwargs": {}},
        "method_kwargs": method_kwargs,
        "data": {
            "dataset": solo_ds,
            "num_classes": num_classes,
            "num_large_crops": 2,
            "num_small_crops": 0,
            "format": "image_folder",
        },
        "optimizer": {
            "name": "lars",
            "batch_size": 256,
            "lr": 0.4,
            "classifier_lr": 0.1,
            "weight_decay": 1e-6,
            "exclude_bias_n_norm_wd": True,
            "kwargs": {"eta": 0.001, "clip_lr": True, "exclude_bias_n_norm": True},
        },
        "scheduler": {
            "name": "warmup_cosine",
            "warmup_epochs": 10,
            "min_lr": 0.0,
            "warmup_start_lr": 3e-5,
            "interval": "step",
            "lr_decay_steps": None,
        },
        "max_epochs": int(epochs),
        "accumulate_grad_batches": 1,
        "knn_eval": {"enabled": False, "k": 20, "distance_func": "euclidean"},
        "performance": {"disable_channel_last": False},
        "checkpoint": {"enabled": False},
        "auto_resume": {"enabled": False},
        "wandb": {"enabled": False},
        "sfrik_zoo": {
            "converted_from": getattr(entry, "name", None),
            "source": getattr(entry, "source", None),
            "note": "backbone only: projector and online classifier were not in the source weights",
        },
    }
    return _deep_merge(cfg, extra or {})


def to_solo(
    obj: Any,
    out_dir: str | os.PathLike,
    *,
    name: str = "sfrik-zoo",
    method: str = "sfrik",
    dataset: str | None = None,
    epochs: int | None = None,
    entry: Any = None,
    extra_args: Mapping[str, Any] | None = None,
) -> Path:
    """Write a solo-learn checkpoint directory (``<name>-ep=<epochs>.ckpt`` + ``args.json``).

    Returns the path of the ``.ckpt``.  Point solo-learn's ``main_linear.py`` at it
    (``pretrained_feature_extractor=<ckpt>``) or ``main_knn.py`` at its directory.

    Example::

        >>> ckpt = to_solo(load_checkpoint("backbone.pth"), "solo_ckpt/")   # doctest: +SKIP
    """
    sd = to_official(obj)
    arch, stem = infer_arch(sd), infer_stem(sd)
    if epochs is None:
        epochs = getattr(entry, "epochs", 0) or 0
    args = solo_args(
        arch, stem, name=name, method=method, dataset=dataset, epochs=epochs, entry=entry, extra=extra_args
    )
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stale = [p.name for p in out.glob("*.ckpt")]
    if stale:
        # main_knn.py takes the first *.ckpt of the directory: two would be ambiguous.
        raise ConversionError(f"{out} already holds {', '.join(stale)}; use an empty directory")
    ckpt = {
        "state_dict": OrderedDict(("backbone." + k, v) for k, v in sd.items()),
        "epoch": int(epochs),
        "global_step": 0,
        "pytorch-lightning_version": _lightning_version(),
    }
    path = out / f"{name}-ep={int(epochs)}.ckpt"
    _atomic_save(ckpt, path)
    tmp = out / "args.json.tmp"
    tmp.write_text(json.dumps(args, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "args.json")
    return path


def _lightning_version() -> str:
    try:
        from importlib.metadata import version

        return version("lightning")
    except Exception:  # not installed: the version solo-learn pins
        return "2.1.2"


def _atomic_save(obj: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


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
    ``official`` (``out`` is a ``.pth`` file).

    Example::

        >>> convert("sfrik_32k_in1000_200ep_r50_backbone.pth", "timm", "r50_timm.pth")  # doctest: +SKIP
    """
    _check_choice(target, CONVERT_TARGETS, "conversion target")
    obj = src if isinstance(src, Mapping) else load_checkpoint(src, trust_pickle=trust_pickle)
    if target == "solo":
        sd = to_official(obj, arch)
        return to_solo(sd, out, **solo_kwargs)
    fn = {"official": to_official, "torchvision": to_torchvision, "timm": to_timm}[target]
    return _atomic_save(fn(obj, arch), out)


# --------------------------------------------------------------------------- models


def _cifar_stem(model: nn.Module) -> None:
    # solo-learn's small-image stem: 3x3 stride-1 convolution (padding 2), no max-pool.
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    model.maxpool = nn.Identity()


def build_model(target: str, arch: str = "resnet50", stem: str = "imagenet", device=None) -> nn.Module:
    """A randomly initialised feature extractor (``fc`` removed) of the given library."""
    _check_choice(target, ("timm", "torchvision"), "model target")
    _check_choice(arch, tuple(ARCHS), "architecture")
    _check_choice(stem, STEMS, "stem")
    if target == "torchvision":
        model = _torchvision_model(arch, device)
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


def load_model(obj: Any, target: str = "timm") -> nn.Module:
    """Feature extractor of ``target`` (timm / torchvision) holding the backbone of ``obj``."""
    sd = to_official(obj)
    arch, stem = infer_arch(sd), infer_stem(sd)
    model = build_model(target, arch, stem)
    model.load_state_dict(to_timm(sd) if target == "timm" else sd, strict=True)
    return model.eval()

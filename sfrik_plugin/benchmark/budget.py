"""The budget rule: does a run fit in memory on this machine, before anything is started?

A run is checked with the contenders' prediction of one training step
(:func:`sfrik_plugin.contenders.memory.predict_train_bytes`: weights, gradients and optimiser state,
the loss of the method's contender, activations) against the budget of
:func:`~sfrik_plugin.contenders.memory.memory_budget` (``--memory-budget`` / ``memory_budget:``
wins; else on CPU ``min(0.5 x available, 8 GiB)``), with the contenders' safety factor. A run that
does not fit is never started: the sweep table gets a row with status ``does not fit``, the
predicted bytes and the reason. Methods without a memory model in the registry (a method you
added to the config) are run unchecked, and their row says so.

The backbone's size comes from the registry's table for solo-learn's ResNets; any other backbone
(``small_cnn``, ``resnet18_cifar``) is built once on the CPU and measured: its parameters, its
output width and the bytes of every module output for one image (a rough activation count).

Example:
    >>> cfg = {"backbone": {"name": "small_cnn", "kwargs": {"width": 16}}, "crop_size": 28, "batch_size": 64,
    ...        "projector": {"hidden": 1024, "q": 1024}, "methods": {"vicreg": {"config": "custom/vicreg"}}}
    >>> verdict = fit_check(cfg, "vicreg", q=32768, budget=(8 * 2**30, "8 GiB"))
    >>> verdict["fits"], verdict["reason"].startswith("does not fit")
    (False, True)
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from ..console import InputError
from ..contenders import TRAIN_METHODS
from ..contenders.memory import (
    BACKBONES,
    SAFETY_FACTOR,
    BackboneSize,
    fit_verdict,
    format_bytes,
    memory_budget,
    predict_train_bytes,
)

__all__ = ["train_method_of", "backbone_size", "predicted_bytes", "benchmark_budget", "fit_check"]


def train_method_of(cfg: Mapping[str, Any], method: str) -> str | None:
    """The registry's training method for a benchmark method: the entry named like the method, or
    whose solo-learn name or packaged config leaf matches (``custom/barlow`` -> ``barlow``)."""
    leaf = str(cfg["methods"][method].get("config", "")).rsplit("/", 1)[-1].removesuffix(".yaml")
    for entry in TRAIN_METHODS.values():
        if method in (entry.name, entry.solo_method) or leaf == entry.config:
            return entry.name
    return None


@functools.lru_cache(maxsize=16)
def _measured_backbone(name: str, kwargs_items: tuple[tuple[str, Any], ...], crop: int) -> BackboneSize:
    import torch

    from .backbones import make_backbone

    net = make_backbone(name, dict(kwargs_items)).eval()
    outputs: list[int] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out.numel() if torch.is_tensor(out) else 0))
        for m in net.modules()
        if not list(m.children())
    ]
    with torch.no_grad():
        features = net(torch.zeros(1, 3, crop, crop)).flatten(1).shape[1]
    for hook in hooks:
        hook.remove()
    per_image = 4 * sum(outputs)  # float32 outputs of every leaf module, one image at `crop` px
    per_32px = max(1, int(per_image * (32 / crop) ** 2))  # the registry's unit: bytes per (32 px)^2
    parameters = sum(p.numel() for p in net.parameters())
    return BackboneSize(parameters=parameters, features=int(features), activation_bytes=per_32px)


def backbone_size(cfg: Mapping[str, Any]) -> BackboneSize:
    """Size of the config's backbone: the registry's table for its ResNets, else measured."""
    name = cfg["backbone"]["name"]
    kwargs = cfg["backbone"].get("kwargs") or {}
    if name in BACKBONES and not kwargs:
        return BACKBONES[name]
    return _measured_backbone(name, tuple(sorted(kwargs.items())), int(cfg["crop_size"]))


def predicted_bytes(cfg: Mapping[str, Any], method: str, q: int) -> int | None:
    """Predicted memory of one training step of ``method`` at embedding dimension ``q`` (None: no model)."""
    entry = train_method_of(cfg, method)
    if entry is None:
        return None
    return predict_train_bytes(
        entry,
        int(cfg["batch_size"]),
        int(q),
        int(cfg["projector"]["hidden"]),
        backbone=backbone_size(cfg),
        image_size=int(cfg["crop_size"]),
        projector_layers=int(cfg["projector"].get("layers", 2)),
    )


def benchmark_budget(cfg: Mapping[str, Any], override: str | int | None = None) -> tuple[int, str]:
    """``(bytes, rule)`` of the memory budget: ``override``, else the config's ``memory_budget``,
    else the contenders' default rule for the config's device."""
    value = override if override is not None else cfg.get("memory_budget")
    device = cfg.get("device", "cpu")
    try:
        return memory_budget(device, override=value)
    except ValueError as error:
        raise InputError(f"memory budget {value!r}: {error}; use e.g. 16GiB") from None
    except RuntimeError as error:  # e.g. device cuda on a machine without a GPU driver
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise InputError(
            f"device={device}: cannot read its free memory ({first}); run on a machine with that device, "
            "or --set device=cpu, or give --memory-budget"
        ) from None


def fit_check(cfg: Mapping[str, Any], method: str, q: int, budget: tuple[int, str]) -> dict[str, Any]:
    """The verdict of one run: ``{fits, predicted_bytes, budget_bytes, budget_rule, safety, reason}``;
    ``fits`` is True when the method has no memory model (nothing to check against)."""
    predicted = predicted_bytes(cfg, method, q)
    budget_bytes, rule = budget
    if predicted is None:
        fits, reason = True, f"not checked: no memory model for {method!r} in sfrik_plugin.contenders"
    else:
        fits, reason = fit_verdict(predicted, budget_bytes, SAFETY_FACTOR)
    return {
        "fits": fits,
        "q": int(q),
        "predicted_bytes": predicted,
        "predicted": format_bytes(predicted) if predicted is not None else None,
        "budget_bytes": budget_bytes,
        "budget_rule": rule,
        "safety": SAFETY_FACTOR,
        "reason": reason,
    }

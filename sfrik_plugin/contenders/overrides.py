"""A benchmark or profiler setting as solo-learn overrides: the one translation of its keys.

A *setting* is what every compared method shares: the backbone, the crop size, the projector's
widths and the batch size, in the shape of the benchmark's yaml (``sfrik_plugin/benchmark/configs``).
The benchmark's runner, the training-step profiler's worker and ``scripts/profile_pretrain_input.py``
all turn theirs into hydra overrides of the packaged solo-learn configs with :func:`solo_overrides`.

Example:
    >>> solo_overrides({"backbone": {"name": "resnet18"}, "projector": {"hidden": 64, "q": 32}, "batch_size": 16})
    ['backbone.name=resnet18', 'method_kwargs.proj_hidden_dim=64', 'method_kwargs.proj_output_dim=32', 'optimizer.batch_size=16']
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["hydra_value", "solo_overrides"]


def hydra_value(value: Any) -> str:
    """A value as a hydra override writes it (``null``, ``true``, ``[1.0,40.0]``).

    Example:
        >>> hydra_value([1.0, 40.0]), hydra_value(None), hydra_value(False)
        ('[1.0,40.0]', 'null', 'false')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(hydra_value(v) for v in value) + "]"
    return str(value)


def solo_overrides(setting: Mapping[str, Any], q: int | None = None) -> list[str]:
    """The hydra overrides of a setting, for any method's packaged config.

    Keys of ``setting`` (all but ``backbone.name`` optional; an absent key adds no override):
    ``backbone: {name, kwargs}`` → ``backbone.name``, ``++backbone.kwargs.<key>``;
    ``crop_size`` → ``augmentations.<i>.crop_size`` for the first ``num_views_configs`` (2)
    augmentation groups; ``projector: {hidden, q}`` → ``method_kwargs.proj_hidden_dim`` and
    ``method_kwargs.proj_output_dim`` (``q``, when given, replaces ``projector.q``);
    ``batch_size`` → ``optimizer.batch_size``; then ``common_overrides`` as they are.

    Example:
        >>> solo_overrides({"backbone": {"name": "small_cnn", "kwargs": {"width": 16}}, "crop_size": 28}, q=8)
        ['backbone.name=small_cnn', '++backbone.kwargs.width=16', 'augmentations.0.crop_size=28', 'augmentations.1.crop_size=28', 'method_kwargs.proj_output_dim=8']
    """
    backbone = setting["backbone"]
    out = [f"backbone.name={backbone['name']}"]
    out += [f"++backbone.kwargs.{k}={hydra_value(v)}" for k, v in sorted((backbone.get("kwargs") or {}).items())]
    if setting.get("crop_size") is not None:
        views = int(setting.get("num_views_configs", 2))
        out += [f"augmentations.{i}.crop_size={int(setting['crop_size'])}" for i in range(views)]
    projector = setting.get("projector") or {}
    if projector.get("hidden") is not None:
        out.append(f"method_kwargs.proj_hidden_dim={int(projector['hidden'])}")
    q = q if q is not None else projector.get("q")
    if q is not None:
        out.append(f"method_kwargs.proj_output_dim={int(q)}")
    if setting.get("batch_size") is not None:
        out.append(f"optimizer.batch_size={int(setting['batch_size'])}")
    return out + list(setting.get("common_overrides") or [])

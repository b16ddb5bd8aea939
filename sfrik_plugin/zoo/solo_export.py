"""Write a backbone as a solo-learn checkpoint directory (``<name>-ep=<epochs>.ckpt`` + ``args.json``).

``<name>.ckpt`` is a Lightning-style dict whose ``state_dict`` holds ``backbone.*`` keys, and
``args.json`` next to it is a complete solo-learn config: what solo-learn's ``main_linear.py``
(``pretrained_feature_extractor``) and ``main_knn.py`` (``pretrained_checkpoint_dir``) read.
solo-learn itself is not imported.

Example::

    >>> from sfrik_plugin.files.checkpoints import load_checkpoint
    >>> ckpt = to_solo(load_checkpoint("backbone.pth"), "solo_ckpt/")   # doctest: +SKIP
"""

from __future__ import annotations

import copy
import os
from collections import OrderedDict
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..files.checkpoints import save_checkpoint
from ..files.records import write_json
from .backbone import infer_arch, infer_stem, to_official
from .models import ConversionError

__all__ = ["solo_args", "to_solo"]


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

        >>> from sfrik_plugin.files.checkpoints import load_checkpoint
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
    path = save_checkpoint(ckpt, out / f"{name}-ep={int(epochs)}.ckpt")
    write_json(out / "args.json", args)
    return path


def _lightning_version() -> str:
    try:
        from importlib.metadata import version

        return version("lightning")
    except Exception:  # not installed: the version solo-learn pins
        return "2.1.2"

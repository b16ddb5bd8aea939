"""From a zoo name to weights in memory: download (or find in the cache), extract, read safely.

Example::

    >>> import torch
    >>> model = load_pretrained("sfrik-r50-in1k-200ep-q32768", target="timm")   # doctest: +SKIP
    >>> model(torch.randn(1, 3, 224, 224)).shape                                # doctest: +SKIP
    torch.Size([1, 2048])
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from torch import nn

from .archive import extract_archive
from .backbone import load_model, to_official
from .catalog import get_entry
from .download import download
from .errors import ZooDownloadError
from .models import ConversionError
from .reading import read_weights

__all__ = ["LOAD_TARGETS", "weights_path", "load_pretrained"]

#: Targets of :func:`load_pretrained` (objects in memory).
LOAD_TARGETS = ("timm", "torchvision", "state_dict")
_WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt")


def weights_path(name: str, **download_kwargs: Any) -> Path:
    """Path of a file holding the model's weights, downloading (and extracting) if needed.

    ``download_kwargs`` go to :func:`sfrik_plugin.zoo.download.download` (``cache``, ``sha256``,
    ``manifest``, ``force``, ``allow_http`` for a plain ``http://`` URL, ...).

    Example::

        >>> weights_path("sfrik-r50-in1k-200ep-q32768").name   # doctest: +SKIP
        'sfrik_32k_in1000_200ep_r50_backbone.pth'
    """
    entry = get_entry(name, download_kwargs.get("manifest"))
    path = download(entry, **download_kwargs)
    if entry.format != "official-full-checkpoint-targz":
        return path
    folder = extract_archive(path, path.with_name(path.name.split(".tar")[0] + "_extracted"), model=entry.name)
    found = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix in _WEIGHT_SUFFIXES)
    if len(found) != 1:
        raise ZooDownloadError(
            f"expected one weight file ({', '.join(_WEIGHT_SUFFIXES)}) in {path}, found "
            f"{[str(p.relative_to(folder)) for p in found] or 'none'}"
        )
    return found[0]


def load_pretrained(
    name: str,
    target: str = "timm",
    *,
    cache: str | os.PathLike | None = None,
    sha256: str | None = None,
    progress: bool = True,
    manifest: str | os.PathLike | None = None,
    **download_kwargs: Any,
) -> nn.Module | dict[str, Any]:
    """Download (or find in the cache) a zoo model and hand it over as ``target``.

    ``target``: ``"timm"`` / ``"torchvision"`` → a feature extractor in eval mode (classifier
    replaced by identity, output = pooled features); ``"state_dict"`` → the official-format
    backbone state_dict. For solo-learn use :func:`sfrik_plugin.zoo.to_solo` or
    ``sfrik-zoo convert``. The file is read weights-only (a download never gets full
    unpickling); a cached file that cannot be read raises
    :class:`~sfrik_plugin.zoo.errors.CorruptCacheError`, which says how to replace it. Downloads
    are https only: ``allow_http=True`` (in ``download_kwargs``) accepts a plain ``http://`` URL.

    Example::

        >>> m = load_pretrained("sfrik-r50-in1k-200ep-q32768", target="torchvision")  # doctest: +SKIP
    """
    if target not in LOAD_TARGETS:
        raise ConversionError(
            f"unknown target {target!r}; allowed: {', '.join(LOAD_TARGETS)} "
            f"(for solo-learn checkpoints use sfrik_plugin.zoo.to_solo or `sfrik-zoo convert --to solo`)"
        )
    path = weights_path(name, cache=cache, sha256=sha256, progress=progress, manifest=manifest, **download_kwargs)
    obj = read_weights(path, model=name)
    if target == "state_dict":
        return to_official(obj)
    return load_model(obj, target)

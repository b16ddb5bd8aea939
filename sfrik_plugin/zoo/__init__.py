"""SFRIK model zoo: a manifest of pretrained models, safe downloads, format conversions.

Three lines from nothing to features::

    >>> import torch
    >>> from sfrik_plugin.zoo import load_pretrained
    >>> model = load_pretrained("sfrik-r50-in1k-200ep-q32768", target="timm")  # doctest: +SKIP
    >>> feats = model(torch.randn(1, 3, 224, 224))                               # doctest: +SKIP
    >>> feats.shape                                                              # doctest: +SKIP
    torch.Size([1, 2048])

Nothing here imports solo-learn.  Command line: ``sfrik-zoo --help``.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import Any

from .convert import (
    CONVERT_TARGETS,
    LOAD_TARGETS,
    ConversionError,
    build_model,
    check_backbone,
    convert,
    extract_backbone,
    load_checkpoint,
    load_model,
    to_official,
    to_solo,
    to_timm,
    to_torchvision,
)
from .download import (
    ChecksumError,
    UnverifiedDownloadWarning,
    ZooDownloadError,
    cache_dir,
    download,
    fetch_url,
    sha256_file,
)
from .manifest import ManifestError, ModelEntry, UnknownModelError, get_entry, list_models, load_manifest

__all__ = [
    "CONVERT_TARGETS",
    "LOAD_TARGETS",
    "ChecksumError",
    "ConversionError",
    "ManifestError",
    "ModelEntry",
    "UnknownModelError",
    "UnverifiedDownloadWarning",
    "ZooDownloadError",
    "build_model",
    "cache_dir",
    "check_backbone",
    "convert",
    "download",
    "extract_backbone",
    "extract_archive",
    "fetch_url",
    "get_entry",
    "list_models",
    "load_checkpoint",
    "load_manifest",
    "load_model",
    "load_pretrained",
    "sha256_file",
    "to_official",
    "to_solo",
    "to_timm",
    "to_torchvision",
    "weights_path",
]

_WEIGHT_SUFFIXES = (".pth", ".pt", ".ckpt")


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike) -> Path:
    """Extract a tar(.gz) safely into ``dest`` (no absolute paths, ``..``, links out, devices).

    Extraction goes to ``dest + '.tmp'`` first and is renamed when complete.
    """
    dest = Path(dest)
    if dest.is_dir():
        return dest
    import shutil

    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        _extract_checked(archive, tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-extracted tree behind
        raise
    os.replace(tmp, dest)
    return dest


def _extract_checked(archive, tmp: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(tmp, filter="data")  # refuses unsafe members
        else:
            for m in tar.getmembers():
                target = (tmp / m.name).resolve()
                if not (m.isfile() or m.isdir()) or not str(target).startswith(str(tmp.resolve()) + os.sep):
                    raise ZooDownloadError(f"refusing to extract unsafe archive member {m.name!r} from {archive}")
            tar.extractall(tmp)  # every member checked above: plain files/dirs inside tmp


def weights_path(name: str, **download_kwargs: Any) -> Path:
    """Path of a file holding the model's weights, downloading (and extracting) if needed."""
    entry = get_entry(name, download_kwargs.get("manifest"))
    path = download(entry, **download_kwargs)
    if entry.format != "official-full-checkpoint-targz":
        return path
    folder = extract_archive(path, path.with_name(path.name.split(".tar")[0] + "_extracted"))
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
):
    """Download (or find in the cache) a zoo model and hand it over as ``target``.

    ``target``: ``"timm"`` / ``"torchvision"`` → a feature extractor in eval mode (classifier
    replaced by identity, output = pooled features); ``"state_dict"`` → the official-format
    backbone state_dict.  For solo-learn use :func:`to_solo` or ``sfrik-zoo convert``.

    Example::

        >>> m = load_pretrained("sfrik-r50-in1k-200ep-q32768", target="torchvision")  # doctest: +SKIP
    """
    if target not in LOAD_TARGETS:
        raise ConversionError(
            f"unknown target {target!r}; allowed: {', '.join(LOAD_TARGETS)} "
            f"(for solo-learn checkpoints use sfrik_plugin.zoo.to_solo or `sfrik-zoo convert --to solo`)"
        )
    path = weights_path(name, cache=cache, sha256=sha256, progress=progress, manifest=manifest, **download_kwargs)
    obj = load_checkpoint(path)  # weights only: never executes code from a download
    if target == "state_dict":
        return to_official(obj)
    return load_model(obj, target)

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

from ..files.checkpoints import load_checkpoint
from .archive import extract_archive
from .catalog import add_user_entry, get_entry, list_models, load_catalog, record_trusted, user_manifest_path
from .convert import (
    CONVERT_TARGETS,
    ConversionError,
    build_model,
    check_backbone,
    convert,
    extract_backbone,
    load_model,
    to_official,
    to_solo,
    to_timm,
    to_torchvision,
)
from .download import cache_dir, download, fetch_url, sha256_file
from .errors import (
    ChecksumError,
    CorruptCacheError,
    PinMismatchError,
    TrustOnFirstUseWarning,
    UnsafeURLError,
    UnverifiedDownloadWarning,
    ZooDownloadError,
)
from .manifest import ManifestError, ModelEntry, UnknownModelError, load_manifest
from .pretrained import LOAD_TARGETS, load_pretrained, weights_path
from .reading import read_weights

__all__ = [
    "CONVERT_TARGETS",
    "LOAD_TARGETS",
    "ChecksumError",
    "ConversionError",
    "CorruptCacheError",
    "ManifestError",
    "ModelEntry",
    "PinMismatchError",
    "TrustOnFirstUseWarning",
    "UnknownModelError",
    "UnsafeURLError",
    "UnverifiedDownloadWarning",
    "ZooDownloadError",
    "add_user_entry",
    "build_model",
    "cache_dir",
    "check_backbone",
    "convert",
    "download",
    "extract_archive",
    "extract_backbone",
    "fetch_url",
    "get_entry",
    "list_models",
    "load_catalog",
    "load_checkpoint",
    "load_manifest",
    "load_model",
    "load_pretrained",
    "read_weights",
    "record_trusted",
    "sha256_file",
    "to_official",
    "to_solo",
    "to_timm",
    "to_torchvision",
    "user_manifest_path",
    "weights_path",
]

"""How the zoo reads a weights file: the project's one checkpoint reader, plus the cache's advice.

Every weights file goes through :func:`sfrik_plugin.files.checkpoints.load_checkpoint`
(``torch.load(weights_only=True)``; full unpickling only with ``trust_pickle`` and never for a
download). A file of the download cache that cannot be read raises :class:`CorruptCacheError`,
whose message is exactly ``cache file X is corrupt: delete it or run `sfrik-zoo download NAME --force```.

Example::

    >>> sd = read_weights("my_backbone.pth")                                   # doctest: +SKIP
    >>> sd = read_weights(cached_path, model="sfrik-r50-in1k-200ep-q32768")    # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..files.checkpoints import CheckpointReadError, cache_location, load_checkpoint
from .errors import CorruptCacheError

__all__ = ["read_weights", "model_of_cached_file"]


def model_of_cached_file(path: str | os.PathLike) -> str | None:
    """The zoo model a cached file belongs to (its folder right below the cache), else ``None``.

    Example::

        >>> model_of_cached_file("/nowhere/w.pth") is None
        True
    """
    found = cache_location(path)
    if found is None:
        return None
    root, place = found
    parts = place.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def read_weights(path: str | os.PathLike, *, model: str | None = None, trust_pickle: bool = False) -> Any:
    """Load a weights file safely; ``model`` names the zoo model it was downloaded for.

    A file downloaded for ``model`` (or lying in a download cache) is read weights-only whatever
    ``trust_pickle`` says, and a read failure there becomes :class:`CorruptCacheError`.

    Raises:
        UntrustedCheckpointError: the file needs full unpickling and that is not allowed.
        CorruptCacheError: a cached file is truncated or corrupt.
        CheckpointReadError: any other file is missing or unreadable.
    """
    downloaded = model is not None or cache_location(path) is not None
    try:
        return load_checkpoint(path, trust_pickle=trust_pickle, downloaded=downloaded)
    except CheckpointReadError:
        if not downloaded or not Path(path).is_file():
            raise
        name = model or model_of_cached_file(path) or "NAME"
        raise CorruptCacheError(path, name) from None

"""What can go wrong in the model zoo, as exception and warning classes the CLI maps to exit codes.

* :class:`ZooDownloadError` (and :class:`ChecksumError`): the network or the server failed, or
  the bytes received are not the expected ones; ``sfrik-zoo`` exits with status 1. A partial
  transfer is kept as ``<file>.part`` and resumed by the next attempt.
* :class:`~sfrik_plugin.console.InputError` subclasses: something the user can fix at once;
  ``sfrik-zoo`` prints the message as one line and exits with status 2:
  :class:`PinMismatchError` (``--sha256`` differs from the cached file, which is kept untouched),
  :class:`CorruptCacheError` (a cached file cannot be read) and :class:`UnsafeURLError` (a plain
  ``http://`` URL without ``--allow-http``, or a redirect off https; also a :class:`ZooDownloadError`).
* :class:`UnverifiedDownloadWarning` / :class:`TrustOnFirstUseWarning`: a file was accepted
  without a published checksum; ``sfrik-zoo`` prints them as a banner.

Example:
    >>> str(CorruptCacheError("/c/m/w.pth", "m"))
    'cache file /c/m/w.pth is corrupt: delete it or run `sfrik-zoo download m --force`'
"""

from __future__ import annotations

import os

from ..console import InputError
from ..files.checkpoints import CheckpointReadError

__all__ = [
    "ZooDownloadError",
    "ChecksumError",
    "PinMismatchError",
    "UnsafeURLError",
    "CorruptCacheError",
    "UnverifiedDownloadWarning",
    "TrustOnFirstUseWarning",
]


class ZooDownloadError(RuntimeError):
    """A download failed (HTTP error, unreachable host, cut transfer, offline mode...)."""


class ChecksumError(ZooDownloadError):
    """The downloaded bytes do not have the expected sha256 (nothing was kept under the final name)."""


class UnsafeURLError(ZooDownloadError, InputError):
    """A model download was refused before any byte arrived: its URL is plain ``http://`` and
    ``--allow-http`` (``allow_http=True``) was not given, or the server redirected it to another
    scheme (``ftp://``...) or from https down to http. The message names the URL or the redirect."""


class PinMismatchError(InputError):
    """``--sha256`` (``sha256=...``) differs from the cached file; the file was neither deleted nor
    downloaded again, since the typo is far more likely than the cached copy being wrong."""


class CorruptCacheError(CheckpointReadError):
    """A file of the download cache cannot be read; the message says how to get a good copy."""

    def __init__(self, path: str | os.PathLike, model: str):
        super().__init__(f"cache file {path} is corrupt: delete it or run `sfrik-zoo download {model} --force`", path)
        self.model = model


class UnverifiedDownloadWarning(UserWarning):
    """A file was accepted without a known sha256 to compare against."""


class TrustOnFirstUseWarning(UnverifiedDownloadWarning):
    """The first copy of a model without a published sha256 was trusted and its hash recorded."""

"""Is a file whole? Hashes, and structural checks for when no size or hash is known.

A server that sends no ``Content-Length`` and drops the connection leaves a file that *looks*
complete to HTTP. When the manifest knows neither its size nor its sha256, the type of the file
is the only witness left:

* ``.pth`` / ``.pt`` / ``.ckpt``: PyTorch >= 1.6 saves a zip archive, whose end-of-central-directory
  record is the very last thing in the file; a cut removes it. The archive must open and every
  member must pass its CRC.
* ``.gz`` / ``.tgz`` (the official full checkpoint, assembled from parts): the gzip stream must
  decompress to its end marker.

:func:`check_structure` raises :class:`Incomplete` (the file ends early: resume it) or
:class:`Malformed` (the bytes are not that kind of file at all), and returns ``False`` when
the file type has no structural check.

Example:
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.pth"
    >>> torch.save({"w": torch.ones(2)}, path)
    >>> check_structure(path)
    True
    >>> _ = path.write_bytes(path.read_bytes()[:-10])
    >>> check_structure(path)
    Traceback (most recent call last):
    ...
    sfrik_plugin.zoo.integrity.Incomplete: its zip end-of-central-directory is missing or unreadable (File is not a zip file)
"""

from __future__ import annotations

import gzip
import hashlib
import os
import zipfile
import zlib
from pathlib import Path

__all__ = ["Incomplete", "Malformed", "sha256_file", "structure_of", "check_structure"]

ZIP_SUFFIXES = (".pth", ".pt", ".ckpt")
GZIP_SUFFIXES = (".gz", ".tgz")
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b"


class Incomplete(Exception):
    """The file ends before its structure does: a cut transfer (keep it and resume)."""


class Malformed(Exception):
    """The file is not what its name says (an error page, a damaged file): resuming cannot help."""


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks.

    Example:
        >>> import tempfile, pathlib
        >>> p = pathlib.Path(tempfile.mkdtemp()) / "a"
        >>> _ = p.write_bytes(b"abc")
        >>> sha256_file(p)[:16]
        'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def structure_of(filename: str) -> str | None:
    """``"zip"``, ``"gzip"`` or ``None`` (no structural check) for a file name.

    Example:
        >>> structure_of("sfrik_backbone.pth"), structure_of("ckp.tar.gz"), structure_of("ckpaa")
        ('zip', 'gzip', None)
    """
    lower = filename.lower()
    if lower.endswith(ZIP_SUFFIXES):
        return "zip"
    if lower.endswith(GZIP_SUFFIXES):
        return "gzip"
    return None


def _head(path: Path, magic: bytes, what: str) -> None:
    with open(path, "rb") as f:
        head = f.read(len(magic))
    if len(head) < len(magic) and magic.startswith(head):
        raise Incomplete(f"it holds only {len(head)} byte(s)")
    if head != magic:
        raise Malformed(f"it does not start like a {what} (first bytes {head!r})")


def _check_zip(path: Path) -> None:
    _head(path, _ZIP_MAGIC, "zip archive (what PyTorch >= 1.6 saves)")
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as e:
        raise Incomplete(f"its zip end-of-central-directory is missing or unreadable ({e})") from None
    if bad is not None:
        raise Malformed(f"its zip member {bad!r} fails its CRC check")


def _check_gzip(path: Path) -> None:
    _head(path, _GZIP_MAGIC, "gzip stream")
    try:
        with gzip.open(path, "rb") as stream:
            while stream.read(1 << 20):
                pass
    except EOFError:
        raise Incomplete("its gzip stream ends before the end-of-stream marker") from None
    except (gzip.BadGzipFile, zlib.error, OSError) as e:
        raise Malformed(f"it does not decompress ({e})") from None


def check_structure(path: str | os.PathLike, kind: str | None = None) -> bool:
    """Check that ``path`` is a whole file of its type (``kind``, default: from its name).

    Returns ``True`` when checked, ``False`` when there is no check for this type.

    Raises:
        Incomplete: the file ends early (a cut transfer).
        Malformed: the file is not of that type, or is damaged inside.
    """
    path = Path(path)
    kind = kind or structure_of(path.name.removesuffix(".part"))
    if kind == "zip":
        _check_zip(path)
    elif kind == "gzip":
        _check_gzip(path)
    else:
        return False
    return True

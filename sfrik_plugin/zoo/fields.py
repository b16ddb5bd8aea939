"""What the values of a zoo manifest may be: its keys, file names, URLs, sha256 and sizes.

Every check raises :class:`ManifestError` with one line naming the place (``model 'x'.files[0]``),
the bad value and what is allowed. An unknown key names the closest known one (difflib), since a
misspelt ``sha256`` would otherwise be ignored and the download trusted on first use.

Example::

    >>> check_keys({"filename": "w.pth", "sha265": None}, FILE_KEYS, "model 'm'.files[0]")
    Traceback (most recent call last):
    ...
    sfrik_plugin.zoo.fields.ManifestError: model 'm'.files[0]: unknown key `sha265`; did you mean `sha256`?
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from pathlib import PurePosixPath, PureWindowsPath
from typing import Any
from urllib.parse import urlsplit

from ..console import InputError

__all__ = [
    "ManifestError",
    "MANIFEST_KEYS",
    "ENTRY_KEYS",
    "FILE_KEYS",
    "ASSEMBLED_KEYS",
    "METRIC_KEYS",
    "unknown_key_hint",
    "check_keys",
    "check_filename",
    "check_sha256",
    "check_size",
    "check_url",
    "check_optional",
]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


class ManifestError(InputError):
    """The manifest (or a new entry for it) is malformed."""


#: The keys a manifest may hold, level by level; any other key is an error (a typo such as
#: ``sha265`` would otherwise be ignored and the file trusted on first use). ``kernel`` is the
#: one free-form block: it only describes the training, nothing reads it.
MANIFEST_KEYS = ("schema_version", "models")
ENTRY_KEYS = (
    "name",
    "description",
    "kind",
    "format",
    "architecture",
    "stem",
    "dataset",
    "epochs",
    "batch_size",
    "q",
    "projector",
    "kernel",
    "metrics",
    "files",
    "assembled",
    "license",
    "source",
    "paper",
    "card",
)
FILE_KEYS = ("filename", "url", "size", "sha256")
ASSEMBLED_KEYS = ("filename", "size", "sha256")
METRIC_KEYS = ("name", "value", "source")
#: suffixes the zoo gives its own unfinished files: a published file may not end with them
_RESERVED_SUFFIXES = (".part", ".tmp")


def unknown_key_hint(key: object, known: Iterable[str]) -> str:
    """``did you mean `x`?`` for the known key closest to ``key`` (difflib), else the list of known keys.

    Example::

        >>> unknown_key_hint("sha265", FILE_KEYS)
        'did you mean `sha256`?'
        >>> unknown_key_hint("zzz", ASSEMBLED_KEYS)
        'known keys: filename, size, sha256'
    """
    known = list(known)
    close = difflib.get_close_matches(str(key), known, n=1)
    return f"did you mean `{close[0]}`?" if close else f"known keys: {', '.join(known)}"


def check_keys(d: dict[str, Any], known: Iterable[str], where: str) -> None:
    """Raise :class:`ManifestError` naming the first key of ``d`` that is not in ``known``.

    Example::

        >>> check_keys({"filename": "w.pth", "urll": "https://h/w.pth"}, FILE_KEYS, "model 'm'.files[0]")
        Traceback (most recent call last):
        ...
        sfrik_plugin.zoo.fields.ManifestError: model 'm'.files[0]: unknown key `urll`; did you mean `url`?
    """
    known = list(known)
    for key in d:
        if key not in known:
            raise ManifestError(f"{where}: unknown key `{key}`; {unknown_key_hint(key, known)}")


def check_filename(value: Any, what: str) -> str:
    """Return ``value`` if it is a plain file name the zoo may create in a model's cache folder, else raise.

    Refused: anything but a non-empty string, ``.`` and ``..``, a folder, drive or path separator
    (``/`` or ``\\``; an absolute path has one), control characters, and the suffixes the zoo
    gives its own unfinished files (``.part``, ``.tmp``).

    Example::

        >>> check_filename("w.pth", "files[0].filename")
        'w.pth'
        >>> check_filename("..", "assembled.filename")
        Traceback (most recent call last):
        ...
        sfrik_plugin.zoo.fields.ManifestError: assembled.filename: '..' must be a plain file name (not empty, '.' or '..', no folder, drive or path separator)
    """
    if value is None:
        raise ManifestError(f"{what}: missing (a plain file name is needed)")
    plain = (
        isinstance(value, str)
        and value.strip() not in ("", ".", "..")
        and PurePosixPath(value).name == value
        and PureWindowsPath(value).name == value
        and not any(ord(c) < 32 for c in value)
    )
    if not plain:
        raise ManifestError(
            f"{what}: {value!r} must be a plain file name (not empty, '.' or '..', no folder, drive or path separator)"
        )
    if value.endswith(_RESERVED_SUFFIXES):
        raise ManifestError(
            f"{what}: {value!r} ends with {value[value.rfind('.') :]!r}, which the zoo reserves for unfinished downloads"
        )
    return value


def check_sha256(value: str | None, what: str = "sha256") -> str | None:
    """Return ``value`` lower-cased if it is a 64-hex-digit sha256 (or None), else raise."""
    if value is None:
        return None
    if not isinstance(value, str) or not _SHA256_RE.match(value.strip().lower()):
        raise ManifestError(f"{what}: {value!r} is not a sha256 (expected 64 hexadecimal digits, or null)")
    return value.strip().lower()


def check_size(value: Any, what: str = "size") -> int | None:
    """Return ``value`` if it is a byte count (a non-negative integer) or None, else raise."""
    if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 0):
        raise ManifestError(f"{what}: {value!r} must be a non-negative integer (bytes) or null")
    return value


def check_url(value: str, what: str = "url") -> str:
    """Return ``value`` if it is an ``https://`` (or plain ``http://``) URL with a host, else raise.

    A plain ``http://`` URL is valid in a manifest, but downloading from it needs an explicit
    opt-in (``--allow-http`` / ``allow_http=True``, :func:`sfrik_plugin.zoo.fetch.fetch_url`).

    Example::

        >>> check_url("ftp://host/w.pth")
        Traceback (most recent call last):
        ...
        sfrik_plugin.zoo.fields.ManifestError: url: 'ftp://host/w.pth' must be an https:// URL (or http://, downloaded only with --allow-http)
    """
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ManifestError(
            f"{what}: {value!r} must be an https:// URL (or http://, downloaded only with --allow-http)"
        )
    return value


def check_optional(d: dict[str, Any], where: str) -> None:
    """The optional descriptive fields of an entry have the types the zoo prints and writes."""
    for key in ("description", "projector", "source", "paper", "card"):
        if d.get(key) is not None and not isinstance(d[key], str):
            raise ManifestError(f"{where}: {key!r} must be a string or null, got {d[key]!r}")
    for key in ("batch_size", "q"):
        value = d.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ManifestError(f"{where}: {key!r} must be a positive integer or null, got {value!r}")
    if d.get("kernel") is not None and not isinstance(d["kernel"], dict):
        raise ManifestError(f"{where}: 'kernel' must be an object (free-form) or null, got {d['kernel']!r}")

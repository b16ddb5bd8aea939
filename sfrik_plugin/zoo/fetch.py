"""Fetch one URL into one file, safely: ``.part`` first, checked whole, then renamed.

The bytes go to ``<final>.part`` and take the final name (``os.replace``) only once they are
known to be whole — by the expected size, by the server's ``Content-Length`` /
``Content-Range``, or, when neither exists, by the structure of the file
(:mod:`sfrik_plugin.zoo.integrity`) — and match the sha256 when one is known. A cut transfer is
resumed with HTTP ``Range``, inside one call (retries) and across calls (the ``.part`` stays).

Example::

    >>> r = fetch_url("https://example.org/w.pth", "/tmp/w.pth", sha256=None)  # doctest: +SKIP
    >>> r.path, r.confirmed                                                     # doctest: +SKIP
    (PosixPath('/tmp/w.pth'), True)
"""

from __future__ import annotations

import os
import time
import warnings
from pathlib import Path
from typing import NamedTuple

from ..console import get_logger
from ..files.transfer import Interrupted, RefusedURL, Transfer, TransferError, Unreachable, check_url, transfer
from .errors import (
    ChecksumError,
    CorruptCacheError,
    PinMismatchError,
    UnsafeURLError,
    UnverifiedDownloadWarning,
    ZooDownloadError,
)
from .integrity import Incomplete, Malformed, check_structure, sha256_file, structure_of
from .manifest import check_sha256

__all__ = ["OFFLINE_ENV", "FetchResult", "fetch_url", "use_cached", "unverified_warning"]

log = get_logger(__name__)

OFFLINE_ENV = "SFRIK_ZOO_OFFLINE"


class FetchResult(NamedTuple):
    path: Path
    sha256: str
    from_cache: bool
    #: the bytes matched a known sha256
    verified: bool
    size: int = 0
    #: the file is known to be whole (size, sha256, the server's stated length, or its structure)
    confirmed: bool = False


def _refused(error: RefusedURL) -> UnsafeURLError:
    """The zoo's one-line refusal of a URL or redirect, saying how to accept plain http when that would help."""
    how = (
        "; if you trust the network path (e.g. your own mirror), pass --allow-http (Python: allow_http=True)"
        if error.plain_http
        else ""
    )
    return UnsafeURLError(f"{error}; nothing was downloaded{how}")


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def unverified_warning(what: str, digest: str) -> None:
    """The loud warning for a file accepted without any sha256 to compare against."""
    warnings.warn(
        f"NO CHECKSUM TO VERIFY {what}: the manifest has no sha256 for it, so its integrity "
        f"was NOT checked. The sha256 of what you now have is {digest} - compare it with a "
        f"trusted source and pin it with --sha256 {digest} (Python: sha256='{digest}').",
        UnverifiedDownloadWarning,
        stacklevel=3,
    )


def use_cached(
    dest: Path, sha256: str | None, size: int | None, *, repair: bool, model: str | None
) -> FetchResult | None:
    """The cached ``dest`` if it is good; ``None`` when it must be replaced (``repair``).

    A mismatch without ``repair`` (a hash the user pinned) raises :class:`PinMismatchError` and
    leaves the file alone; a file with nothing to check it against but its structure raises
    :class:`CorruptCacheError` when that structure is broken.
    """
    got = dest.stat().st_size
    digest = sha256_file(dest)
    if (sha256 is not None and digest != sha256) or (size is not None and got != size):
        if not repair:
            expected = f"sha256 {sha256}" if sha256 is not None and digest != sha256 else f"{size} bytes"
            raise PinMismatchError(
                f"cached file {dest} is not the one asked for: expected {expected} (--sha256 / sha256=), actual "
                f"sha256 {digest} ({got} bytes). The file was kept and nothing was downloaded: check the value you "
                f"passed; if it is right, add --force (Python: force=True) to download a fresh copy and check it "
                f"against that value"
            )
        if _offline():  # cannot fetch a replacement: say how to get one
            raise CorruptCacheError(dest, model or dest.parent.name)
        log.warning(
            "cached file %s does not match the manifest (sha256 %s, %d bytes; expected %s, %s bytes): "
            "downloading a verified replacement",
            dest,
            digest,
            got,
            sha256 or "any",
            size if size is not None else "any",
        )
        return None
    checked = sha256 is not None or size is not None
    if not checked:
        try:
            checked = check_structure(dest)
        except (Incomplete, Malformed):
            raise CorruptCacheError(dest, model or dest.parent.name) from None
    return FetchResult(dest, digest, True, sha256 is not None, got, checked)


def _whole(url: str, part: Path, size: int | None, t: Transfer) -> bool:
    """Whether ``part`` is known to be the whole file; :class:`Interrupted` when it was cut."""
    got = part.stat().st_size if part.exists() else 0
    if size is not None:
        if got < size:
            raise Interrupted(f"the transfer was cut: {got} of {size} bytes")
        if got > size:
            part.unlink()
            raise ZooDownloadError(
                f"{url}: received {got} bytes but the manifest says {size}; the partial file was deleted"
            )
        return True
    if t.total is not None:
        if got > t.total:
            part.unlink()  # older than the server's file: start again
            raise Interrupted(f"the partial file had {got} bytes, more than the server's {t.total}")
        return got == t.total
    kind = structure_of(part.name.removesuffix(".part"))
    try:
        return check_structure(part, kind)
    except Incomplete as e:
        if t.received == 0 and got > 0:
            part.unlink()
            raise ZooDownloadError(
                f"{url}: the server has nothing beyond the {got} bytes received, yet {e}: the file there is "
                f"damaged or not a {kind} file; the partial file was deleted"
            ) from None
        raise Interrupted(f"the transfer was cut: the server sent no Content-Length and {e}") from None
    except Malformed as e:
        part.unlink()
        raise ZooDownloadError(
            f"{url} did not send a {kind} file: {e}; the {got} bytes received were deleted"
        ) from None


def _receive(
    url: str,
    part: Path,
    size: int | None,
    *,
    timeout: float,
    progress: bool,
    retries: int,
    backoff: float,
    allow_http: bool,
) -> bool:
    failures = 0
    while True:
        try:
            return _whole(url, part, size, transfer(url, part, timeout, progress, allow_http=allow_http))
        except Interrupted as e:
            failures += 1
            kept = part.stat().st_size if part.exists() else 0
            if failures > retries:
                raise ZooDownloadError(
                    f"download of {url} did not complete after {failures} attempt(s) ({e}); the {kept} bytes "
                    f"received are kept in {part} and the next attempt resumes from there"
                ) from None
            time.sleep(backoff * min(2 ** (failures - 1), 30))


def fetch_url(
    url: str,
    dest: str | os.PathLike,
    sha256: str | None = None,
    size: int | None = None,
    *,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    warn_unverified: bool = True,
    force: bool = False,
    repair_cache: bool = False,
    keep_unconfirmed: bool = False,
    model: str | None = None,
    allow_http: bool = False,
) -> FetchResult:
    """Download ``url`` to ``dest`` safely; return where it is and its sha256.

    If ``dest`` already exists no request is made: it must match ``sha256`` / ``size`` (else
    :class:`PinMismatchError`, the file untouched) unless ``repair_cache`` (hashes from a
    manifest), which downloads a verified replacement. ``force`` downloads again from scratch
    and replaces ``dest`` once the new copy passed its checks. A transfer cut in the middle is
    resumed with HTTP Range up to ``retries`` times; if it still fails, ``dest + '.part'`` is
    kept and the next call resumes from it. ``keep_unconfirmed``: leave a file whose
    completeness cannot be established at ``.part`` (the caller checks it otherwise).
    ``url`` must be ``https://``; plain ``http://`` only with ``allow_http`` (it applies to every
    redirect too, and a redirect to another scheme is always refused): :class:`UnsafeURLError`,
    before any file is created. A file already in the cache needs no network, so no URL check.

    Example::

        >>> r = fetch_url("https://example.org/w.pth", "/tmp/w.pth", sha256=None)  # doctest: +SKIP
        >>> r.sha256                                                                 # doctest: +SKIP
        '9f86d08...'
    """
    dest = Path(dest)
    sha256 = check_sha256(sha256, "expected sha256")
    if not url.startswith(("http://", "https://")):
        raise ZooDownloadError(f"refusing to download {url!r}: only http:// and https:// URLs are allowed")
    if dest.exists() and not force:
        cached = use_cached(dest, sha256, size, repair=repair_cache, model=model)
        if cached is not None:
            if sha256 is None and warn_unverified:
                unverified_warning(f"the cached file {dest}", cached.sha256)
            return cached
    if _offline():
        why = "cannot be downloaded again (--force)" if dest.exists() else "is not in the cache"
        raise ZooDownloadError(f"{OFFLINE_ENV} is set and {dest} {why} (source: {url})")
    try:
        check_url(url, allow_http)
    except RefusedURL as e:
        raise _refused(e) from None
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    if force and part.exists():
        part.unlink()  # a forced download trusts nothing left over
    try:
        confirmed = _receive(
            url,
            part,
            size,
            timeout=timeout,
            progress=progress,
            retries=retries,
            backoff=max(backoff, 0.0),
            allow_http=allow_http,
        )
    except RefusedURL as e:  # a redirect: nothing of it was written
        raise _refused(e) from None
    except Unreachable as e:
        raise ZooDownloadError(f"{e}. Check the network (or, offline, put the file at {dest})") from None
    except TransferError as e:
        raise ZooDownloadError(str(e)) from None
    got = part.stat().st_size
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise ChecksumError(
            f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}. "
            f"The file was deleted and nothing was written to {dest}"
        )
    confirmed = confirmed or sha256 is not None
    if keep_unconfirmed and not confirmed:
        return FetchResult(part, digest, False, False, got, False)
    os.replace(part, dest)
    if sha256 is None and warn_unverified:
        unverified_warning(f"{dest} (downloaded from {url})", digest)
    return FetchResult(dest, digest, False, sha256 is not None, got, confirmed)

"""Safe downloads for the model zoo (standard-library HTTP, tqdm progress bar).

What "safe" means here:

* the bytes go to ``<final>.part`` and only take the final name (``os.replace``) once their
  size and sha256 have been checked: a partial or corrupt file never looks like a good one;
* an interrupted download is resumed with an HTTP ``Range`` request, both inside one call
  (automatic retries) and across calls (the ``.part`` file is kept);
* a file already in the cache is used without touching the network;
* when the manifest has no sha256, a loud warning prints the hash that was obtained so that
  the user can pin it (``sha256=...`` / ``--sha256``);
* multi-part entries are downloaded part by part and concatenated into the final file.

The cache directory is ``$SFRIK_ZOO_CACHE`` (default ``~/.cache/sfrik-plugin/zoo``), one
sub-directory per model.  ``SFRIK_ZOO_OFFLINE=1`` forbids any network access.

Example::

    >>> from sfrik_plugin.zoo.download import download
    >>> path = download("sfrik-r50-in1k-200ep-q32768")      # doctest: +SKIP
    >>> path.name                                           # doctest: +SKIP
    'sfrik_32k_in1000_200ep_r50_backbone.pth'
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import sys
import time
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from typing import NamedTuple

from .manifest import ModelEntry, check_sha256, get_entry

CACHE_ENV = "SFRIK_ZOO_CACHE"
OFFLINE_ENV = "SFRIK_ZOO_OFFLINE"
DEFAULT_CACHE = Path("~/.cache/sfrik-plugin/zoo")
USER_AGENT = "sfrik-plugin-zoo/1 (+python-urllib)"
_CHUNK = 1 << 16


class ZooDownloadError(RuntimeError):
    """A download failed (HTTP error, unreachable host, size mismatch, offline mode...)."""


class ChecksumError(ZooDownloadError):
    """The downloaded bytes do not have the expected sha256 (nothing was kept)."""


class UnverifiedDownloadWarning(UserWarning):
    """A file was accepted without a known sha256 to compare against."""


class FetchResult(NamedTuple):
    path: Path
    sha256: str
    from_cache: bool
    verified: bool


class _Interrupted(Exception):
    """The transfer stopped before the end; the partial file can be resumed."""


def cache_dir() -> Path:
    """The zoo cache directory (``$SFRIK_ZOO_CACHE`` or ``~/.cache/sfrik-plugin/zoo``)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else DEFAULT_CACHE.expanduser()


def _offline() -> bool:
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def _unverified(what: str, digest: str) -> None:
    warnings.warn(
        f"NO CHECKSUM TO VERIFY {what}: the manifest has no sha256 for it, so its integrity "
        f"was NOT checked. The sha256 of what you now have is {digest} - compare it with a "
        f"trusted source and pin it with --sha256 {digest} (Python: sha256='{digest}').",
        UnverifiedDownloadWarning,
        stacklevel=3,
    )


def _progress_bar(total: int | None, initial: int, desc: str, enabled: bool):
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress is a nicety, never a reason to fail
        enabled = False
    if not enabled:

        class _Null:
            def update(self, n):
                pass

            def close(self):
                pass

        return _Null()
    return tqdm(
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=desc,
        file=sys.stderr,
        leave=True,
    )


def _transfer(url: str, part: Path, timeout: float, progress: bool) -> None:
    """One HTTP request that appends to (or restarts) ``part``."""
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            # Nothing left beyond what we have: the partial file is complete (or wrong,
            # which the size/checksum checks will tell).
            return
        if 500 <= e.code < 600:
            raise _Interrupted(f"HTTP {e.code} {e.reason}") from None
        raise ZooDownloadError(f"HTTP error {e.code} ({e.reason}) while downloading {url}") from None
    except urllib.error.URLError as e:
        raise ZooDownloadError(
            f"cannot reach {url}: {e.reason}. Check the network (or, offline, put the file "
            f"in the cache directory {cache_dir()})"
        ) from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise _Interrupted(f"{type(e).__name__}: {e}") from None

    with response:
        mode = "wb"
        if offset and response.status == 206:
            m = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
            if m and int(m.group(1)) == offset:
                mode = "ab"
            else:
                raise ZooDownloadError(
                    f"{url}: server answered a resume request with an unexpected Content-Range "
                    f"{response.headers.get('Content-Range')!r}; delete {part} and try again"
                )
        start = offset if mode == "ab" else 0
        length = response.headers.get("Content-Length")
        expected = int(length) if length is not None and length.isdigit() else None
        bar = _progress_bar(
            start + expected if expected is not None else None, start, part.name[: -len(".part")], progress
        )
        written = 0
        try:
            with open(part, mode) as f:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except (http.client.IncompleteRead, ConnectionError, TimeoutError, http.client.HTTPException) as e:
                        raise _Interrupted(f"{type(e).__name__} after {start + written} bytes") from None
                    if not block:
                        break
                    f.write(block)
                    written += len(block)
                    bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
        finally:
            bar.close()
        if expected is not None and written < expected:
            raise _Interrupted(f"connection closed after {start + written} of {start + expected} bytes")


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
) -> FetchResult:
    """Download ``url`` to ``dest`` safely; return where it is and its sha256.

    If ``dest`` already exists (and matches ``sha256`` when given) no request is made.
    A transfer cut in the middle is resumed with HTTP Range up to ``retries`` times; if it
    still fails, ``dest + '.part'`` is kept and the next call resumes from it.

    Example::

        >>> r = fetch_url("https://example.org/w.pth", "/tmp/w.pth", sha256=None)  # doctest: +SKIP
        >>> r.sha256                                                                 # doctest: +SKIP
        '9f86d08...'
    """
    dest = Path(dest)
    sha256 = check_sha256(sha256, "expected sha256")
    if not url.startswith(("http://", "https://")):
        raise ZooDownloadError(f"refusing to download {url!r}: only http:// and https:// URLs are allowed")
    if dest.exists():
        digest = sha256_file(dest)
        if sha256 is None or digest == sha256:
            if sha256 is None and warn_unverified:
                _unverified(f"the cached file {dest}", digest)
            return FetchResult(dest, digest, True, sha256 is not None)
        warnings.warn(
            f"cached file {dest} has sha256 {digest}, expected {sha256}: downloading it again",
            stacklevel=2,
        )
        dest.unlink()
    if _offline():
        raise ZooDownloadError(f"{OFFLINE_ENV} is set and {dest} is not in the cache (source: {url})")

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = 0
    while True:
        try:
            _transfer(url, part, timeout, progress)
            break
        except _Interrupted as e:
            failures += 1
            kept = part.stat().st_size if part.exists() else 0
            if failures > retries:
                raise ZooDownloadError(
                    f"download of {url} failed after {failures} attempt(s) ({e}); the {kept} bytes "
                    f"received are kept in {part} and the next attempt resumes from there"
                ) from None
            time.sleep(backoff * min(2 ** (failures - 1), 30))

    if not part.exists():  # e.g. 416 on a resume with no partial left
        raise ZooDownloadError(f"download of {url} produced no data")
    got = part.stat().st_size
    if size is not None and got != size:
        part.unlink()
        raise ZooDownloadError(
            f"{url}: received {got} bytes but the manifest says {size}; the partial file was deleted"
        )
    digest = sha256_file(part)
    if sha256 is not None and digest != sha256:
        part.unlink()
        raise ChecksumError(
            f"checksum mismatch for {url}: expected sha256 {sha256}, got {digest}. "
            f"The file was deleted and nothing was written to {dest}"
        )
    os.replace(part, dest)
    if sha256 is None and warn_unverified:
        _unverified(f"{dest} (downloaded from {url})", digest)
    return FetchResult(dest, digest, False, sha256 is not None)


def _assemble(parts, dest: Path, sha256: str | None) -> str:
    """Concatenate ``parts`` into ``dest`` via a temporary file; return the sha256."""
    tmp = dest.with_name(dest.name + ".part")
    h = hashlib.sha256()
    with open(tmp, "wb") as out:
        for p in parts:
            with open(p, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                    out.write(block)
        out.flush()
        os.fsync(out.fileno())
    digest = h.hexdigest()
    if sha256 is not None and digest != sha256:
        tmp.unlink()
        raise ChecksumError(
            f"checksum mismatch for the assembled file {dest.name}: expected sha256 {sha256}, "
            f"got {digest}. Nothing was written to {dest}"
        )
    os.replace(tmp, dest)
    return digest


def download(
    name: str | ModelEntry,
    *,
    sha256: str | None = None,
    cache: str | os.PathLike | None = None,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    keep_parts: bool = False,
    manifest: str | os.PathLike | None = None,
) -> Path:
    """Fetch a zoo model into the cache (or find it there) and return the file's path.

    ``sha256`` pins the expected hash of the final file (the assembled file for multi-part
    entries), overriding the manifest.  Multi-part entries download every part, concatenate
    them in order, verify, and delete the parts unless ``keep_parts``.

    Example::

        >>> p = download("sfrik-r50-in1k-200ep-q32768", cache="/tmp/zoo")  # doctest: +SKIP
    """
    entry = name if isinstance(name, ModelEntry) else get_entry(name, manifest)
    root = Path(cache).expanduser() if cache is not None else cache_dir()
    folder = root / entry.name
    pin = check_sha256(sha256, "--sha256")
    kw = dict(progress=progress, timeout=timeout, retries=retries, backoff=backoff)

    if entry.assembled is None:
        f = entry.files[0]
        return fetch_url(f.url, folder / f.filename, pin or f.sha256, f.size, **kw).path

    final = folder / entry.assembled.filename
    expected = pin or entry.assembled.sha256
    if final.exists():
        digest = sha256_file(final)
        if expected is None or digest == expected:
            if expected is None:
                _unverified(f"the cached file {final}", digest)
            return final
        warnings.warn(f"cached {final} has sha256 {digest}, expected {expected}: rebuilding it", stacklevel=2)
        final.unlink()
    part_paths = []
    for f in entry.files:
        # A part without its own hash is covered by the assembled file's hash; when there
        # is none either, the single warning below gives the hash worth pinning.
        r = fetch_url(f.url, folder / f.filename, f.sha256, f.size, warn_unverified=False, **kw)
        part_paths.append(r.path)
    digest = _assemble(part_paths, final, expected)
    if not keep_parts:
        for p in part_paths:
            p.unlink()
    if expected is None:
        _unverified(f"the assembled file {final}", digest)
    return final

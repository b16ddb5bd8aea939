"""Checksum-verified, resumable downloads of public data files (standard-library HTTP only).

The guarantees, which the dataset cache relies on:

* the bytes go to ``<name>.part``; only bytes whose md5 matches the expected one are renamed
  (``os.replace``) to the final name, so a file with the final name is always a verified file;
* bytes with the wrong md5 are deleted at once: nothing corrupt stays in the cache;
* a transfer cut in the middle keeps its ``.part`` and is resumed with an HTTP ``Range`` request,
  within the call (``retries``) and by the next call; when resumed bytes fail the check, the file
  is fetched once more from scratch;
* several mirrors may be given: they are tried in order, and the error lists what each one did.

Example:
    >>> fetch_verified(["https://example.org/a.gz"], "/tmp/a.gz", md5="0" * 32)  # doctest: +SKIP
    PosixPath('/tmp/a.gz')
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path

from ..console import get_logger
from ..files.transfer import Interrupted, TransferError, transfer

__all__ = ["DownloadError", "ChecksumMismatchError", "md5_file", "fetch_verified"]

log = get_logger(__name__)


class DownloadError(RuntimeError):
    """A file could not be downloaded from any of its URLs; the message (one line) says what each URL did."""


class ChecksumMismatchError(DownloadError):
    """Every URL sent bytes whose md5 is not the expected one (they were deleted, nothing was kept)."""


def _one_line(text: object) -> str:
    return " ".join(str(text).split())


def md5_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex md5 of a file, read in chunks.

    Example:
        >>> md5_file("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")  # doctest: +SKIP
        '0d30e22e447f3c33dab9ed536400ac01'
    """
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_verified(
    urls: Sequence[str],
    dest: str | os.PathLike,
    md5: str,
    *,
    timeout: float = 30.0,
    retries: int = 2,
    progress: bool | None = None,
) -> Path:
    """Downloads ``dest`` from the first of ``urls`` that delivers bytes with the given ``md5``.

    An existing ``dest`` is trusted (only verified bytes ever get that name). ``retries`` is how
    many times an interrupted transfer is resumed per URL; ``progress=None`` shows a progress bar
    when standard error is a terminal. Raises :class:`ChecksumMismatchError` when every URL sent
    wrong bytes, :class:`DownloadError` otherwise; the ``.part`` of an interrupted transfer is kept
    so that the next call resumes it.

    Example:
        >>> fetch_verified(["http://127.0.0.1:8000/a.gz"], "cache/a.gz", md5="9e107d9d372bb6826bd81d3542a419d6")  # doctest: +SKIP
        PosixPath('cache/a.gz')
    """
    dest = Path(dest)
    if dest.is_file():
        return dest
    if not urls:
        raise DownloadError(f"no URL to download {dest.name} from; give at least one mirror")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures: list[str] = []
    mismatches = 0
    for url in urls:
        if not url.startswith(("http://", "https://")):
            failures.append(f"{url}: not an http(s) URL")
            continue
        last = ""
        for _attempt in range(retries + 1):
            try:
                # plain http is fine here: only bytes with the expected md5 are ever kept
                resumed_from = transfer(url, part, timeout, progress, allow_http=True).resumed_from
            except Interrupted as e:
                last = f"interrupted ({_one_line(e)})"
                log.info("download of %s interrupted (%s); resuming", url, e)
                continue
            except TransferError as e:
                failures.append(f"{url}: {_one_line(e)}")
                break
            digest = md5_file(part)
            if digest == md5:
                os.replace(part, dest)
                return dest
            part.unlink()
            if resumed_from:
                # the kept bytes may be stale (another mirror, a file changed since): once more from zero
                last = f"resumed bytes failed the md5 check (md5 {digest}, expected {md5})"
                log.info("resumed download of %s failed its md5 check; starting over", url)
                continue
            failures.append(
                f"{url} sent {dest.name} with md5 {digest}, expected {md5} (checksum mismatch; the bytes were deleted)"
            )
            mismatches += 1
            break
        else:
            kept = part.stat().st_size if part.exists() else 0
            note = (
                f"; the {kept} bytes received are kept in {part} and the next attempt resumes from them" if kept else ""
            )
            failures.append(f"{url}: gave up after {retries + 1} attempt(s), last: {last}{note}")
    error = ChecksumMismatchError if mismatches == len(failures) else DownloadError
    raise error(f"could not download {dest.name}: " + "; ".join(failures))

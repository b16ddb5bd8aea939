"""Multi-part entries: fetch every part, concatenate them in order, check the whole, then keep it.

The official full checkpoint is a ``.tar.gz`` published in three parts. A part whose
completeness cannot be established on its own (no size or sha256 in the manifest, no
``Content-Length`` from the server) stays a ``.part`` file until the assembled file has passed
its checks (size or sha256 when known, else its gzip stream must decompress to the end). If it
does not, those parts are resumed with HTTP ``Range`` (a whole part gets ``416``, a cut one
the rest of its bytes) and the assembly is tried again.

Example::

    >>> path, recorded = assemble_parts(entry, folder, None, False, progress=False)  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

from ..console import get_logger
from .errors import ChecksumError, ZooDownloadError
from .fetch import FetchResult, fetch_url, use_cached
from .integrity import Incomplete, Malformed, check_structure, structure_of
from .manifest import ModelEntry

__all__ = ["assemble_parts"]

log = get_logger(__name__)


def _join(
    results: list[FetchResult], final: Path, expected: str | None, size: int | None, check: bool
) -> tuple[str, int]:
    """Concatenate the parts into ``final`` through ``final.part``; return (sha256, size)."""
    tmp = final.with_name(final.name + ".part")
    h = hashlib.sha256()
    total = 0
    with open(tmp, "wb") as out:
        for r in results:
            with open(r.path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                    out.write(block)
                    total += len(block)
        out.flush()
        os.fsync(out.fileno())
    digest = h.hexdigest()
    try:
        if size is not None and total != size:
            raise (Incomplete if total < size else Malformed)(f"it has {total} bytes instead of {size}")
        if check:
            check_structure(tmp, structure_of(final.name))
    except (Incomplete, Malformed):
        tmp.unlink()
        raise
    if expected is not None and digest != expected:
        tmp.unlink()
        raise ChecksumError(
            f"checksum mismatch for the assembled file {final.name}: expected sha256 {expected}, "
            f"got {digest}. Nothing was written to {final}"
        )
    os.replace(tmp, final)
    return digest, total


def assemble_parts(
    entry: ModelEntry,
    folder: Path,
    pin: str | None,
    keep_parts: bool,
    *,
    progress: bool = True,
    timeout: float = 30.0,
    retries: int = 3,
    backoff: float = 1.0,
    force: bool = False,
    allow_http: bool = False,
) -> tuple[Path, dict[str, tuple[int, str]]]:
    """The assembled file of a multi-part ``entry`` in ``folder`` (downloaded if needed).

    Returns its path and ``{filename: (size, sha256)}`` of every part / the assembled file the
    manifest has no sha256 for (what trust on first use records).
    """
    if entry.assembled is None:
        raise ValueError(f"model {entry.name!r} is not a multi-part entry")
    a = entry.assembled
    final = folder / a.filename
    expected, size = pin or a.sha256, None if pin else a.size
    if final.exists() and not force:
        cached = use_cached(final, expected, size, repair=pin is None, model=entry.name)
        if cached is not None:
            return final, ({a.filename: (cached.size, cached.sha256)} if a.sha256 is None and cached.confirmed else {})
    before: int | None = None
    for attempt in range(retries + 1):
        results = [
            fetch_url(
                f.url,
                folder / f.filename,
                f.sha256,
                f.size,
                progress=progress,
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                warn_unverified=False,
                force=force and attempt == 0,
                repair_cache=True,
                keep_unconfirmed=True,
                model=entry.name,
                allow_http=allow_http,
            )
            for f in entry.files
        ]
        pending = [r for r in results if r.path.name.endswith(".part")]
        try:
            digest, total = _join(results, final, expected, size, check=expected is None or bool(pending))
            break
        except (Incomplete, Malformed) as e:
            if not pending:
                raise ZooDownloadError(
                    f"the assembled file {final} is incomplete or damaged ({e}) although every part arrived whole: "
                    f"the parts do not belong together or the release is damaged; delete {folder} and download "
                    f"again, or tell the publisher"
                ) from None
            names = ", ".join(r.path.name for r in pending)
            now = sum(r.size for r in pending)
            if attempt == retries or now == before:
                raise ZooDownloadError(
                    f"the assembled file {final.name} is incomplete ({e}): the transfer of a part was cut (the "
                    f"server gave no size for {names}); those parts are kept and the next "
                    f"`sfrik-zoo download {entry.name}` resumes them"
                ) from None
            before = now
            log.warning("assembled file %s is incomplete (%s): resuming %s", final.name, e, names)
            time.sleep(max(backoff, 0.0) * min(2**attempt, 30))
    for r, f in zip(results, entry.files):
        whole = folder / f.filename
        if not keep_parts:
            r.path.unlink()
        elif r.path != whole:
            os.replace(r.path, whole)  # it was whole after all: the assembly proves it
    values = {f.filename: (r.size, r.sha256) for r, f in zip(results, entry.files) if f.sha256 is None}
    if a.sha256 is None:
        values[a.filename] = (total, digest)
    return final, values

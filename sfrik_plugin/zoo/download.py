"""Safe downloads for the model zoo (standard-library HTTP, tqdm progress bar).

What "safe" means here:

* the bytes go to ``<final>.part`` and take the final name (``os.replace``) only once they are
  known to be whole — by the manifest's size, by the server's ``Content-Length`` /
  ``Content-Range``, or, when neither exists, by the structure of the file
  (:mod:`sfrik_plugin.zoo.integrity`) — and match the sha256 when one is known: a cut or corrupt
  file never looks like a good one;
* an interrupted download is resumed with an HTTP ``Range`` request, both inside one call
  (automatic retries) and across calls (the ``.part`` file is kept);
* a file already in the cache is used without touching the network. A cached file that differs
  from the manifest's hash is replaced by a verified download; one that differs from the hash
  *you* pinned (``sha256=`` / ``--sha256``) is an error and stays untouched (the pin is more
  likely mistyped than the file wrong). ``force=True`` downloads again and replaces the cached
  file once the new copy is verified;
* when no sha256 is published, the first whole copy is trusted and its size and sha256 are
  recorded in the user manifest (:func:`sfrik_plugin.zoo.catalog.record_trusted`), with a loud
  warning that prints the hash; later downloads and cached copies are checked against it;
* multi-part entries are downloaded part by part and concatenated; parts whose completeness
  is unknown stay ``.part`` files until the assembled file passes its checks;
* only ``https://`` is fetched: plain ``http://`` (a URL, or a redirect from https down to http)
  needs ``allow_http=True`` (``--allow-http``), and a redirect to any other scheme is refused,
  naming its target, before a byte is written (:class:`~sfrik_plugin.zoo.errors.UnsafeURLError`).

The cache directory is ``$SFRIK_ZOO_CACHE`` (default ``~/.cache/sfrik-plugin/zoo``), one
sub-directory per model.  ``SFRIK_ZOO_OFFLINE=1`` forbids any network access.

Example::

    >>> from sfrik_plugin.zoo.download import download
    >>> path = download("sfrik-r50-in1k-200ep-q32768")      # doctest: +SKIP
    >>> path.name                                           # doctest: +SKIP
    'sfrik_32k_in1000_200ep_r50_backbone.pth'
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

from ..console import get_logger
from ..files.checkpoints import DOWNLOAD_CACHE_ENV, download_cache_dir, mark_download_cache
from .catalog import get_entry, record_trusted
from .errors import ChecksumError, TrustOnFirstUseWarning
from .fetch import OFFLINE_ENV, FetchResult, fetch_url, unverified_warning
from .integrity import sha256_file
from .manifest import ModelEntry, UnknownModelError, check_sha256
from .parts import assemble_parts

__all__ = ["CACHE_ENV", "OFFLINE_ENV", "FetchResult", "cache_dir", "fetch_url", "download", "sha256_file"]

log = get_logger(__name__)

CACHE_ENV = DOWNLOAD_CACHE_ENV


def cache_dir() -> Path:
    """The zoo cache directory (``$SFRIK_ZOO_CACHE`` or ``~/.cache/sfrik-plugin/zoo``)."""
    return download_cache_dir()


def _is_catalog_entry(entry: ModelEntry, manifest: str | os.PathLike | None) -> bool:
    """Whether ``entry`` is the catalog's entry of that name (so hashes may be recorded for it)."""
    try:
        known = get_entry(entry.name, manifest)
    except UnknownModelError:
        return False
    same_files = [(f.filename, f.url) for f in known.files] == [(f.filename, f.url) for f in entry.files]
    return same_files and (known.assembled is None) == (entry.assembled is None)


def _trust_first_copy(
    entry: ModelEntry,
    path: Path,
    values: dict[str, tuple[int, str]],
    pinned: bool,
    manifest: str | os.PathLike | None,
) -> None:
    """Record the sizes / hashes the manifest lacks (trust on first use) and say so loudly."""
    verified = pinned or entry.output_sha256 is not None
    try:
        where = record_trusted(
            entry.name, values, manifest, "verified with --sha256" if pinned else "trust on first use"
        )
    except OSError as e:  # the download itself is fine: only the record is lost
        log.warning("could not record the sha256 of %s in the user manifest (%s)", entry.name, e)
        where = None
    size, digest = values.get(entry.output_filename) or (path.stat().st_size, sha256_file(path))
    if verified:
        if where is not None:
            log.info("recorded the sizes and sha256 of %s (%s) in %s", entry.name, ", ".join(values), where)
        return
    if where is None:
        unverified_warning(str(path), digest)
        return
    warnings.warn(
        f"TRUST ON FIRST USE for {entry.name}: the manifest has no sha256 for it, so this first copy was "
        f"trusted as it is. Its size ({size} bytes) and sha256 {digest} are now recorded in {where}, and every "
        f"later download or cached copy is checked against them. Compare {digest} with a trusted source now; "
        f"if it differs, delete {path} and the {entry.name!r} record in {where}, then download again.",
        TrustOnFirstUseWarning,
        stacklevel=3,
    )


def _fetch_single(
    entry: ModelEntry,
    folder: Path,
    pin: str | None,
    progress: bool,
    timeout: float,
    retries: int,
    backoff: float,
    force: bool,
    allow_http: bool,
) -> tuple[Path, dict[str, tuple[int, str]]]:
    """The file of a one-file entry, and ``{filename: (size, sha256)}`` if the manifest lacks its hash."""
    f = entry.files[0]
    r = fetch_url(
        f.url,
        folder / f.filename,
        pin or f.sha256,
        None if pin else f.size,
        progress=progress,
        timeout=timeout,
        retries=retries,
        backoff=backoff,
        warn_unverified=False,
        force=force,
        repair_cache=pin is None,  # a hash from the manifest vouches for a replacement, a pin does not
        model=entry.name,
        allow_http=allow_http,
    )
    if f.sha256 is None and pin is None and not r.confirmed:
        unverified_warning(f"{r.path} (nor could its completeness be checked)", r.sha256)
    return r.path, ({f.filename: (r.size, r.sha256)} if f.sha256 is None and r.confirmed else {})


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
    force: bool = False,
    allow_http: bool = False,
) -> Path:
    """Fetch a zoo model into the cache (or find it there) and return the file's path.

    ``sha256`` pins the expected hash of the final file (the assembled file for multi-part
    entries), overriding the manifest. ``manifest`` is the user manifest (models you added,
    hashes recorded on first use). ``force`` downloads again and replaces the cached file once
    the new copy is verified. Multi-part entries download every part, concatenate them in
    order, verify, and delete the parts unless ``keep_parts``. URLs must be ``https://``: plain
    ``http://`` (the URL or a redirect) only with ``allow_http`` (CLI ``--allow-http``), and a
    redirect to another scheme never (:class:`~sfrik_plugin.zoo.errors.UnsafeURLError`).

    Example::

        >>> p = download("sfrik-r50-in1k-200ep-q32768", cache="/tmp/zoo")  # doctest: +SKIP
    """
    entry = name if isinstance(name, ModelEntry) else get_entry(name, manifest)
    root = mark_download_cache(Path(cache).expanduser() if cache is not None else cache_dir())
    folder = root / entry.name
    pin = check_sha256(sha256, "--sha256")
    try:
        if entry.assembled is None:
            path, values = _fetch_single(entry, folder, pin, progress, timeout, retries, backoff, force, allow_http)
        else:
            path, values = assemble_parts(
                entry,
                folder,
                pin,
                keep_parts,
                progress=progress,
                timeout=timeout,
                retries=retries,
                backoff=backoff,
                force=force,
                allow_http=allow_http,
            )
    except ChecksumError as e:
        recorded = {s.recorded_in for s in [*entry.files, entry.assembled] if s is not None and s.recorded_in}
        if pin is not None or not recorded:
            raise
        raise ChecksumError(
            f"{e}. The expected sha256 was recorded in {', '.join(map(str, recorded))} when the first copy was "
            f"trusted (trust on first use): if the publisher replaced the file on purpose, delete the "
            f"{entry.name!r} record there and download again; otherwise do not use this download"
        ) from None
    if values and (isinstance(name, str) or _is_catalog_entry(entry, manifest)):
        _trust_first_copy(entry, path, values, pin is not None, manifest)
    elif values and pin is None:
        unverified_warning(str(path), values.get(entry.output_filename, (0, sha256_file(path)))[1])
    return path

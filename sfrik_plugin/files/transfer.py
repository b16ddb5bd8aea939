"""One HTTP request that fills (or resumes) a ``.part`` file, with a progress bar: the transfer under
every download of the project (model-zoo weights, dataset files).

:func:`transfer` appends to ``<file>.part`` when the server honours ``Range`` (``206`` with the
expected ``Content-Range``), restarts it otherwise, and reports what the server said about the
whole file's size (``Content-Length``, ``Content-Range``, or a ``416`` answer to a resume), so
that the caller can tell a complete file from a cut one. A transfer that stops early raises
:class:`Interrupted` (the partial file is kept and can be resumed); any other failure raises
:class:`TransferError` (:class:`Unreachable` when the host cannot be reached at all). Deciding what
a complete file is (sizes, checksums, file structure) is the caller's business.

Which URLs it follows (:func:`check_url`): ``https://``, and plain ``http://`` only when the caller
says so (``allow_http=True``: the md5-checked dataset mirrors; the model zoo only on an explicit
``--allow-http``). Every redirect is checked the same way before it is followed, so a redirect to
another scheme (``ftp://``, ``file://``) or from https down to http raises :class:`RefusedURL`
naming its target, and nothing is written.

Example::

    >>> t = transfer("https://example.org/w.pth", Path("/tmp/w.pth.part"), 30.0, False, allow_http=False)  # doctest: +SKIP
    >>> t.total                                                                            # doctest: +SKIP
    102400
"""

from __future__ import annotations

import http.client
import os
import re
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

__all__ = [
    "USER_AGENT",
    "Interrupted",
    "TransferError",
    "Unreachable",
    "RefusedURL",
    "Transfer",
    "check_url",
    "transfer",
]

USER_AGENT = "sfrik-plugin/1 (+python-urllib)"
_CHUNK = 1 << 16


class Interrupted(Exception):
    """The transfer stopped before the end; the partial file can be resumed."""


class TransferError(RuntimeError):
    """The server refused the request (an HTTP error, a wrong answer to a resume)."""


class Unreachable(TransferError):
    """The host cannot be reached at all (no network, wrong name, refused connection)."""


class RefusedURL(TransferError):
    """The URL, or a redirect the server answered with, is not one this download may follow.

    ``plain_http`` says whether allowing plain http (``allow_http=True``) would have accepted it.
    """

    def __init__(self, message: str, url: str, plain_http: bool):
        super().__init__(message)
        self.url = url
        self.plain_http = plain_http


def check_url(url: str, allow_http: bool, redirected_from: str | None = None) -> None:
    """Raise :class:`RefusedURL` unless ``url`` is ``https://`` (or ``http://`` with ``allow_http``).

    ``redirected_from``: the URL whose redirect led to ``url`` (named in the message).

    Example::

        >>> check_url("https://example.org/w.pth", allow_http=False)
        >>> check_url("ftp://example.org/w.pth", allow_http=True, redirected_from="https://example.org/w")
        Traceback (most recent call last):
        ...
        sfrik_plugin.files.transfer.RefusedURL: refused the redirect from https://example.org/w to ftp://example.org/w.pth: a download follows only https:// (and, where allowed, http://) URLs
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "https" or (scheme == "http" and allow_http):
        return
    what = f"the redirect from {redirected_from} to {url}" if redirected_from else url
    if scheme == "http":
        why = "it goes from https down to plain http" if redirected_from else "it is plain http"
        raise RefusedURL(
            f"refused {what}: {why}, which anyone on the network path can alter, and plain http was not allowed",
            url,
            plain_http=True,
        )
    raise RefusedURL(
        f"refused {what}: a download follows only https:// (and, where allowed, http://) URLs", url, plain_http=False
    )


class _CheckedRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to a URL :func:`check_url` accepts (urllib alone would follow ``ftp://``)."""

    def __init__(self, allow_http: bool):
        self.allow_http = allow_http

    def http_error_302(self, req: Any, fp: Any, code: int, msg: str, headers: Any) -> Any:
        target = headers.get("location") or headers.get("uri")
        if target:
            try:
                check_url(urljoin(req.full_url, target), self.allow_http, redirected_from=req.full_url)
            except RefusedURL:
                fp.close()
                raise
        return super().http_error_302(req, fp, code, msg, headers)

    http_error_301 = http_error_303 = http_error_307 = http_error_308 = http_error_302


@dataclass
class Transfer:
    """What one request did: bytes written, the whole file's size if the server said it, and the
    offset it resumed from (0: the file was written from its start)."""

    received: int
    total: int | None
    resumed_from: int = 0


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int | None, initial: int, desc: str, enabled: bool | None) -> Any:
    if enabled is None:  # a bar only where someone watches: a terminal, not CI logs or captured output
        enabled = sys.stderr.isatty()
    try:
        from tqdm.auto import tqdm
    except ImportError:  # progress is a nicety, never a reason to fail
        enabled = False
    if not enabled:
        return _NoBar()
    return tqdm(total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=desc, file=sys.stderr)


def _number(text: str | None) -> int | None:
    return int(text) if text is not None and text.strip().isdigit() else None


def _open(url: str, offset: int, timeout: float, allow_http: bool) -> Any:
    """The response, or a :class:`Transfer` when a resume is answered 416 (nothing left to send)."""
    check_url(url, allow_http)
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    opener = urllib.request.build_opener(_CheckedRedirects(allow_http))
    try:
        response = opener.open(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            # nothing beyond what we have; "bytes */N" says how big the whole file is
            m = re.match(r"bytes \*/(\d+)", e.headers.get("Content-Range", "") if e.headers else "")
            return Transfer(0, int(m.group(1)) if m else None, offset)
        if 500 <= e.code < 600:
            raise Interrupted(f"HTTP {e.code} {e.reason}") from None
        raise TransferError(f"HTTP error {e.code} ({e.reason}) while downloading {url}") from None
    except urllib.error.URLError as e:
        raise Unreachable(f"cannot reach {url}: {e.reason}") from None
    except (TimeoutError, ConnectionError, http.client.HTTPException) as e:
        raise Interrupted(f"{type(e).__name__}: {e}") from None
    if response.geturl() != url:  # every redirect was checked on the way; this holds whatever urllib did
        try:
            check_url(response.geturl(), allow_http, redirected_from=url)
        except RefusedURL:
            response.close()
            raise
    return response


def transfer(url: str, part: Path, timeout: float, progress: bool | None, *, allow_http: bool) -> Transfer:
    """One request that appends to (or restarts) ``part``; see the module docstring.
    ``progress=None`` shows a bar when standard error is a terminal; ``allow_http`` accepts plain
    ``http://`` for the URL and its redirects (:func:`check_url`), which every caller must decide."""
    offset = part.stat().st_size if part.exists() else 0
    response = _open(url, offset, timeout, allow_http)
    if isinstance(response, Transfer):
        return response
    with response:
        start, total = 0, None
        length = _number(response.headers.get("Content-Length"))
        if offset and response.status == 206:
            m = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                raise TransferError(
                    f"{url}: server answered a resume request with an unexpected Content-Range "
                    f"{response.headers.get('Content-Range')!r}; delete {part} and try again"
                )
            start, total = offset, _number(m.group(2))
        if total is None and length is not None:
            total = start + length
        bar = _progress_bar(total, start, part.name.removesuffix(".part"), progress)
        written = 0
        try:
            with open(part, "ab" if start else "wb") as f:
                while True:
                    try:
                        block = response.read(_CHUNK)
                    except (http.client.IncompleteRead, ConnectionError, TimeoutError, http.client.HTTPException) as e:
                        raise Interrupted(f"{type(e).__name__} after {start + written} bytes") from None
                    if not block:
                        break
                    f.write(block)
                    written += len(block)
                    bar.update(len(block))
                f.flush()
                os.fsync(f.fileno())
        finally:
            bar.close()
    if total is not None and start + written < total:
        raise Interrupted(f"connection closed after {start + written} of {total} bytes")
    return Transfer(written, total, start)

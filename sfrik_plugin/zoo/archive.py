"""Safe extraction of a cached tar(.gz) archive (the official full checkpoint).

* Members are extracted with Python's ``data`` filter: no absolute paths, no ``..``, no links
  out of the target, no devices; anything else is refused.
* Extraction goes to ``<dest>.tmp`` and is renamed when complete, so a half-extracted tree never
  looks like a good one.
* ``<dest>/.extracted-from`` stamps the archive's size and modification time: when the archive is
  replaced (``sfrik-zoo download NAME --force``), the next use extracts it again.
* An archive that cannot be read raises :class:`CorruptCacheError` ("cache file X is corrupt...").

Example::

    >>> folder = extract_archive("ckp.tar.gz", "ckp_extracted", model="sfrik-r50-in1k-200ep-q32768")  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import os
import shutil
import tarfile
import zlib
from pathlib import Path

from .errors import CorruptCacheError, ZooDownloadError

__all__ = ["STAMP", "extract_archive"]

STAMP = ".extracted-from"
# tarfile's refusal of an unsafe member (Python >= 3.10.12 / 3.11.4)
_UNSAFE: type[Exception] = getattr(tarfile, "FilterError", ZooDownloadError)


def _signature(archive: Path) -> str:
    stat = archive.stat()
    return f"{archive.name} {stat.st_size} {stat.st_mtime_ns}\n"


def _extract_checked(archive: Path, tmp: Path) -> None:
    with tarfile.open(archive, "r:*") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.10.12 / 3.11.4
            tar.extractall(tmp, filter="data")  # refuses unsafe members
            return
        for m in tar.getmembers():
            target = (tmp / m.name).resolve()
            if not (m.isfile() or m.isdir()) or not str(target).startswith(str(tmp.resolve()) + os.sep):
                raise ZooDownloadError(f"refusing to extract unsafe archive member {m.name!r} from {archive}")
        tar.extractall(tmp)  # every member checked above: plain files/dirs inside tmp


def extract_archive(archive: str | os.PathLike, dest: str | os.PathLike, *, model: str | None = None) -> Path:
    """Extract ``archive`` into ``dest`` safely (see the module docstring); return ``dest``.

    ``dest`` is reused while its stamp matches the archive; a ``dest`` the zoo did not stamp is
    never deleted (an error asks you to move it away). ``model`` names the zoo model the archive
    belongs to, for the corrupt-cache message.
    """
    archive, dest = Path(archive), Path(dest)
    stamp = dest / STAMP
    if dest.is_dir() and stamp.is_file() and stamp.read_text(encoding="utf-8") == _signature(archive):
        return dest
    if dest.exists() and not stamp.is_file():
        raise ZooDownloadError(f"{dest} exists but was not extracted by sfrik-zoo from {archive}: move it away")
    tmp = dest.with_name(dest.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    try:
        _extract_checked(archive, tmp)
    except _UNSAFE as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ZooDownloadError(f"refusing to extract {archive}: {e}") from None
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        shutil.rmtree(tmp, ignore_errors=True)  # never leave a half-extracted tree behind
        if model is None:
            raise ZooDownloadError(
                f"{archive} is not a readable tar archive ({e}): delete it and download again"
            ) from None
        raise CorruptCacheError(archive, model) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / STAMP).write_text(_signature(archive), encoding="utf-8")
    if dest.exists():
        old = dest.with_name(dest.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(dest, old)
        os.replace(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, dest)
    return dest

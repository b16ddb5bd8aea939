"""Where Fashion-MNIST comes from: a folder the user names, the Debian package, or a verified download.

:func:`fashion_mnist_source` tries, in order:

1. ``data`` (the user's ``--data DIR``): the four idx files (``.gz`` or not; also torchvision's
   ``DIR/FashionMNIST/raw`` layout) or an ImageFolder tree (``DIR/train`` and ``DIR/val`` or
   ``DIR/test``, one sub-folder per class). Which one it is gets detected and checked; a folder
   that is neither is an error, never a silent fallback to other data;
2. the Debian package ``dataset-fashion-mnist`` (``/usr/share/datasets/fashion-mnist``);
3. the download cache (``$SFRIK_DATA_CACHE/fashion-mnist``, default
   ``~/.cache/sfrik-plugin/datasets/fashion-mnist``), filled on first use from
   :data:`FASHION_MNIST_MIRRORS` (or ``$SFRIK_FASHION_MNIST_MIRRORS``) with md5-verified, atomic,
   resumable downloads (:mod:`sfrik_plugin.data.download`) and reused offline afterwards.

With none of them, one :class:`~sfrik_plugin.console.InputError` line says what was tried and
what to do. The expected checksums are a parameter (``checksums=``), not an environment variable:
tests pass their own, a user cannot weaken the check by accident.

Example:
    >>> source = fashion_mnist_source()  # doctest: +SKIP
    >>> source.describe()  # doctest: +SKIP
    'Fashion-MNIST idx files from the Debian package folder /usr/share/datasets/fashion-mnist'
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ..console import InputError, get_logger
from .download import DownloadError, fetch_verified, md5_file
from .idx import read_idx_header

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_MIRRORS",
    "FASHION_MNIST_MD5",
    "IDX_STEMS",
    "MIRRORS_ENV",
    "CACHE_ENV",
    "FashionMNISTSource",
    "fashion_mnist_source",
    "inspect_data_dir",
    "fashion_mnist_cache_dir",
    "fashion_mnist_mirrors",
    "download_fashion_mnist",
]

log = get_logger(__name__)

#: where the Debian package ``dataset-fashion-mnist`` puts the idx files
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: download locations tried in order (base URLs; the file name is appended)
FASHION_MNIST_MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://github.com/zalandoresearch/fashion-mnist/raw/master/data/fashion/",
)

#: md5 of the four original .gz files (the values torchvision's FashionMNIST declares); the
#: Debian package re-compresses them, so its .gz files differ while their content is the same
FASHION_MNIST_MD5: Mapping[str, str] = {
    "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
    "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
    "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
}

#: split -> (images stem, labels stem); a file is ``<stem>.gz`` or ``<stem>``
IDX_STEMS: Mapping[str, tuple[str, str]] = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

#: base URLs replacing :data:`FASHION_MNIST_MIRRORS`, separated by spaces or commas
MIRRORS_ENV = "SFRIK_FASHION_MNIST_MIRRORS"
#: the datasets cache folder (Fashion-MNIST goes to its ``fashion-mnist`` sub-folder)
CACHE_ENV = "SFRIK_DATA_CACHE"
_DEFAULT_CACHE = Path("~/.cache/sfrik-plugin/datasets")

_IDX_LAYOUTS = (".", "raw", "FashionMNIST/raw")  # DIR itself, then torchvision's download layouts
_VAL_NAMES = ("val", "test")
_IDX_NAMES = ", ".join(f"{stem}[.gz]" for pair in IDX_STEMS.values() for stem in pair)
_WHAT_DATA_HOLDS = (
    f"the four Fashion-MNIST idx files ({_IDX_NAMES}) or an ImageFolder tree "
    "(DIR/train and DIR/val or DIR/test, one sub-folder per class)"
)


@dataclass(frozen=True)
class FashionMNISTSource:
    """Where the data is (``path``), in which form (``kind``) and how it was found (``origin``).

    ``kind="idx"``: ``files`` maps each idx stem (:data:`IDX_STEMS`) to its file.
    ``kind="image_folder"``: ``folders`` maps ``"train"`` and ``"val"`` to ImageFolder roots.
    ``origin`` is ``"data"`` (given by the user), ``"system"`` (Debian package), ``"cache"``
    (downloaded earlier) or ``"download"`` (downloaded now).
    """

    kind: Literal["idx", "image_folder"]
    origin: Literal["data", "system", "cache", "download"]
    path: Path
    files: dict[str, Path] = field(default_factory=dict)
    folders: dict[str, Path] = field(default_factory=dict)

    def describe(self) -> str:
        """One line for the log, e.g. "Fashion-MNIST idx files from the download cache ~/.cache/..."."""
        where = {
            "data": "the given folder",
            "system": "the Debian package folder",
            "cache": "the download cache",
            "download": "a fresh download into",
        }[self.origin]
        if self.kind == "image_folder":
            return f"ImageFolder tree from {where} {self.path} (train: {self.folders['train'].name}/, val: {self.folders['val'].name}/)"
        return f"Fashion-MNIST idx files from {where} {self.path}"


def _find_idx_files(folder: Path) -> tuple[dict[str, Path], list[str]]:
    found, missing = {}, []
    for stem in (s for pair in IDX_STEMS.values() for s in pair):
        for candidate in (folder / f"{stem}.gz", folder / stem):
            if candidate.is_file():
                found[stem] = candidate
                break
        else:
            missing.append(stem)
    return found, missing


def _check_idx_files(files: Mapping[str, Path]) -> None:
    """Header-level checks (cheap: a few bytes of each file): shapes, and images matching labels."""
    for split, (images_stem, labels_stem) in IDX_STEMS.items():
        (images, _), (labels, _) = read_idx_header(files[images_stem]), read_idx_header(files[labels_stem])
        if len(images) != 3 or images[1:] != (28, 28):
            raise InputError(
                f"{files[images_stem]} holds an array of shape {images}, not Fashion-MNIST images (N, 28, 28); "
                "replace it with the original file"
            )
        if len(labels) != 1 or labels[0] != images[0]:
            raise InputError(
                f"{files[labels_stem]} holds {labels} labels for the {images[0]} {split} images of "
                f"{files[images_stem].name}; the two files must come from the same Fashion-MNIST release"
            )


def _idx_source(folder: Path, origin: Literal["data", "system", "cache", "download"]) -> FashionMNISTSource | None:
    """The idx files in ``folder`` (checked), None when it holds none of them."""
    found, missing = _find_idx_files(folder)
    if not found:
        return None
    if missing:
        raise InputError(
            f"{folder} holds only some of the Fashion-MNIST idx files: {', '.join(missing)}(.gz) missing; "
            "put all four there (from `apt-get install dataset-fashion-mnist` or the official release)"
        )
    _check_idx_files(found)
    return FashionMNISTSource("idx", origin, folder, files=found)


def inspect_data_dir(data: str | Path, *, option: str = "--data") -> FashionMNISTSource:
    """Tells what a user-given folder holds (idx files or an ImageFolder tree) and checks it.

    ``option`` names the setting in messages. Raises one :class:`InputError` line otherwise.

    Example:
        >>> inspect_data_dir("/usr/share/datasets/fashion-mnist").kind  # doctest: +SKIP
        'idx'
    """
    from .image_folder import check_image_folder

    path = Path(data).expanduser()
    if not path.exists():
        raise InputError(f"{option} {path} does not exist; pass a folder holding {_WHAT_DATA_HOLDS}")
    if not path.is_dir():
        raise InputError(f"{option} {path} is a file, not a folder; pass a folder holding {_WHAT_DATA_HOLDS}")
    for layout in _IDX_LAYOUTS:
        source = _idx_source(path / layout, "data") if (path / layout).is_dir() else None
        if source is not None:
            return source
    train = path / "train"
    if train.is_dir():
        val = next((path / name for name in _VAL_NAMES if (path / name).is_dir()), None)
        if val is None:
            raise InputError(
                f"{option} {path} has a train/ folder but no val/ or test/ folder next to it; add the "
                "evaluation images as DIR/val/<class>/<image> (or DIR/test/...)"
            )
        train_info = check_image_folder(train, role=f"{option} train folder", min_classes=2)
        val_info = check_image_folder(val, role=f"{option} {val.name} folder", min_classes=2)
        if train_info.classes != val_info.classes:
            only_train = sorted(set(train_info.classes) - set(val_info.classes))
            only_val = sorted(set(val_info.classes) - set(train_info.classes))
            raise InputError(
                f"{option} {path}: train/ and {val.name}/ must have the same class folders (only in train/: "
                f"{only_train or 'none'}; only in {val.name}/: {only_val or 'none'}); labels are folder "
                "positions, so rename or add folders to match"
            )
        return FashionMNISTSource("image_folder", "data", path, folders={"train": train, "val": val})
    hint = ""
    if any(entry.is_dir() for entry in path.iterdir()):
        hint = " (if it is one split of an ImageFolder tree, pass its parent holding train/ and val/)"
    raise InputError(f"{option} {path} holds neither {_WHAT_DATA_HOLDS}{hint}")


def fashion_mnist_cache_dir() -> Path:
    """The download cache of Fashion-MNIST: ``$SFRIK_DATA_CACHE/fashion-mnist`` or ``~/.cache/sfrik-plugin/datasets/fashion-mnist``.

    Example:
        >>> fashion_mnist_cache_dir().name
        'fashion-mnist'
    """
    root = os.environ.get(CACHE_ENV)
    return (Path(root) if root else _DEFAULT_CACHE).expanduser() / "fashion-mnist"


def fashion_mnist_mirrors() -> tuple[str, ...]:
    """Base URLs to download from: ``$SFRIK_FASHION_MNIST_MIRRORS`` if set, else :data:`FASHION_MNIST_MIRRORS`.

    Example (with ``SFRIK_FASHION_MNIST_MIRRORS="http://127.0.0.1:8000/fm/ http://mirror.example/fm"``):
        >>> fashion_mnist_mirrors()  # doctest: +SKIP
        ('http://127.0.0.1:8000/fm/', 'http://mirror.example/fm')
    """
    value = os.environ.get(MIRRORS_ENV, "").replace(",", " ").split()
    for url in value:
        if not url.startswith(("http://", "https://")):
            raise InputError(
                f"{MIRRORS_ENV} holds {url!r}, which is not an http(s) URL; set it to base URLs separated by "
                "spaces (the file names are appended), or unset it"
            )
    return tuple(value) if value else tuple(FASHION_MNIST_MIRRORS)


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """Serialises downloads into ``folder`` between processes (e.g. several ranks starting at once)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # not POSIX: the .part/rename scheme alone still keeps final files whole
        yield
        return
    with open(folder / ".download.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _cached(folder: Path, checksums: Mapping[str, str]) -> bool:
    """Whether ``folder`` holds every file with its expected md5 (a bad one is deleted, to be fetched again)."""
    complete = True
    for name, md5 in checksums.items():
        path = folder / name
        if not path.is_file():
            complete = False
        elif md5_file(path) != md5:
            log.warning("%s does not have the expected md5 %s; downloading it again", path, md5)
            path.unlink()
            complete = False
    return complete


def download_fashion_mnist(
    dest: str | Path | None = None,
    *,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    retries: int = 2,
    progress: bool | None = None,
) -> Path:
    """Downloads the four .gz files into ``dest`` (default :func:`fashion_mnist_cache_dir`), md5-verified.

    Files already there with the right md5 are kept; raises
    :class:`~sfrik_plugin.data.download.DownloadError` (or its ``ChecksumMismatchError``) naming
    the file and what each mirror did. ``checksums`` replaces :data:`FASHION_MNIST_MD5` (tests).

    Example:
        >>> download_fashion_mnist()  # doctest: +SKIP
        PosixPath('/home/me/.cache/sfrik-plugin/datasets/fashion-mnist')
    """
    folder = Path(dest).expanduser() if dest is not None else fashion_mnist_cache_dir()
    checksums = FASHION_MNIST_MD5 if checksums is None else checksums
    bases = tuple(mirrors) if mirrors is not None else fashion_mnist_mirrors()
    with _locked(folder):
        if _cached(folder, checksums):
            return folder
        for name, md5 in checksums.items():
            if not (folder / name).is_file():
                log.info("downloading %s into %s", name, folder)
                urls = [base.rstrip("/") + "/" + name for base in bases]
                fetch_verified(urls, folder / name, md5, timeout=timeout, retries=retries, progress=progress)
    return folder


def fashion_mnist_source(
    data: str | Path | None = None,
    *,
    download: bool = True,
    cache_dir: str | Path | None = None,
    system_dir: str | Path | None = None,
    mirrors: Sequence[str] | None = None,
    checksums: Mapping[str, str] | None = None,
    option: str = "--data",
) -> FashionMNISTSource:
    """Finds Fashion-MNIST: ``data`` if given, else the Debian package, else the download cache (filled if needed).

    ``download=False`` forbids network access (a filled cache is still used). ``cache_dir``
    replaces :func:`fashion_mnist_cache_dir`, ``system_dir`` the Debian folder, ``mirrors`` the
    mirror list and ``checksums`` the md5 table (tests). ``option`` names the user's setting in
    messages. Raises one :class:`InputError` line when nothing is available.

    Example:
        >>> fashion_mnist_source().describe()  # doctest: +SKIP
        'Fashion-MNIST idx files from the Debian package folder /usr/share/datasets/fashion-mnist'
        >>> fashion_mnist_source("~/images").kind  # doctest: +SKIP
        'image_folder'
    """
    if data is not None and str(data) != "":
        source = inspect_data_dir(data, option=option)
        log.info("using %s", source.describe())
        return source

    tried = [f"no {option} folder was given"]
    system = FASHION_MNIST_DIR if system_dir is None else Path(system_dir)
    if system.is_dir():
        try:
            found = _idx_source(system, "system")
        except InputError as error:  # a damaged install should not hide a working download
            log.warning("ignoring %s: %s", system, error)
            found, reason = None, f"{system} is unusable ({error})"
        else:
            reason = f"{system} holds no idx files"
        if found is not None:
            log.info("using %s", found.describe())
            return found
        tried.append(reason)
    else:
        tried.append(f"{system} does not exist (Debian package dataset-fashion-mnist not installed)")

    folder = Path(cache_dir).expanduser() if cache_dir is not None else fashion_mnist_cache_dir()
    table = FASHION_MNIST_MD5 if checksums is None else checksums
    if folder.is_dir() and _cached(folder, table):
        found = _idx_source(folder, "cache")
        if found is not None:
            log.info("using %s", found.describe())
            return found
    if not download:
        tried.append(f"the download cache {folder} is not filled and downloading is disabled")
    else:
        try:
            download_fashion_mnist(folder, mirrors=mirrors, checksums=table)
        except (DownloadError, OSError) as error:
            tried.append(f"downloading into {folder} failed: {' '.join(str(error).split())}")
        else:
            found = _idx_source(folder, "download")
            if found is not None:
                log.info("using %s", found.describe())
                return found
            tried.append(f"{folder} holds no idx files after the download")  # a checksum table without them
    bases = tuple(mirrors) if mirrors is not None else fashion_mnist_mirrors()
    raise InputError(
        "no Fashion-MNIST data available: "
        + "; ".join(tried)
        + ". Do one of: install the Debian package (sudo apt-get install dataset-fashion-mnist); or pass "
        + f"{option} DIR with {_WHAT_DATA_HOLDS}; or allow network access to {', '.join(bases)} "
        + f"(or set {MIRRORS_ENV}) and run again"
    )

"""ImageFolder trees: listing classes and images, checking a tree before training, decoding safely.

An ImageFolder tree (torchvision's ``ImageFolder``, solo-learn's ``custom`` dataset) holds one
sub-folder per class and image files below them; labels are the class folders in sorted order.
This module is the one place that lists classes and image files (:func:`list_classes`,
:func:`class_files`, with torchvision's rules), and it turns the ways such a tree goes wrong into
one-line :class:`~sfrik_plugin.console.InputError` messages, *before* a launcher builds a model:
:func:`check_image_folder` for the tree, :func:`load_rgb_image` (an ImageFolder ``loader``) for a
file that does not decode, which otherwise surfaces as a PIL traceback from a DataLoader worker.

Example:
    >>> check_image_folder("/data/imagenet/train", role="data.train_path")  # doctest: +SKIP
    ImageFolderInfo(path=PosixPath('/data/imagenet/train'), classes=('n01440764', ...))
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..console import InputError

__all__ = [
    "IMAGE_EXTENSIONS",
    "is_image_file",
    "list_classes",
    "class_files",
    "ImageFolderInfo",
    "check_image_folder",
    "ImageDecodeError",
    "load_rgb_image",
    "install_checked_loader",
]

#: the extensions torchvision's ImageFolder accepts (compared in lower case)
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_EXAMPLE_NAMES = 5  # how many offending names a message quotes before "and N more"


def is_image_file(name: str | os.PathLike) -> bool:
    """Whether ImageFolder would take this file name as an image (by its extension, any case).

    Example:
        >>> is_image_file("a/B.JPG"), is_image_file("notes.txt")
        (True, False)
    """
    return str(name).lower().endswith(IMAGE_EXTENSIONS)


def _names(items: Iterable[str]) -> str:
    items = list(items)
    quoted = ", ".join(repr(x) for x in items[:_EXAMPLE_NAMES])
    return quoted + (f" and {len(items) - _EXAMPLE_NAMES} more" if len(items) > _EXAMPLE_NAMES else "")


def _sub_folders(root: Path) -> list[str]:
    # entry.is_dir() follows symbolic links, as torchvision's class discovery does
    with os.scandir(root) as entries:
        return sorted(entry.name for entry in entries if entry.is_dir())


def list_classes(root: str | Path) -> list[str]:
    """Class folder names of an ImageFolder root, sorted: label ``i`` is ``list_classes(root)[i]``.

    Example:
        >>> list_classes("/data/pets/train")  # doctest: +SKIP
        ['cat', 'dog']
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; pass an ImageFolder root (one sub-folder per class)")
    classes = _sub_folders(root)
    if not classes:
        raise InputError(
            f"{root} has no class sub-folders; an ImageFolder needs one folder per class ({root}/<class>/<image>)"
        )
    return classes


def _walk_images(folder: Path) -> Iterable[str]:
    """Image files below ``folder`` as relative paths, folder by folder (symbolic links followed)."""
    for current, dirs, names in os.walk(folder, followlinks=True):
        dirs.sort()
        rel = Path(current).relative_to(folder)
        for name in sorted(names):
            if is_image_file(name):
                yield name if rel == Path(".") else str(rel / name)


def class_files(root: str | Path, cls: str) -> list[str]:
    """Image files of one class, as paths relative to the class folder, sorted (sub-folders included).

    Example:
        >>> class_files("/data/pets/train", "cat")[:2]  # doctest: +SKIP
        ['cat_001.jpg', 'cat_002.jpg']
    """
    return sorted(_walk_images(Path(root) / cls))


def _has_image(folder: Path) -> bool:
    # stops at the first image: checking ImageNet must not walk its 1.3 million files twice
    return next(iter(_walk_images(folder)), None) is not None


@dataclass(frozen=True)
class ImageFolderInfo:
    """What :func:`check_image_folder` found: the folder and its classes (empty when unlabelled)."""

    path: Path
    classes: tuple[str, ...]


def check_image_folder(
    path: str | Path, *, role: str = "data.train_path", min_classes: int = 2, labelled: bool = True
) -> ImageFolderInfo:
    """Checks that ``path`` is usable image data, or raises one :class:`InputError` line saying what to fix.

    ``role`` names the setting the path came from (it starts every message). With ``labelled``
    (an ImageFolder, solo-learn's default), ``path`` needs at least ``min_classes`` class
    sub-folders, each holding image files. Unlabelled data (solo-learn's ``data.no_labels=true``)
    is read entry by entry from the top of the folder, so it must hold image files and nothing else.

    Example:
        >>> check_image_folder("/data/pets/train", role="data.train_path").classes  # doctest: +SKIP
        ('cat', 'dog')
        >>> check_image_folder("/data/one-class", min_classes=2)  # doctest: +SKIP
        InputError: data.train_path /data/one-class has only 1 class ('cat'); a classifier needs at least 2 classes ...
    """
    path = Path(path)
    layout = f"{path}/<class>/<image>" if labelled else f"{path}/<image>"
    if not path.exists():
        what = "is a broken symbolic link" if path.is_symlink() else "does not exist"
        raise InputError(f"{role} {path} {what}; pass an existing folder of images ({layout})")
    if not path.is_dir():
        raise InputError(f"{role} {path} is a file, not a folder; pass the folder that holds the images ({layout})")
    with os.scandir(path) as entries:
        top = sorted((entry.name, entry.is_dir()) for entry in entries)
    if not top:
        raise InputError(f"{role} {path} is empty; put the images in it ({layout})")
    images = [name for name, is_dir in top if not is_dir and is_image_file(name)]
    folders = [name for name, is_dir in top if is_dir]
    extensions = " ".join(IMAGE_EXTENSIONS)

    if not labelled:
        if not images:
            where = (
                f" (it has sub-folders {_names(folders)}: for class folders set data.no_labels=false)"
                if folders
                else ""
            )
            raise InputError(
                f"{role} {path} holds no image files at its top level{where}; unlabelled data must be image "
                f"files ({extensions}) directly inside the folder"
            )
        others = [name + ("/" if is_dir else "") for name, is_dir in top if is_dir or not is_image_file(name)]
        if others:
            raise InputError(
                f"{role} {path} holds entries that are not images: {_names(others)}; unlabelled data is read "
                "entry by entry, so move them out of the folder"
            )
        return ImageFolderInfo(path, ())

    if not folders:
        found = f"{len(images)} image file(s)" if images else f"no image files (only {_names(n for n, _ in top)})"
        raise InputError(
            f"{role} {path} holds {found} and no class sub-folders; labelled data needs one sub-folder per class "
            f"({layout}, extensions {extensions})"
        )
    empty = [name for name in folders if not _has_image(path / name)]
    if len(empty) == len(folders):
        raise InputError(
            f"{role} {path} has {len(folders)} class folder(s) ({_names(folders)}) but no image files in them; "
            f"put the images in the class folders ({layout}, extensions {extensions})"
        )
    if empty:
        raise InputError(
            f"{role} {path}: class folder(s) without image files: {_names(empty)}; add images to them or remove "
            f"them (ImageFolder refuses empty classes; extensions {extensions})"
        )
    if len(folders) < min_classes:
        if len(folders) == 1:
            raise InputError(
                f"{role} {path} has only 1 class ({folders[0]!r}); a classifier needs at least 2 classes, "
                f"add one sub-folder per class ({layout})"
            )
        raise InputError(
            f"{role} {path} has {len(folders)} classes ({_names(folders)}); at least {min_classes} are needed, "
            f"add one sub-folder per class ({layout})"
        )
    return ImageFolderInfo(path, tuple(folders))


class ImageDecodeError(InputError):
    """An image file that PIL cannot decode; the message names the file and the reason.

    It takes a single message argument because a DataLoader worker re-raises an exception as
    ``type(error)(text)``, where ``text`` is the worker's whole traceback; from that text only the
    original one-line message is kept (the full text stays in :attr:`details`).
    """

    def __init__(self, message: str) -> None:
        self.details = message
        marker = f"{type(self).__name__}: "
        if "\n" in message and marker in message:
            message = message.rsplit(marker, 1)[1].strip().splitlines()[0]
        super().__init__(message)


def load_rgb_image(path: str | os.PathLike) -> Any:
    """Opens an image as RGB (a PIL image); an undecodable file raises :class:`ImageDecodeError`.

    A drop-in ``loader=`` for torchvision's ImageFolder (see :func:`install_checked_loader`).

    Example:
        >>> load_rgb_image("/data/pets/train/cat/cat_001.jpg").mode  # doctest: +SKIP
        'RGB'
        >>> load_rgb_image("/data/pets/train/cat/broken.jpg")  # doctest: +SKIP
        ImageDecodeError: cannot decode image /data/pets/train/cat/broken.jpg (UnidentifiedImageError: ...); ...
    """
    from PIL import Image

    try:
        with open(path, "rb") as f:
            image = Image.open(f)
            return image.convert("RGB")  # decodes now, while the file is open, so errors surface here
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        reason = " ".join(f"{type(exc).__name__}: {exc}".split())
        raise ImageDecodeError(
            f"cannot decode image {path} ({reason}); delete or replace this file (or re-save it as PNG/JPEG)"
        ) from exc


def _inner(dataset: Any) -> Sequence[Any]:
    inner = [getattr(dataset, "dataset", None)]  # Subset, solo-learn and Lightning wrappers
    inner += list(getattr(dataset, "datasets", None) or [])  # ConcatDataset
    return [d for d in inner if d is not None]


def install_checked_loader(dataset: Any) -> int:
    """Makes ``dataset`` (and every dataset it wraps) load images with :func:`load_rgb_image`.

    Works on anything with a ``loader`` attribute (torchvision ImageFolder / DatasetFolder and
    their subclasses), also inside ``Subset`` / ``ConcatDataset`` and wrappers exposing ``.dataset``.
    Returns how many datasets were changed; raises ``TypeError`` when none has a ``loader``.

    Example:
        >>> from torchvision.datasets import ImageFolder  # doctest: +SKIP
        >>> install_checked_loader(ImageFolder("/data/pets/train"))  # doctest: +SKIP
        1
    """
    changed, seen, stack = 0, set(), [dataset]
    while stack:
        current = stack.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        if hasattr(current, "loader"):
            current.loader = load_rgb_image
            changed += 1
        stack.extend(_inner(current))
    if not changed:
        raise TypeError(
            f"{type(dataset).__name__} has no `loader` attribute, nor does any dataset it wraps; "
            "install_checked_loader fits torchvision ImageFolder / DatasetFolder datasets"
        )
    return changed

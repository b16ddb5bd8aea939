"""Dataset preparation: Fashion-MNIST, from wherever it is, as an ImageFolder tree ``train/`` + ``val/``.

solo-learn's ``custom`` dataset is a torchvision ``ImageFolder``: one sub-folder per class, one
image file per sample. :func:`prepare_fashion_mnist` writes such a tree from the Fashion-MNIST
idx files found by :func:`~sfrik_plugin.data.fashion_mnist_sources.fashion_mnist_source` (the
user's ``--data`` folder, the Debian package ``dataset-fashion-mnist``, or a verified download),
or, when ``--data`` is already an ImageFolder tree, uses it as it is (linking a per-class subset
when per-class counts are asked for).

Everything here is deterministic: the same arguments always select the same images and write the
same bytes, and a finished tree is recognised (through a small ``prepared.json`` stamp) and reused.

Example:
    >>> paths = prepare_fashion_mnist("work/data", train_per_class=100, val_per_class=50)  # doctest: +SKIP
    >>> paths["train"], paths["val"]  # doctest: +SKIP
    (PosixPath('work/data/train'), PosixPath('work/data/val'))
"""

from __future__ import annotations

import hashlib
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np

from ..console import InputError, get_logger
from ..files.records import read_json, write_json
from .fashion_mnist_sources import FASHION_MNIST_DIR as FASHION_MNIST_DIR
from .fashion_mnist_sources import IDX_STEMS, FashionMNISTSource, fashion_mnist_source
from .idx import read_idx as read_idx
from .image_folder import class_files, list_classes
from .splits import write_symlink_tree

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "read_idx",
    "resolve_source",
    "load_fashion_mnist",
    "per_class_subset",
    "write_image_folder",
    "prepare_fashion_mnist",
]

log = get_logger(__name__)

#: class index -> folder name (index-prefixed so ImageFolder's alphabetical order keeps label ids)
FASHION_MNIST_CLASSES = (
    "0_tshirt_top",
    "1_trouser",
    "2_pullover",
    "3_dress",
    "4_coat",
    "5_sandal",
    "6_shirt",
    "7_sneaker",
    "8_bag",
    "9_ankle_boot",
)

_STAMP = "prepared.json"
_SPLITS = (("train", "train"), ("test", "val"))  # idx split -> folder of the prepared tree

#: what ``source=`` accepts: a resolved source, a ``--data`` folder, or None (find one)
Source: TypeAlias = "FashionMNISTSource | str | Path | None"


def resolve_source(source: Source = None) -> FashionMNISTSource:
    """``source`` as a :class:`FashionMNISTSource`: None finds one, a path is checked as ``--data``.

    Example:
        >>> resolve_source("/usr/share/datasets/fashion-mnist").kind  # doctest: +SKIP
        'idx'
    """
    if isinstance(source, FashionMNISTSource):
        return source
    return fashion_mnist_source(source)


def load_fashion_mnist(split: str = "train", source: Source = None) -> tuple[np.ndarray, np.ndarray]:
    """Returns ``(images uint8 [N, 28, 28], labels int64 [N])`` for split "train" or "test".

    Example:
        >>> images, labels = load_fashion_mnist("test")  # doctest: +SKIP
        >>> images.shape, labels[:3].tolist()  # doctest: +SKIP
        ((10000, 28, 28), [9, 2, 1])
    """
    if split not in IDX_STEMS:
        raise ValueError(f"split must be one of {sorted(IDX_STEMS)}, got {split!r}")
    src = resolve_source(source)
    if src.kind != "idx":
        raise InputError(f"{src.path} is an ImageFolder tree, not idx files; read it with torchvision's ImageFolder")
    images_stem, labels_stem = IDX_STEMS[split]
    images = read_idx(src.files[images_stem])
    labels = read_idx(src.files[labels_stem]).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise InputError(
            f"inconsistent Fashion-MNIST files in {src.path}: images {images.shape} vs labels {labels.shape}; "
            "replace them with the original files"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(FASHION_MNIST_CLASSES)):
        raise InputError(
            f"{src.files[labels_stem]} holds label {int(labels.max())} (or {int(labels.min())}); Fashion-MNIST "
            f"labels are 0..{len(FASHION_MNIST_CLASSES) - 1}, so this is another dataset: replace the files"
        )
    return images, labels


def per_class_subset(
    labels: Sequence[int] | np.ndarray, per_class: int | None, seed: int = 0, class_names: Sequence[str] | None = None
) -> np.ndarray:
    """Indices of a class-balanced subset: ``per_class`` samples of every class, sorted.

    The choice is a seeded random permutation inside each class, so it is deterministic and
    does not depend on the order in which classes appear. ``per_class=None`` keeps everything.
    Raises :class:`InputError` (naming the class, via ``class_names`` if given) when a class has
    fewer than ``per_class`` samples.

    Example:
        >>> chosen = per_class_subset([0, 1, 0, 1, 0, 1], 2, seed=0)
        >>> len(chosen), sorted(int(y) for y in np.asarray([0, 1, 0, 1, 0, 1])[chosen])
        (4, [0, 0, 1, 1])
    """
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(labels.shape[0])
    if per_class <= 0:
        raise InputError(f"images per class must be positive, got {per_class}")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if idx.size < per_class:
            name = f"class {c}" if class_names is None else f"class {class_names[int(c)]!r}"
            raise InputError(
                f"{name} has only {idx.size} samples, {per_class} requested; ask for at most {idx.size} per class"
            )
        chosen.append(np.sort(rng.permutation(idx)[:per_class]))
    return np.sort(np.concatenate(chosen)) if chosen else np.zeros(0, dtype=np.int64)


def write_image_folder(
    root: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    indices: Sequence[int] | np.ndarray | None = None,
    progress: bool | None = None,
) -> int:
    """Writes ``images[indices]`` as PNG files ``root/<class_name>/<index:05d>.png``; returns the count.

    Every class gets a folder even when it receives no image, so ImageFolder label ids are stable.
    ``progress=None`` shows a progress bar when standard error is a terminal.

    Example:
        >>> write_image_folder("out/val", images, labels, FASHION_MNIST_CLASSES, [0, 1, 2])  # doctest: +SKIP
        3
    """
    from PIL import Image  # Pillow is a torchvision dependency
    from tqdm.auto import tqdm

    root = Path(root)
    for name in class_names:
        (root / name).mkdir(parents=True, exist_ok=True)
    indices = np.arange(len(labels)) if indices is None else np.asarray(indices)
    enabled = sys.stderr.isatty() if progress is None else progress
    log.info("writing %d images to %s", len(indices), root)
    for i in tqdm(indices, desc=f"writing {root.name}", unit="img", file=sys.stderr, disable=not enabled):
        img = Image.fromarray(np.ascontiguousarray(images[i]))
        img.save(root / class_names[int(labels[i])] / f"{int(i):05d}.png", optimize=False)
    return int(len(indices))


def _clear(paths: Sequence[Path]) -> None:
    for p in paths:
        if p.is_symlink() or p.is_file():
            p.unlink()
        elif p.is_dir():
            shutil.rmtree(p)


def _overlap(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def _labels_fingerprint(src: FashionMNISTSource) -> str:
    # the labels identify the release (and tell MNIST from Fashion-MNIST) whatever the compression:
    # the Debian files and the downloaded ones give the same value, so either reuses the other's tree
    digest = hashlib.md5(usedforsecurity=False)
    for _, labels_stem in IDX_STEMS.values():
        digest.update(read_idx(src.files[labels_stem]).tobytes())
    return digest.hexdigest()


def _reusable(stamp: Path, settings: dict[str, Any], force: bool) -> bool:
    return not force and read_json(stamp) == settings


def _prepare_idx(root: Path, src: FashionMNISTSource, counts: dict[str, int | None], seed: int, force: bool):
    paths = {"train": root / "train", "val": root / "val"}
    settings = {
        "dataset": "fashion-mnist",
        "train_per_class": counts["train"],
        "val_per_class": counts["val"],
        "seed": seed,
        "classes": list(FASHION_MNIST_CLASSES),
        "source": {"kind": "idx", "labels_md5": _labels_fingerprint(src)},
    }
    stamp = root / _STAMP
    if _reusable(stamp, settings, force):
        return paths
    _clear([stamp, *paths.values()])
    for split, folder in _SPLITS:
        images, labels = load_fashion_mnist(split, src)
        idx = per_class_subset(labels, counts[folder], seed=seed, class_names=FASHION_MNIST_CLASSES)
        write_image_folder(paths[folder], images, labels, FASHION_MNIST_CLASSES, idx)
    write_json(stamp, settings)  # last: its presence means the tree is complete
    return paths


def _prepare_linked(root: Path, src: FashionMNISTSource, counts: dict[str, int | None], seed: int, force: bool):
    """A per-class subset of an ImageFolder ``--data`` tree, as symbolic links (images are not copied)."""
    paths = {"train": root / "train", "val": root / "val"}
    for out in paths.values():
        for name, given in src.folders.items():
            if _overlap(out, given):
                raise InputError(
                    f"the data folder {given} ({name}) and the output {out} overlap, and preparing a subset "
                    "rewrites the output; choose another output folder or pass a copy of the data"
                )
    classes = list_classes(src.folders["train"])
    settings = {
        "dataset": "image-folder",
        "train_per_class": counts["train"],
        "val_per_class": counts["val"],
        "seed": seed,
        "classes": classes,
        "source": {"kind": "image_folder", **{k: str(v.resolve()) for k, v in src.folders.items()}},
    }
    stamp = root / _STAMP
    if _reusable(stamp, settings, force):
        return paths
    _clear([stamp, *paths.values()])
    for folder, given in src.folders.items():
        files = [(label, cls, name) for label, cls in enumerate(classes) for name in class_files(given, cls)]
        labels = [label for label, _, _ in files]
        idx = per_class_subset(labels, counts[folder], seed=seed, class_names=classes)
        chosen: dict[str, list[str]] = {cls: [] for cls in classes}
        for i in idx:
            _, cls, name = files[int(i)]
            chosen[cls].append(name)
        log.info("linking %d images of %s into %s", len(idx), given, paths[folder])
        write_symlink_tree(given, chosen, paths[folder])
    write_json(stamp, settings)
    return paths


def prepare_fashion_mnist(
    root: str | Path,
    train_per_class: int | None = 500,
    val_per_class: int | None = 100,
    seed: int = 0,
    source: Source = None,
    force: bool = False,
) -> dict[str, Path]:
    """Fashion-MNIST as a solo-learn ``custom`` dataset: returns ``{"train": folder, "val": folder}``.

    ``source`` is anything :func:`fashion_mnist_source` returns, a ``--data`` folder, or None (find
    the data: Debian package, else download cache). From idx files, ``root/train`` comes from the
    official training split and ``root/val`` from the official test split, each with a
    class-balanced, seeded subset of ``*_per_class`` images (``None`` = all of them) written as PNG.
    An ImageFolder source is used as it is when both counts are None, else its per-class subset is
    linked under ``root``. A tree already prepared with the same arguments and data is reused; one
    prepared with others (or half written) is rebuilt; ``force`` always rebuilds.

    Example:
        >>> prepare_fashion_mnist("work/data", 100, 50, source=fashion_mnist_source("~/fm-idx"))  # doctest: +SKIP
        {'train': PosixPath('work/data/train'), 'val': PosixPath('work/data/val')}
    """
    root = Path(root)
    src = resolve_source(source)
    counts = {"train": train_per_class, "val": val_per_class}
    if src.kind == "image_folder":
        if train_per_class is None and val_per_class is None:
            return dict(src.folders)
        return _prepare_linked(root, src, counts, seed, force)
    return _prepare_idx(root, src, counts, seed, force)

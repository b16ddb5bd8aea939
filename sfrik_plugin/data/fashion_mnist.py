"""Dataset preparation: turn the Fashion-MNIST idx files into an ImageFolder tree.

solo-learn's ``custom`` dataset is a torchvision ``ImageFolder``: one sub-folder per class, one
image file per sample. This module writes such a tree from the IDX files the Debian package
``dataset-fashion-mnist`` installs under ``/usr/share/datasets/fashion-mnist``, so that a CPU
demo can run on real images without any download at run time.

Everything here is deterministic: the same arguments always select the same images and write the
same bytes, and a finished tree is recognised (through a small ``prepared.json`` stamp) and reused.
Only numpy and Pillow are needed; nothing here imports torch or solo-learn.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = [
    "FASHION_MNIST_DIR",
    "FASHION_MNIST_CLASSES",
    "read_idx",
    "load_fashion_mnist",
    "per_class_subset",
    "write_image_folder",
    "prepare_fashion_mnist",
]

#: where the Debian package ``dataset-fashion-mnist`` puts the idx files
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

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

_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}

# IDX type codes -> numpy big-endian dtypes
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

_STAMP = "prepared.json"


def _open(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (optionally gzip-compressed) into a numpy array of its declared shape."""
    path = Path(path)
    with _open(path) as f:
        header = f.read(4)
        if len(header) != 4 or header[0] != 0 or header[1] != 0:
            raise ValueError(f"{path} is not an IDX file (bad magic number {header!r})")
        type_code, ndim = header[2], header[3]
        if type_code not in _IDX_DTYPES:
            raise ValueError(f"{path}: unknown IDX element type 0x{type_code:02x}")
        shape = struct.unpack(f">{ndim}I", f.read(4 * ndim))
        dtype = np.dtype(_IDX_DTYPES[type_code])
        data = f.read()
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{path}: expected {expected} bytes of data for shape {shape}, got {len(data)}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))


def _find(source: Path, stem: str) -> Path:
    for candidate in (source / f"{stem}.gz", source / stem):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(
        f"Fashion-MNIST file {stem}(.gz) not found in {source}. On Debian/Ubuntu install it with "
        "`apt-get install dataset-fashion-mnist` (files land in /usr/share/datasets/fashion-mnist), "
        "or pass the folder holding the four idx files."
    )


def load_fashion_mnist(split: str = "train", source: str | Path = FASHION_MNIST_DIR):
    """Returns ``(images uint8 [N, 28, 28], labels int64 [N])`` for split "train" or "test"."""
    if split not in _FILES:
        raise ValueError(f"split must be one of {sorted(_FILES)}, got {split!r}")
    source = Path(source)
    images_stem, labels_stem = _FILES[split]
    images = read_idx(_find(source, images_stem))
    labels = read_idx(_find(source, labels_stem)).astype(np.int64)
    if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
        raise ValueError(f"inconsistent Fashion-MNIST files in {source}: {images.shape} vs {labels.shape}")
    return images, labels


def per_class_subset(labels: Sequence[int], per_class: int | None, seed: int = 0) -> np.ndarray:
    """Indices of a class-balanced subset: ``per_class`` samples of every class, sorted.

    The choice is a seeded random permutation inside each class, so it is deterministic and
    does not depend on the order in which classes appear. ``per_class=None`` keeps everything.
    Raises ``ValueError`` when a class has fewer than ``per_class`` samples.
    """
    labels = np.asarray(labels)
    if per_class is None:
        return np.arange(labels.shape[0])
    if per_class <= 0:
        raise ValueError(f"per_class must be positive, got {per_class}")
    rng = np.random.default_rng(seed)
    chosen = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        if idx.size < per_class:
            raise ValueError(f"class {c} has only {idx.size} samples, {per_class} requested")
        chosen.append(np.sort(rng.permutation(idx)[:per_class]))
    return np.sort(np.concatenate(chosen))


def write_image_folder(
    root: str | Path,
    images: np.ndarray,
    labels: np.ndarray,
    class_names: Sequence[str],
    indices: Sequence[int] | None = None,
) -> int:
    """Writes ``images[indices]`` as PNG files ``root/<class_name>/<index:05d>.png``.

    Every class gets a folder even when it receives no image, so ImageFolder label ids are stable.
    Returns the number of images written.
    """
    from PIL import Image  # Pillow is a torchvision dependency

    root = Path(root)
    for name in class_names:
        (root / name).mkdir(parents=True, exist_ok=True)
    indices = np.arange(len(labels)) if indices is None else np.asarray(indices)
    for i in indices:
        img = Image.fromarray(np.ascontiguousarray(images[i]))
        img.save(root / class_names[int(labels[i])] / f"{int(i):05d}.png", optimize=False)
    return int(len(indices))


def prepare_fashion_mnist(
    root: str | Path,
    train_per_class: int | None = 500,
    val_per_class: int | None = 100,
    seed: int = 0,
    source: str | Path = FASHION_MNIST_DIR,
    force: bool = False,
) -> dict[str, Path]:
    """Writes Fashion-MNIST as a solo-learn ``custom`` dataset: ``root/train`` and ``root/val``.

    ``train`` comes from the official training split, ``val`` from the official test split,
    each with a class-balanced subset of ``*_per_class`` images (``None`` = all of them).
    A tree already prepared with the same arguments is reused; a tree prepared with other
    arguments (or a half-written one) is rebuilt.

    Returns ``{"train": path, "val": path}``.
    """
    root = Path(root)
    settings = {
        "dataset": "fashion-mnist",
        "train_per_class": train_per_class,
        "val_per_class": val_per_class,
        "seed": seed,
        "classes": list(FASHION_MNIST_CLASSES),
    }
    paths = {"train": root / "train", "val": root / "val"}
    stamp = root / _STAMP
    if not force and stamp.exists():
        try:
            if json.loads(stamp.read_text()) == settings:
                return paths
        except ValueError:
            pass
    for p in list(paths.values()) + [stamp]:
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()

    for split, folder, per_class in (("train", "train", train_per_class), ("test", "val", val_per_class)):
        images, labels = load_fashion_mnist(split, source)
        idx = per_class_subset(labels, per_class, seed=seed)
        write_image_folder(paths[folder], images, labels, FASHION_MNIST_CLASSES, idx)

    # the stamp is written last: its presence means the tree is complete
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps(settings, indent=2, sort_keys=True))
    os.replace(tmp, stamp)
    return paths

"""A whole image dataset as one uint8 tensor, and index batches drawn from it, for fast CPU pretraining.

solo-learn's pretraining loader decodes every image file again at every epoch. For small images
(Fashion-MNIST, CIFAR-sized folders) decoding and per-image Python work dominate a CPU step, so this
module decodes each file ONCE into :class:`TensorImages` (``images`` uint8 ``[N, C, H, W]``,
``targets`` int64 ``[N]``), optionally through an ``.npz`` cache, and :class:`IndexBatchSampler`
yields batches of indices into it, shuffled by a seeded generator that :meth:`~IndexBatchSampler.set_epoch`
resets (the same order for the same ``(seed, epoch)``).

Sample order and class ids are those of torchvision's ``ImageFolder`` (which solo-learn's ``custom``
dataset is), so an index here names the same image as an index in solo-learn's batches.

Example:
    >>> import numpy as np
    >>> data = from_arrays(np.zeros((10, 28, 28), np.uint8), np.arange(10) % 2)
    >>> data.images.shape, data.targets.tolist()[:4]
    (torch.Size([10, 3, 28, 28]), [0, 1, 0, 1])
    >>> sampler = IndexBatchSampler(len(data), batch_size=4, seed=0)
    >>> [len(b) for b in sampler]
    [4, 4]
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..console import InputError, get_logger
from .image_folder import load_rgb_image
from .seeds import epoch_seed

__all__ = [
    "TensorImages",
    "from_arrays",
    "fashion_mnist_images",
    "load_image_folder",
    "folder_key",
    "epoch_seed",
    "IndexBatchSampler",
]

log = get_logger(__name__)

_CACHE_FORMAT = 1  # bump when the .npz layout changes: older caches are then rebuilt


@dataclass(frozen=True)
class TensorImages:
    """Decoded images ``uint8 [N, C, H, W]`` (RGB: C = 3), ``targets`` int64 ``[N]`` and class names.

    Indexing gives ``(index, image, target)``, so it can also serve as a map-style dataset.
    """

    images: torch.Tensor
    targets: torch.Tensor
    classes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise InputError(
                f"images must be a uint8 tensor [N, C, H, W], got {self.images.dtype} of shape {tuple(self.images.shape)}"
            )
        if self.targets.shape != (self.images.shape[0],):
            raise InputError(
                f"targets must have shape ({self.images.shape[0]},) to match the images, got {tuple(self.targets.shape)}"
            )

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor, int]:
        return index, self.images[index], int(self.targets[index])


def _as_rgb_nchw(images: np.ndarray) -> np.ndarray:
    """``[N, H, W]`` (grey), ``[N, H, W, 1]`` or ``[N, H, W, 3]`` uint8 -> ``[N, 3, H, W]``; grey is
    repeated into three equal channels, as PIL's ``convert("RGB")`` in torchvision's ImageFolder does."""
    if images.dtype != np.uint8:
        raise InputError(f"images must be uint8, got {images.dtype}")
    if images.ndim == 3:
        images = images[..., None]
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise InputError(f"images must be [N, H, W], [N, H, W, 1] or [N, H, W, 3], got shape {images.shape}")
    if images.shape[-1] == 1:
        images = np.repeat(images, 3, axis=-1)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def from_arrays(images: np.ndarray, labels: Sequence[int] | np.ndarray, classes: Sequence[str] = ()) -> TensorImages:
    """:class:`TensorImages` from numpy arrays (e.g. the Fashion-MNIST idx arrays), grey made RGB.

    Example:
        >>> from_arrays(np.zeros((2, 4, 5), np.uint8), [3, 1]).images.shape
        torch.Size([2, 3, 4, 5])
    """
    rgb = _as_rgb_nchw(np.asarray(images))
    targets = torch.as_tensor(np.asarray(labels, dtype=np.int64))
    return TensorImages(torch.from_numpy(rgb), targets, tuple(classes))


def fashion_mnist_images(
    split: str = "train", indices: Sequence[int] | np.ndarray | None = None, source: str | Path | None = None
) -> TensorImages:
    """Fashion-MNIST straight from its idx files (no PNG round trip), as RGB ``[N, 3, 28, 28]``.

    ``indices`` selects a subset (e.g. ``fashion_mnist.per_class_subset``), in the given order.

    Example:
        >>> data = fashion_mnist_images("test", indices=[0, 1])  # doctest: +SKIP
        >>> data.images.shape, data.classes[0]  # doctest: +SKIP
        (torch.Size([2, 3, 28, 28]), '0_tshirt_top')
    """
    from .fashion_mnist import FASHION_MNIST_CLASSES, FASHION_MNIST_DIR, load_fashion_mnist

    images, labels = load_fashion_mnist(split, FASHION_MNIST_DIR if source is None else source)
    if indices is not None:
        chosen = np.asarray(indices, dtype=np.int64)
        images, labels = images[chosen], labels[chosen]
    return from_arrays(images, labels, FASHION_MNIST_CLASSES)


def _folder_samples(root: Path) -> tuple[list[tuple[str, int]], list[str]]:
    """``(path, class id)`` pairs and class names, in torchvision ImageFolder's order (the order
    solo-learn's ``custom`` dataset indexes)."""
    from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

    if not root.is_dir():
        raise InputError(f"image folder {str(root)!r} does not exist or is not a directory")
    try:
        classes, class_to_idx = find_classes(str(root))
        samples = make_dataset(str(root), class_to_idx, extensions=IMG_EXTENSIONS)
    except FileNotFoundError as error:
        raise InputError(f"{root}: {error}") from None
    return samples, classes


def folder_key(root: str | Path) -> str:
    """A digest of an ImageFolder's sorted file list (relative paths, classes and byte sizes): a cache
    made for another list of files, or after a file changed size, does not match.

    Example:
        >>> folder_key("/data/train")  # doctest: +SKIP
        '3f1c...'
    """
    root = Path(root)
    samples, _ = _folder_samples(root)
    digest = hashlib.sha256(f"format {_CACHE_FORMAT}\n".encode())
    for path, target in samples:
        digest.update(f"{os.path.relpath(path, root)}\t{target}\t{os.path.getsize(path)}\n".encode())
    return digest.hexdigest()


def _decode(samples: list[tuple[str, int]]) -> np.ndarray:
    first: tuple[str, tuple[int, ...]] | None = None
    out: np.ndarray | None = None
    for i, (path, _) in enumerate(samples):
        array = np.asarray(load_rgb_image(path))  # an undecodable file: one InputError naming it
        if out is None:
            first = (path, array.shape)
            out = np.empty((len(samples), *array.shape), dtype=np.uint8)
        elif array.shape != out.shape[1:]:
            assert first is not None
            raise InputError(
                f"{path} is {array.shape[1]}x{array.shape[0]} px but {first[0]} is {first[1][1]}x{first[1][0]} px; "
                "a tensor dataset needs images of one size (resize the folder first, or use solo-learn's loader)"
            )
        out[i] = array
    assert out is not None
    return np.ascontiguousarray(out.transpose(0, 3, 1, 2))


def _read_cache(cache: Path, key: str) -> TensorImages | None:
    try:
        with np.load(cache, allow_pickle=False) as stored:
            if str(stored["key"]) != key:
                return None
            return TensorImages(
                torch.from_numpy(stored["images"].copy()),
                torch.from_numpy(stored["targets"].astype(np.int64)),
                tuple(str(c) for c in stored["classes"]),
            )
    except (OSError, KeyError, ValueError) as error:
        log.info("ignoring unreadable image cache %s (%s)", cache, error)
        return None


def _write_cache(cache: Path, key: str, data: TensorImages) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    # atomic: a crash mid-write must not leave a truncated cache that a later run trusts
    fd, tmp = tempfile.mkstemp(dir=cache.parent, prefix=f".{cache.name}.", suffix=".npz")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.savez(
                handle,
                key=np.array(key),
                images=data.images.numpy(),
                targets=data.targets.numpy(),
                classes=np.array(data.classes, dtype=str),
            )
        os.replace(tmp, cache)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load_image_folder(root: str | Path, cache: str | Path | None = None) -> TensorImages:
    """Decodes every image of an ImageFolder (``root/<class>/<file>``) once into RGB uint8
    ``[N, 3, H, W]``, in ImageFolder's order and with its class ids. All images must have one size.

    ``cache``: an ``.npz`` file reused when it was written for the same sorted file list and file
    sizes (:func:`folder_key`), and (re)written otherwise.

    Example:
        >>> data = load_image_folder("/data/train", cache="/data/train.npz")  # doctest: +SKIP
        >>> data.images.dtype, data.classes[:2]  # doctest: +SKIP
        (torch.uint8, ('0_tshirt_top', '1_trouser'))
    """
    root = Path(root)
    samples, classes = _folder_samples(root)
    if not samples:
        raise InputError(f"image folder {str(root)!r} holds no image files in class sub-folders")
    key = folder_key(root) if cache is not None else ""
    if cache is not None and Path(cache).is_file():
        cached = _read_cache(Path(cache), key)
        if cached is not None:
            log.info("read %d images from cache %s", len(cached), cache)
            return cached
    images = _decode(samples)
    data = TensorImages(
        torch.from_numpy(images), torch.tensor([t for _, t in samples], dtype=torch.int64), tuple(classes)
    )
    if cache is not None:
        _write_cache(Path(cache), key, data)
        log.info("decoded %d images from %s into cache %s", len(data), root, cache)
    return data


class IndexBatchSampler:
    """Batches of indices (int64 tensors) into a dataset of ``length`` items.

    Shuffled (``shuffle=True``) by a generator seeded from ``(seed, epoch)``: :meth:`set_epoch`
    chooses the epoch, so the order is reproducible. ``drop_last`` drops the incomplete last
    batch, as solo-learn's pretraining loader does. With ``num_replicas > 1`` every replica draws
    the same permutation and takes every ``num_replicas``-th index from ``rank`` (padded by
    wrapping so that all replicas get equally many, like ``DistributedSampler``).

    Example:
        >>> s = IndexBatchSampler(5, batch_size=2, shuffle=False, drop_last=False)
        >>> [b.tolist() for b in s]
        [[0, 1], [2, 3], [4]]
    """

    def __init__(
        self,
        length: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = True,
        seed: int = 0,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        if length < 1:
            raise InputError(f"the dataset must hold at least one item, got length {length}")
        if batch_size < 1:
            raise InputError(f"batch_size must be >= 1, got {batch_size}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise InputError(f"rank must be in [0, num_replicas), got rank {rank} of {num_replicas} replicas")
        self.length, self.batch_size = int(length), int(batch_size)
        self.shuffle, self.drop_last, self.seed = bool(shuffle), bool(drop_last), int(seed)
        self.num_replicas, self.rank = int(num_replicas), int(rank)
        self.epoch = 0
        if len(self) == 0:
            raise InputError(
                f"{self.per_replica} items per replica make no complete batch of {batch_size} "
                "with drop_last=True: lower the batch size"
            )

    @property
    def per_replica(self) -> int:
        return -(-self.length // self.num_replicas)

    def set_epoch(self, epoch: int) -> None:
        """Chooses the permutation of the next pass (Lightning calls this at every epoch start)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = self.per_replica
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def indices(self) -> torch.Tensor:
        """This replica's indices for the current epoch, in order."""
        if self.shuffle:
            generator = torch.Generator().manual_seed(epoch_seed(self.seed, self.epoch))
            order = torch.randperm(self.length, generator=generator)
        else:
            order = torch.arange(self.length)
        total = self.per_replica * self.num_replicas
        if total > self.length:  # wrap around so every replica has as many items
            order = order.repeat(-(-total // self.length))[:total]
        return order[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = self.indices()
        stop = len(self) * self.batch_size
        for start in range(0, min(stop, order.numel()), self.batch_size):
            yield order[start : start + self.batch_size]

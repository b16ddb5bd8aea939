"""A pretraining loader for solo-learn that augments whole batches in the main process.

:class:`FastPretrainLoader` replaces ``solo.data.pretrain_dataloader.prepare_dataloader`` when the
images fit in memory: it keeps the dataset decoded as one uint8 tensor
(:mod:`~sfrik_plugin.data.tensor_images`), draws batches of indices, and augments each batch at
once (:class:`~sfrik_plugin.data.batch_augment.BatchAugment`), yielding solo-learn's batch format
``(indexes, [view_1, ..., view_k], targets)``: int64 ``[B]``, the views of every pipeline in
order (float32 ``[B, 3, crop, crop]``) and int64 ``[B]``, with the incomplete last batch dropped
as solo-learn does.

Reproducibility: the order and the augmentations of a pass depend only on ``(seed, epoch)`` (and
the replica rank). Lightning 2.1 calls ``set_epoch`` on ``loader.sampler`` at every epoch start,
after it made the epoch's iterator, so the epoch is read when the first batch is drawn (a resumed
run thus repeats the uninterrupted run's epochs); a pass that follows no ``set_epoch`` call uses
the next epoch number, so a plain ``for`` loop over the loader also sees new orders and
augmentations every pass.

Example:
    >>> import torch
    >>> from sfrik_plugin.data.tensor_images import TensorImages
    >>> data = TensorImages(torch.zeros(10, 3, 28, 28, dtype=torch.uint8), torch.arange(10))
    >>> loader = FastPretrainLoader(data, [{"crop_size": 16, "num_crops": 2}], batch_size=4, seed=0)
    >>> indexes, views, targets = next(iter(loader))
    >>> len(loader), len(views), tuple(views[0].shape), indexes.tolist() == targets.tolist()
    (2, 2, (4, 3, 16, 16), True)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from ..console import get_logger
from ..maths.distributed import world_size_and_rank
from .batch_augment import BatchAugment, PipelineSettings
from .seeds import epoch_seed
from .tensor_images import IndexBatchSampler, TensorImages, load_image_folder

__all__ = ["FastPretrainLoader", "fast_pretrain_loader"]

log = get_logger(__name__)

_AUGMENT_STREAM = 1  # seeds of the augmentations, apart from the shuffling's (seed, epoch)


class FastPretrainLoader:
    """Iterable over solo-learn pretraining batches ``(indexes, views, targets)`` from an in-memory
    uint8 dataset; ``trainer.fit(model, loader)`` takes it like a DataLoader.

    ``augmentations``: solo-learn's ``cfg.augmentations`` (dicts or OmegaConf nodes) or a ready
    :class:`BatchAugment` (which the loader reseeds every pass). ``device``: where batches are
    augmented and returned (default: CPU; Lightning moves CPU batches to the model's device).
    ``num_replicas``/``rank`` default to the running ``torch.distributed`` group when the loader is
    first iterated, so under DDP every process gets its own share of each epoch's permutation and
    its own augmentations. ``threads``: torch intra-op threads while augmenting on the CPU (restored
    afterwards; ``None`` keeps the process's setting).
    """

    def __init__(
        self,
        data: TensorImages,
        augmentations: Sequence[Mapping[str, Any] | PipelineSettings] | BatchAugment,
        batch_size: int,
        *,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        device: str | torch.device | None = None,
        num_replicas: int | None = None,
        rank: int | None = None,
        threads: int | None = 1,
    ) -> None:
        self.data = data
        self.augment = augmentations if isinstance(augmentations, BatchAugment) else BatchAugment(augmentations)
        self.batch_size, self.seed = int(batch_size), int(seed)
        self.shuffle, self.drop_last = bool(shuffle), bool(drop_last)
        self.device = torch.device(device) if device is not None else None
        self.threads = threads
        self._replicas = (num_replicas, rank)
        self.sampler = self._make_sampler(*self._resolve_replicas())
        self._epoch_set = False  # whether set_epoch was called since the last pass began
        self._passes = 0

    def _resolve_replicas(self) -> tuple[int, int]:
        num_replicas, rank = self._replicas
        if num_replicas is None or rank is None:
            found = world_size_and_rank()
            num_replicas = found[0] if num_replicas is None else num_replicas
            rank = found[1] if rank is None else rank
        return int(num_replicas), int(rank)

    def _make_sampler(self, num_replicas: int, rank: int) -> IndexBatchSampler:
        sampler = _EpochSampler(
            len(self.data),
            self.batch_size,
            shuffle=self.shuffle,
            drop_last=self.drop_last,
            seed=self.seed,
            num_replicas=num_replicas,
            rank=rank,
        )
        sampler.owner = self
        return sampler

    def _refresh_replicas(self) -> None:
        """Re-reads the process group: the loader is usually built before Lightning starts DDP."""
        num_replicas, rank = self._resolve_replicas()
        if (num_replicas, rank) != (self.sampler.num_replicas, self.sampler.rank):
            epoch, epoch_set = self.sampler.epoch, self._epoch_set
            self.sampler = self._make_sampler(num_replicas, rank)
            self.sampler.epoch, self._epoch_set = epoch, epoch_set

    def set_epoch(self, epoch: int) -> None:
        """The epoch of the next pass: its order and augmentations depend only on ``(seed, epoch)``."""
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        self._refresh_replicas()
        return len(self.sampler)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]]:
        # a generator: nothing runs until the first batch is asked for, after Lightning's set_epoch
        self._refresh_replicas()
        if not self._epoch_set and self._passes > 0:
            self.sampler.epoch += 1  # no set_epoch since the last pass: move on to the next epoch
        self._epoch_set = False
        self._passes += 1
        epoch = self.sampler.epoch
        self.augment.reseed(epoch_seed(self.seed, epoch, _AUGMENT_STREAM, self.sampler.rank))
        for indexes in self.sampler:
            yield self.batch(indexes)

    def batch(self, indexes: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor], torch.Tensor]:
        """``(indexes, views, targets)`` for these indexes, as the loader yields them (with the
        augmentation's current random stream)."""
        # the tensors are small: a second intra-op thread gains little on an idle machine and, on a
        # busy one, waiting for a descheduled thread at every op makes each op milliseconds long
        previous = torch.get_num_threads()
        wanted = self.threads if self.device in (None, torch.device("cpu")) and self.threads != previous else None
        if wanted is not None:
            torch.set_num_threads(wanted)
        try:
            images = self.data.images.index_select(0, indexes)  # several times faster than images[indexes]
            if self.device is not None:
                images = images.to(self.device, non_blocking=True)
            return indexes, self.augment(images), self.data.targets.index_select(0, indexes)
        finally:
            if wanted is not None:
                torch.set_num_threads(previous)  # the model step keeps the process's setting

    def __repr__(self) -> str:
        return (
            f"FastPretrainLoader({len(self.data)} images, batch_size={self.batch_size}, "
            f"views={self.augment.num_views}, seed={self.seed}, epoch={self.sampler.epoch})"
        )


class _EpochSampler(IndexBatchSampler):
    """The loader's sampler; its ``set_epoch`` (what Lightning calls) also tells the loader that the
    next pass has an explicit epoch."""

    owner: FastPretrainLoader | None = None

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        if self.owner is not None:
            self.owner._epoch_set = True


def fast_pretrain_loader(
    train_path: str | Path | TensorImages,
    augmentations: Sequence[Mapping[str, Any] | PipelineSettings],
    batch_size: int,
    *,
    seed: int = 0,
    cache: str | Path | None = None,
    device: str | torch.device | None = None,
    threads: int | None = 1,
) -> FastPretrainLoader:
    """The loader for a solo-learn pretraining config: ``train_path`` an ImageFolder (decoded once,
    through the ``.npz`` ``cache`` when given) or ready :class:`TensorImages`; ``augmentations``
    is ``cfg.augmentations`` and ``batch_size`` ``cfg.optimizer.batch_size`` (per process).

    Example:
        >>> loader = fast_pretrain_loader(cfg.data.train_path, cfg.augmentations,  # doctest: +SKIP
        ...                               cfg.optimizer.batch_size, seed=cfg.seed)
        >>> trainer.fit(model, loader)  # doctest: +SKIP
    """
    data = train_path if isinstance(train_path, TensorImages) else load_image_folder(train_path, cache=cache)
    loader = FastPretrainLoader(data, augmentations, batch_size, seed=seed, device=device, threads=threads)
    log.info("in-memory pretraining loader: %s", loader)
    return loader

"""A DataLoader whose every epoch is a function of (seed, epoch) alone, so a resumed run repeats it.

A resumed training run must see, in each epoch, the same batches with the same augmentations as an
uninterrupted one. A plain DataLoader draws its shuffling and its workers' seeds from the global
torch generator, whose state depends on everything the process did before (how many epochs it ran,
what validation consumed...), and Lightning creates the first iterator of a resumed run before it
tells samplers the epoch. :class:`EpochSeededLoader` instead re-seeds, each time an epoch's
iterator is created, from ``(seed, epoch)`` where ``epoch`` comes from ``epoch_source`` (e.g. the
trainer's count of finished epochs) or from its own counter:

* its generator (shuffling, and the base seed of worker processes, from which torch seeds each
  worker's torch and ``random`` generators);
* ``sampler.set_epoch(epoch)`` when the sampler has one (DistributedSampler under DDP);
* without workers, the process's own torch / ``random`` / numpy generators, which the dataset's
  transforms then use in the main process.

Example:
    >>> import torch
    >>> data = torch.arange(6)
    >>> loader = EpochSeededLoader(data, batch_size=3, shuffle=True, seed=0)
    >>> first, second = [b.tolist() for b in loader], [b.tolist() for b in loader]  # epochs 0 and 1
    >>> again = EpochSeededLoader(data, batch_size=3, shuffle=True, seed=0, epoch_source=lambda: 1)
    >>> [b.tolist() for b in again] == second
    True
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from .seeds import epoch_seed

__all__ = ["EpochSeededLoader"]


class EpochSeededLoader(DataLoader):
    """``DataLoader`` re-seeded from ``(seed, epoch)`` at the start of every epoch (module docstring).

    Args:
        *args, **kwargs: those of :class:`torch.utils.data.DataLoader` (``generator`` is created).
        seed: the run's seed.
        epoch_source: returns the epoch about to start (``None``: count the iterators created).
    """

    def __init__(self, *args: Any, seed: int = 0, epoch_source: Callable[[], int] | None = None, **kwargs: Any):
        if kwargs.get("generator") is None:
            kwargs["generator"] = torch.Generator()
        super().__init__(*args, **kwargs)
        # kept under the constructor's names: Lightning re-creates loaders (DDP sampler injection)
        # from the attributes that match the constructor's parameters
        self.seed = int(seed)
        self.epoch_source = epoch_source
        self._epochs_started = 0

    def current_epoch(self) -> int:
        return int(self.epoch_source()) if self.epoch_source is not None else self._epochs_started

    def __iter__(self):
        epoch = self.current_epoch()
        self._epochs_started = epoch + 1
        key = epoch_seed(self.seed, epoch)
        assert self.generator is not None
        self.generator.manual_seed(key)
        for sampler in (self.sampler, getattr(self.batch_sampler, "sampler", None)):
            if hasattr(sampler, "set_epoch"):
                sampler.set_epoch(epoch)
        if self.num_workers == 0:  # the transforms run here, on the process's own generators
            torch.manual_seed(key)
            random.seed(key)
            np.random.seed(key % 2**32)
        return super().__iter__()

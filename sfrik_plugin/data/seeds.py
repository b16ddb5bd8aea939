"""Seeds of reproducible randomness: one 63-bit seed per (run seed, epoch, stream, rank...).

Every loader of the project draws an epoch's shuffling and augmentations from a generator seeded
with :func:`epoch_seed`, so an epoch depends on its keys alone, never on what the process did
before it (how many epochs it ran, what validation consumed): a resumed run repeats exactly what an
uninterrupted one would have done.
"""

from __future__ import annotations

import numpy as np

__all__ = ["epoch_seed"]


def epoch_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed derived from ``seed`` and ``keys`` (epoch, stream, rank...): different keys give
    unrelated streams, the same keys the same stream.

    Example:
        >>> epoch_seed(0, 1) == epoch_seed(0, 1) != epoch_seed(0, 2)
        True
        >>> epoch_seed(0, 1) != epoch_seed(1, 0)
        True
    """
    state = np.random.SeedSequence([int(seed) & (2**63 - 1), *(int(k) for k in keys)]).generate_state(1, np.uint64)
    return int(state[0]) >> 1

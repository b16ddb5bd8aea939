"""Barlow Twins' loss exact under DDP: the global batch's statistics on every rank.

solo-learn's ``barlow_loss_func`` is not exact under DDP, for two reasons (the DDP exactness table
of the README gives the figures):

* it standardises each view with a ``BatchNorm1d`` it creates inside the loss, so the means and
  variances are those of the *rank's* shard (Barlow Twins' official code converts its model to
  ``SyncBatchNorm``, so its statistics are the global batch's);
* it sums the cross-correlation over ranks with a plain ``dist.all_reduce``, which autograd does not
  see: each rank back-propagates only its shard's share, divided by W, and DDP's average divides by
  W once more, so the gradient is 1/W of the whole batch's (the official code scales the same way).

:func:`exact_barlow_loss_func` computes, from the paper's formula, the same loss as solo-learn's on
the concatenated batch — ``scale · (Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²)`` with ``C`` the
cross-correlation of the standardised views (biased variance, ``eps = 1e-5`` as ``BatchNorm1d``) —
with every sum over the batch taken over all ranks by the autograd-aware
:func:`sfrik_plugin.maths.distributed.all_reduce_sum`. Every rank returns the global loss and
DDP's averaged gradient is the single-process one. Without a process group it equals solo-learn's.

Example:
    >>> import torch
    >>> z1, z2 = torch.randn(16, 4), torch.randn(16, 4)
    >>> float(exact_barlow_loss_func(z1, z1)) < float(exact_barlow_loss_func(z1, z2))
    True
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..maths.distributed import all_reduce_sum

__all__ = ["exact_barlow_loss_func"]

_BATCH_NORM_EPS = 1e-5  # torch.nn.BatchNorm1d's default, which solo-learn's loss uses


def _standardise(z: Tensor, rows: Tensor) -> Tensor:
    mean = all_reduce_sum(z.sum(dim=0)) / rows
    centred = z - mean
    variance = all_reduce_sum(centred.square().sum(dim=0)) / rows  # biased, as BatchNorm in training
    return centred / torch.sqrt(variance + _BATCH_NORM_EPS)


def exact_barlow_loss_func(z1: Tensor, z2: Tensor, lamb: float = 5e-3, scale_loss: float = 0.025) -> Tensor:
    """Barlow Twins' loss of the global batch on every rank (module docstring); ``lamb`` and
    ``scale_loss`` as in solo-learn's ``barlow_loss_func``.

    Example:
        >>> import torch
        >>> z = torch.randn(32, 3, dtype=torch.float64)
        >>> float(exact_barlow_loss_func(z, z)) < 1e-3       # C = I up to BatchNorm's eps: loss ~ 0
        True
    """
    rows = all_reduce_sum(torch.tensor(float(z1.shape[0]), device=z1.device, dtype=z1.dtype))
    correlation = all_reduce_sum(_standardise(z1, rows).T @ _standardise(z2, rows)) / rows
    identity = torch.eye(correlation.shape[0], device=correlation.device, dtype=torch.bool)
    on_diagonal = (correlation.diagonal() - 1).square().sum()
    off_diagonal = correlation.masked_fill(identity, 0).square().sum()
    return scale_loss * (on_diagonal + lamb * off_diagonal)

"""``method="reference"``: the official formula as a plain autograd composition.

What the official SFRIK code computes, written to be read, for any kernel:

    x_v = normalize(z_v)                            (rows onto the sphere)
    distance(i, j) = mean over the global batch of (x_i − x_j)²
    M(v) = mean_{k,l} φ(x_vkᵀ x_vl) over the global Gram matrix (k ≠ l for the U-statistic)

Under a process group the views are gathered with gradients (the official "replicated" scheme), so
every rank computes the whole N × N matrix. Autograd differentiates all of it, second derivatives
included. Use it to check the fast paths, for kernels they do not cover, or where you need
``create_graph=True``; it costs about three times the fused path (``scripts/bench_loss.py``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .kernels import RotationInvariantKernel

__all__ = ["reference_statistics"]


def reference_statistics(
    views: list[Tensor],
    pairs: tuple[tuple[int, int], ...],
    regularized: tuple[int, ...],
    kernel: RotationInvariantKernel,
    normalize: bool,
    unbiased: bool,
) -> tuple[Tensor, Tensor]:
    """``(pair distances [P], kernel means [R])`` of views that already hold the global batch."""
    x = [F.normalize(v, dim=1, eps=1e-12) if normalize else v for v in views]
    distances = [F.mse_loss(x[i], x[j]) for i, j in pairs]
    means = []
    for v in regularized:
        gram = x[v] @ x[v].T
        values = kernel.phi(gram, x[v].shape[1])
        n = gram.shape[0]
        if unbiased:
            means.append((values.sum() - values.diagonal().sum()) / (n * (n - 1)))
        else:
            means.append(values.mean())
    empty = views[0].new_zeros(0)
    return (torch.stack(distances) if distances else empty), (torch.stack(means) if means else empty)

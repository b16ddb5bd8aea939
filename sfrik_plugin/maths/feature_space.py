"""The ``feature`` path (kernels of degree ≤ 2) and the precise distance between views, by autograd.

For ``φ(t) = c0 + c1 t + c2 t²``, ``Σ_ij φ(z_iᵀ z_j) = c0 N² + c1 ‖Σ_i z_i‖² + c2 ‖Zᵀ Z‖²_F``:
O(N q²) time and O(q²) memory, cheaper than the Gram path when q < N. Everything here is plain
autograd (so second derivatives work), with the distance between views computed from
``d = z_i − z_j`` as in the fused path (see :mod:`sfrik_plugin.maths.fused`), never from
differences of rounded unit vectors.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .distributed import all_reduce_sum

__all__ = ["pair_squared_distances", "feature_space_statistics"]


def pair_squared_distances(zi: Tensor, zj: Tensor, normalize: bool, eps: float = 1e-12) -> Tensor:
    """``‖x_i − x_j‖²`` per row, ``x = z / max(‖z‖, eps)`` (or ``z``), differentiably and without
    cancellation when the rows nearly coincide.

    ``x_i − x_j = s_i d + c z_j`` with ``d = z_i − z_j`` (exact for close rows) and
    ``c = s_i − s_j = −d·(z_i + z_j) / (n_i n_j (n_i + n_j))``; rows where a view is (almost) zero
    take the plain form (the precise branch is kept finite there, so its gradient is too).

    Example:
        >>> z = torch.randn(4, 8, dtype=torch.float64)
        >>> x = torch.nn.functional.normalize(z, dim=1)
        >>> bool(torch.allclose(pair_squared_distances(z, z.flip(0), True), (x - x.flip(0)).pow(2).sum(1)))
        True
    """
    d = zi - zj
    dd = torch.linalg.vecdot(d, d)
    if not normalize:
        return dd
    dz = torch.linalg.vecdot(d, zj)
    ni, nj = torch.linalg.vector_norm(zi, dim=1), torch.linalg.vector_norm(zj, dim=1)
    si, sj = 1.0 / ni.clamp_min(eps), 1.0 / nj.clamp_min(eps)
    on_sphere = (ni >= eps) & (nj >= eps)
    ni_safe, nj_safe = ni.clamp_min(eps), nj.clamp_min(eps)
    c = -(dd + 2.0 * dz) / (ni_safe * nj_safe * (ni_safe + nj_safe))
    precise = si.square() * dd + 2.0 * si * c * dz + c.square() * nj.square()
    plain = (ni * si).square() + (nj * sj).square() - 2.0 * torch.linalg.vecdot(zi, zj) * si * sj
    return torch.where(on_sphere, precise, plain).clamp_min(0)


def _sum_over(group: Any, tensor: Tensor) -> Tensor:
    """Summed over the ranks of ``group`` when the rows are sharded over it; ``None`` means the rows
    here are the whole batch (one process, ``distributed="none"``, or gathered by the replicated
    scheme), never "the default group": summing gathered statistics again counted them W times."""
    return tensor if group is None else all_reduce_sum(tensor, group)


def _feature_space_sum(
    z: Tensor, coefficients: tuple[float, float, float], unbiased: bool, group: Any, total_rows: int
):
    """``Σ_{i,j} φ(z_iᵀ z_j)`` over the global batch for ``φ(t) = c0 + c1 t + c2 t²``."""
    c0, c1, c2 = coefficients
    column_sum = _sum_over(group, z.sum(dim=0))
    total = c0 * total_rows**2 + c1 * column_sum.dot(column_sum)
    if c2 != 0:
        second_moment = _sum_over(group, z.T @ z)  # q × q: the only O(q²) object
        total = total + c2 * second_moment.pow(2).sum()
    if unbiased:
        squared_norms = z.pow(2).sum(dim=1)
        diagonal = (c0 + c1 * squared_norms + c2 * squared_norms.pow(2)).sum()
        total = total - _sum_over(group, diagonal)
    return total


def feature_space_statistics(
    views: list[Tensor],
    pairs: tuple[tuple[int, int], ...],
    regularized: tuple[int, ...],
    coefficients: tuple[float, float, float],
    normalize: bool,
    unbiased: bool,
    group: Any,
    total_rows: int,
) -> tuple[Tensor, Tensor]:
    """``(pair distances [P], kernel means [R])``, the same numbers as the fused path. ``group``: the
    process group the rows are sharded over, or ``None`` when ``views`` hold the whole batch."""
    dim = views[0].shape[1]
    distances = [
        _sum_over(group, pair_squared_distances(views[i], views[j], normalize).sum()) / float(total_rows * dim)
        for i, j in pairs
    ]
    if normalize:
        views = [torch.nn.functional.normalize(v, dim=1, eps=1e-12) for v in views]
    normaliser = float(total_rows * (total_rows - 1) if unbiased else total_rows**2)
    means = [_feature_space_sum(views[v], coefficients, unbiased, group, total_rows) / normaliser for v in regularized]
    empty = views[0].new_zeros(0)
    return (torch.stack(distances) if distances else empty), (torch.stack(means) if means else empty)

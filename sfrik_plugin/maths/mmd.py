"""MMD between a batch of embeddings on the sphere and the uniform distribution.

For a rotation-invariant kernel ``K(u, v) = φ(uᵀv)``, ``E_{u~U} K(z, u)`` is the same constant
``m_U`` for every z, so

    MMD²(Q, U) = E_{z,z'~Q} φ(zᵀz') − m_U,

and with a batch ``Z`` (N × q) the first term is the mean of φ over the Gram matrix ``Z Zᵀ``
(:func:`kernel_mean`). For SFRIK's truncated Legendre kernel ``m_U = 0``. How the mean is computed
(estimator, path, distributed mode) is set by the keywords of
:class:`~sfrik_plugin.maths.options.MMDOptions`; every path gives the same number.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from .kernels import RotationInvariantKernel, TruncatedLegendreKernel, build_kernel
from .options import MMDOptions
from .statistics import check_embeddings, sphere_statistics

__all__ = ["as_kernel", "kernel_mean", "mmd_to_uniform"]


def as_kernel(kernel: RotationInvariantKernel | str | None) -> RotationInvariantKernel:
    """A kernel object from a kernel, a registered name, or ``None`` (SFRIK's default kernel)."""
    if kernel is None:
        return TruncatedLegendreKernel()
    if isinstance(kernel, str):
        return build_kernel(kernel)
    if not isinstance(kernel, RotationInvariantKernel):
        raise TypeError(
            f"kernel must be a RotationInvariantKernel, a registered kernel name or None, got {type(kernel).__name__}"
        )
    return kernel


def kernel_mean(
    z: Tensor,
    kernel: RotationInvariantKernel | str | None = None,
    *,
    normalize: bool = False,
    check_finite: bool = True,
    **options: Any,
) -> Tensor:
    """Mean of ``φ(z_iᵀ z_j)`` over the (global) batch's Gram matrix.

    Args:
        z: embeddings, ``(N_local, q)``; rows are expected on the unit sphere.
        kernel: a :class:`RotationInvariantKernel`, a registered name, or ``None`` for SFRIK's
            ``TruncatedLegendreKernel((1, 40, 40))``.
        normalize: L2-normalise the rows first (differentiably).
        check_finite: raise on NaN/inf inputs (one device sync per call).
        **options: ``estimator``, ``method``, ``block_size``, ``distributed``, ``group``
            (:class:`~sfrik_plugin.maths.options.MMDOptions`).

    Returns:
        A scalar tensor (float32, or float64 for float64 input), identical on every rank.

    Example:
        >>> import torch
        >>> z = torch.nn.functional.normalize(torch.randn(512, 64), dim=1)
        >>> value = kernel_mean(z, "legendre")  # ≈ φ(1)/N = 81/512 for uniform samples
        >>> bool(value < 0.5)
        True
        >>> bool(torch.isclose(value, kernel_mean(z, "legendre", method="reference")))
        True
    """
    mmd_options = MMDOptions.from_keywords(options)
    kernel = as_kernel(kernel)
    check_embeddings(z, check_finite=check_finite)
    return sphere_statistics([z], (), (0,), kernel, normalize=normalize, options=mmd_options).kernel_means[0]


def mmd_to_uniform(z: Tensor, kernel: RotationInvariantKernel | str | None = None, **kwargs: Any) -> Tensor:
    """Squared MMD between the batch ``z`` (rows on the sphere) and the uniform distribution.

    ``kernel_mean(z, kernel, **kwargs) - kernel.uniform_mean(q)``; takes the same options.

    Example:
        >>> import torch
        >>> collapsed = torch.nn.functional.normalize(torch.ones(256, 32), dim=1)
        >>> round(float(mmd_to_uniform(collapsed)), 3)  # every pair at t = 1: φ(1) = 1 + 40 + 40
        81.0
    """
    kernel = as_kernel(kernel)
    return kernel_mean(z, kernel, **kwargs) - kernel.uniform_mean(z.shape[1])

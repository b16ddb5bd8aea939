"""Legendre polynomials in dimension q, the building blocks of rotation-invariant kernels.

``P_ℓ(q; t)`` is the degree-ℓ polynomial orthogonal on [-1, 1] under the weight
``(1 - t²)^((q-3)/2)`` and normalised so that ``P_ℓ(q; 1) = 1``. It is the Gegenbauer
polynomial ``C_ℓ^{(q-2)/2}`` divided by its value at 1 (for q = 2: the Chebyshev polynomial
``T_ℓ``; for q = 3: the classical Legendre polynomial).

They are evaluated with the three-term recurrence

    P_0 = 1,   P_1 = t,
    P_{ℓ+1} = [(2ℓ + q - 2) t P_ℓ - ℓ P_{ℓ-1}] / (ℓ + q - 2),

whose two coefficients lie in [0, 2] for every q ≥ 2, so it stays stable for huge q
(65536 and beyond) on the whole interval, where expanding into monomials would not.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, overload

import torch
from torch import Tensor

__all__ = ["check_dim", "recurrence_coefficients", "legendre_polynomial", "legendre_series"]


def check_dim(dim: int) -> None:
    """Raises ``ValueError`` unless ``dim`` (q, the sphere S^{q-1}'s ambient dimension) is an integer >= 2.

    Example:
        >>> check_dim(1)
        Traceback (most recent call last):
        ...
        ValueError: dim (the sphere's ambient dimension q) must be an integer >= 2, got 1
    """
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 2:
        raise ValueError(f"dim (the sphere's ambient dimension q) must be an integer >= 2, got {dim!r}")


#: the former private name, still imported by a module being written beside this change
_check_dim = check_dim


def recurrence_coefficients(degree: int, dim: int) -> tuple[float, float]:
    """Coefficients ``(a, c)`` of ``P_{ℓ+1} = a t P_ℓ - c P_{ℓ-1}``, for ℓ = ``degree`` >= 1.

    Example:
        >>> recurrence_coefficients(1, 3)  # P_2(3; t) = (3/2) t P_1 - (1/2) P_0
        (1.5, 0.5)
    """
    denominator = degree + dim - 2
    return (2 * degree + dim - 2) / denominator, degree / denominator


def legendre_polynomial(t: Tensor, degree: int, dim: int) -> Tensor:
    """Evaluate ``P_degree(dim; t)`` elementwise.

    Args:
        t: tensor of values, normally in [-1, 1] (any shape, any floating dtype).
        degree: polynomial degree ℓ >= 0.
        dim: ambient dimension q >= 2 of the sphere S^{q-1}.

    Returns:
        A tensor shaped like ``t``. Differentiable with autograd.

    Example:
        >>> import torch
        >>> t = torch.tensor([1.0, 0.0, -1.0])
        >>> legendre_polynomial(t, degree=2, dim=3)  # (3t² - 1) / 2
        tensor([ 1.0000, -0.5000,  1.0000])
    """
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be an integer >= 0, got {degree!r}")
    coefficients = [0.0] * degree + [1.0]
    return legendre_series(t, coefficients, dim)


@overload
def legendre_series(
    t: Tensor, coefficients: Sequence[float], dim: int, with_derivative: Literal[False] = False
) -> Tensor: ...


@overload
def legendre_series(
    t: Tensor, coefficients: Sequence[float], dim: int, with_derivative: Literal[True]
) -> tuple[Tensor, Tensor]: ...


def legendre_series(
    t: Tensor,
    coefficients: Sequence[float],
    dim: int,
    with_derivative: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Evaluate ``φ(t) = Σ_ℓ coefficients[ℓ] · P_ℓ(dim; t)`` (ℓ from 0), optionally with ``φ'(t)``.

    The derivative follows from differentiating the recurrence,
    ``P'_{ℓ+1} = [(2ℓ+q-2)(P_ℓ + t P'_ℓ) - ℓ P'_{ℓ-1}] / (ℓ+q-2)``, so both come out of one pass.
    Zero coefficients cost nothing but the recurrence step.

    Example:
        >>> import torch
        >>> t = torch.linspace(-1, 1, 5)
        >>> phi, dphi = legendre_series(t, [0.0, 1.0, 40.0, 40.0], dim=8192, with_derivative=True)
        >>> float(phi[-1])  # φ(1) = Σ b_ℓ
        81.0
    """
    check_dim(dim)
    coefficients = [float(c) for c in coefficients]
    if not coefficients:
        raise ValueError("coefficients must hold at least one value (the degree-0 term)")
    degree = len(coefficients) - 1

    previous = torch.ones_like(t)  # P_0
    value = previous * coefficients[0]
    if with_derivative:
        previous_d = torch.zeros_like(t)
        derivative = torch.zeros_like(t)
    if degree == 0:
        return (value, derivative) if with_derivative else value

    current = t  # P_1
    value = value + coefficients[1] * current
    if with_derivative:
        current_d = torch.ones_like(t)
        derivative = derivative + coefficients[1]
    for ell in range(1, degree):
        a, c = recurrence_coefficients(ell, dim)
        following = a * t * current - c * previous
        if with_derivative:
            following_d = a * (current + t * current_d) - c * previous_d
            previous_d, current_d = current_d, following_d
            if coefficients[ell + 1] != 0.0:
                derivative = derivative + coefficients[ell + 1] * current_d
        previous, current = current, following
        if coefficients[ell + 1] != 0.0:
            value = value + coefficients[ell + 1] * current
    return (value, derivative) if with_derivative else value

"""Rotation-invariant kernels on the sphere, ``K(u, v) = φ(uᵀv)``, and their registry.

A kernel object knows three things the MMD computations need:

* ``phi_and_derivative(t, dim)``: φ and φ' evaluated elementwise on a Gram matrix;
* ``uniform_mean(dim)``: ``E_{u,v ~ U(S^{dim-1})} φ(uᵀv)``, the constant the MMD subtracts
  (the uniform side of the MMD vanishes into this number, so it needs no samples);
* ``feature_space_coefficients(dim)``: ``(c0, c1, c2)`` with ``φ(t) = c0 + c1 t + c2 t²`` when
  φ has degree <= 2 (then the batch mean of φ over the Gram matrix has an O(N q²) form in
  feature space), else ``None``.

New kernels register under an explicit name with :func:`register_kernel` and are built by name
with :func:`build_kernel`. The sphere's spectral families (``heat``, ``bandlimited``: Legendre
series whose weights depend on q) are in :mod:`sfrik_plugin.maths.spectral`.
"""

from __future__ import annotations

import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

from .legendre import check_dim, legendre_series, recurrence_coefficients

__all__ = [
    "RotationInvariantKernel",
    "TruncatedLegendreKernel",
    "GaussianKernel",
    "KERNELS",
    "register_kernel",
    "build_kernel",
    "sphere_inner_product_mean",
]


class RotationInvariantKernel(ABC):
    """A dot-product kernel ``K(u, v) = φ(uᵀv)`` on the unit sphere S^{dim-1}."""

    #: the name the kernel is registered under
    name: str = ""

    @abstractmethod
    def phi_and_derivative(self, t: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        """φ(t) and φ'(t), elementwise."""

    def phi(self, t: Tensor, dim: int) -> Tensor:
        """φ(t), elementwise (autograd-differentiable)."""
        return self.phi_and_derivative(t, dim)[0]

    @abstractmethod
    def uniform_mean(self, dim: int) -> float:
        """``E φ(uᵀv)`` for u, v independent and uniform on S^{dim-1}."""

    def feature_space_coefficients(self, dim: int) -> tuple[float, float, float] | None:
        """``(c0, c1, c2)`` if ``φ(t) = c0 + c1 t + c2 t²`` exactly, else ``None``."""
        return None

    @property
    def has_feature_space_form(self) -> bool:
        """Whether the batch mean of φ can be computed in feature space (degree <= 2)."""
        return self.feature_space_coefficients(3) is not None


KERNELS: dict[str, type[RotationInvariantKernel]] = {}

#: Up to this degree φ is evaluated by Horner's rule on its monomial coefficients: a third of the
#: elementwise passes of the recurrence over the N × N Gram matrix, and at low degree the monomial
#: coefficients are O(1) for every q (no cancellation); higher degrees use the recurrence.
HORNER_MAX_DEGREE = 4


def _horner(t: Tensor, coefficients: Sequence[float]) -> Tensor:
    """``Σ_k coefficients[k] t^k`` with in-place steps on one fresh tensor."""
    if len(coefficients) == 1:
        return torch.full_like(t, coefficients[0])
    result = t * coefficients[-1]
    for c in reversed(coefficients[1:-1]):
        result.add_(c).mul_(t)
    return result.add_(coefficients[0])


def register_kernel(name: str) -> Callable[[type[RotationInvariantKernel]], type[RotationInvariantKernel]]:
    """Class decorator adding a kernel to :data:`KERNELS` under ``name``.

    Example:
        >>> @register_kernel("linear")
        ... class LinearKernel(RotationInvariantKernel):
        ...     def phi_and_derivative(self, t, dim):
        ...         return t, torch.ones_like(t)
        ...     def uniform_mean(self, dim):
        ...         return 0.0
        >>> build_kernel("linear").name
        'linear'
        >>> del KERNELS["linear"]
    """

    def decorate(cls: type[RotationInvariantKernel]) -> type[RotationInvariantKernel]:
        if name in KERNELS and KERNELS[name] is not cls:
            raise ValueError(f"a kernel named {name!r} is already registered ({KERNELS[name].__name__})")
        cls.name = name
        KERNELS[name] = cls
        return cls

    return decorate


def build_kernel(name: str, **kwargs) -> RotationInvariantKernel:
    """Instantiate the kernel registered as ``name`` with ``kwargs``.

    The spectral families ``"heat"`` and ``"bandlimited"`` register when :mod:`sfrik_plugin` is
    imported (:mod:`sfrik_plugin.maths.spectral`). A keyword the kernel does not take, or a missing
    one, is a ``ValueError`` naming the kernel's parameters.

    Example:
        >>> build_kernel("gaussian", tau=2.5)
        GaussianKernel(tau=2.5)
        >>> build_kernel("heat", tau=0.01, degree=4)
        HeatKernel(tau=0.01, degree=4, tolerance=1e-06, max_degree=64, scale=81.0)
    """
    if name not in KERNELS:
        raise ValueError(f"unknown kernel {name!r}; registered kernels: {sorted(KERNELS)}")
    cls = KERNELS[name]
    signature = inspect.signature(cls)
    try:
        signature.bind(**kwargs)
    except TypeError as error:
        raise ValueError(f"kernel {name!r}: {error}; its parameters: {list(signature.parameters)}") from None
    return cls(**kwargs)


@register_kernel("legendre")
class TruncatedLegendreKernel(RotationInvariantKernel):
    """SFRIK's kernel ``φ(t) = Σ_{ℓ=1..L} b_ℓ P_ℓ(q; t)``, with ``weights = (b_1, ..., b_L)``.

    All ``b_ℓ >= 0`` (Schoenberg: then K is positive definite on the sphere, so its MMD is a
    true discrepancy); ``b_0 = 0``, which makes the uniform distribution's mean of φ exactly 0.
    The paper's default is ``L = 3, b = (1, 40, 40)``.

    Example:
        >>> import torch
        >>> kernel = TruncatedLegendreKernel((1.0, 40.0, 40.0))
        >>> kernel.phi(torch.tensor([1.0]), dim=8192)
        tensor([81.])
    """

    def __init__(self, weights: Sequence[float] = (1.0, 40.0, 40.0)):
        if isinstance(weights, (str, bytes)) or not hasattr(weights, "__len__"):
            raise ValueError(f"weights must be a sequence of numbers (b_1, ..., b_L), got {weights!r}")
        if len(weights) == 0:
            raise ValueError("weights must hold at least one value b_1 (degrees start at 1); got an empty sequence")
        try:
            values = tuple(float(w) for w in weights)
        except (TypeError, ValueError) as error:
            raise ValueError(f"weights must be numbers, got {list(weights)!r}") from error
        bad = [(degree, w) for degree, w in enumerate(values, start=1) if not math.isfinite(w) or w < 0]
        if bad:
            listing = ", ".join(f"b_{degree} = {w}" for degree, w in bad)
            raise ValueError(
                f"kernel weights must be finite and >= 0 (Schoenberg's condition for a positive "
                f"definite kernel); got {listing} in weights {list(values)}"
            )
        if all(w == 0 for w in values):
            raise ValueError(f"at least one kernel weight must be > 0, got {list(values)}")
        self.weights = values
        self._monomials: dict[int, list[float]] = {}

    def __repr__(self) -> str:
        return f"TruncatedLegendreKernel(weights={self.weights})"

    @property
    def degree(self) -> int:
        """L, the highest degree with a non-zero weight."""
        return max(degree for degree, w in enumerate(self.weights, start=1) if w != 0)

    def phi_and_derivative(self, t: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        if self.degree > HORNER_MAX_DEGREE:
            return legendre_series(t, (0.0,) + self.weights[: self.degree], dim, with_derivative=True)
        coefficients = self._monomial_coefficients(dim)
        derivative_coefficients = [k * c for k, c in enumerate(coefficients)][1:]
        return _horner(t, coefficients), _horner(t, derivative_coefficients)

    def phi(self, t: Tensor, dim: int) -> Tensor:
        if self.degree > HORNER_MAX_DEGREE:
            return legendre_series(t, (0.0,) + self.weights[: self.degree], dim)
        return _horner(t, self._monomial_coefficients(dim))

    def _monomial_coefficients(self, dim: int) -> list[float]:
        """φ's coefficients in powers of t, from the Legendre recurrence in float64 (cached per q)."""
        if dim not in self._monomials:
            check_dim(dim)
            previous, current = np.array([1.0]), np.array([0.0, 1.0])
            total = self.weights[0] * current
            for ell in range(1, self.degree):
                a, c = recurrence_coefficients(ell, dim)
                following = np.zeros(ell + 2)
                following[1:] = a * current
                following[:ell] -= c * previous
                previous, current = current, following
                total = np.pad(total, (0, 1)) + self.weights[ell] * current
            self._monomials[dim] = [float(c) for c in total]
        return self._monomials[dim]

    def uniform_mean(self, dim: int) -> float:
        check_dim(dim)
        return 0.0  # Funk–Hecke: every P_ℓ with ℓ >= 1 averages to 0 under the uniform law

    def feature_space_coefficients(self, dim: int) -> tuple[float, float, float] | None:
        if self.degree > 2:
            return None
        check_dim(dim)
        b1 = self.weights[0]
        b2 = self.weights[1] if self.degree == 2 else 0.0
        # P_2(q; t) = (q t² - 1) / (q - 1)
        return (-b2 / (dim - 1), b1, b2 * dim / (dim - 1))


@register_kernel("gaussian")
class GaussianKernel(RotationInvariantKernel):
    """Gaussian kernel on the sphere, ``exp(-τ ||u - v||²) = exp(-2τ (1 - uᵀv))``.

    The kernel of the uniformity loss of Wang & Isola (2020), whose official SFRIK baseline ("AUH")
    uses ``τ = 2.5``. Every Legendre coefficient of this φ is positive, so it belongs to the
    same family with infinitely many terms.

    Example:
        >>> import torch
        >>> GaussianKernel(tau=2.5).phi(torch.tensor([1.0, -1.0]), dim=3)
        tensor([1.0000e+00, 4.5400e-05])
    """

    def __init__(self, tau: float = 2.5):
        if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
            raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
        self.tau = float(tau)

    def __repr__(self) -> str:
        return f"GaussianKernel(tau={self.tau})"

    def phi_and_derivative(self, t: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        value = torch.exp(2.0 * self.tau * (t - 1.0))
        return value, (2.0 * self.tau) * value

    def phi(self, t: Tensor, dim: int) -> Tensor:
        return torch.exp(2.0 * self.tau * (t - 1.0))

    def uniform_mean(self, dim: int) -> float:
        check_dim(dim)
        return _gaussian_uniform_mean(self.tau, dim)


# numpy >= 2.0 names it trapezoid; 1.x only has trapz (the floor in pyproject is numpy 1.24)
_trapezoid = np.trapezoid if hasattr(np, "trapezoid") else np.trapz  # type: ignore[attr-defined]


@lru_cache(maxsize=256)
def _gaussian_uniform_mean(tau: float, dim: int) -> float:
    # cached per (τ, q): the loss asks for it at every step
    return sphere_inner_product_mean(lambda t: np.exp(2.0 * tau * (t - 1.0)), dim)


def sphere_inner_product_mean(function: Callable[[np.ndarray], np.ndarray], dim: int, points: int = 200_001) -> float:
    """``E f(uᵀv)`` for u, v uniform on S^{dim-1}, by quadrature in float64.

    With ``uᵀv = cos θ``, θ has density ∝ ``sin^{dim-2} θ`` on [0, π]; this form has no endpoint
    singularity (unlike the density ∝ (1-t²)^{(dim-3)/2} in t), and the weights are formed in
    log-space so that huge ``dim`` (where the mass concentrates near θ = π/2) does not underflow.
    """
    check_dim(dim)
    theta = np.linspace(0.0, np.pi, points)
    with np.errstate(divide="ignore"):
        log_weight = (dim - 2) * np.log(np.sin(theta)) if dim > 2 else np.zeros_like(theta)
    weight = np.exp(log_weight - log_weight.max())
    values = function(np.cos(theta))
    return float(_trapezoid(values * weight, theta) / _trapezoid(weight, theta))

"""The sphere's spectral kernel families, ``heat`` and ``bandlimited``, as Legendre series.

Both are rotation-invariant kernels ``φ(uᵀv) = Σ_{ℓ≥1} b_ℓ P_ℓ(q; uᵀv)`` whose weights come from
the spectrum of the sphere S^{q-1} ("Expanding SPHERE-JEPA", arXiv 2606.17603, evaluates these two
families: smooth exponential decay and a strict cut-off in frequency). They are computed exactly
like SFRIK's kernel (:class:`~sfrik_plugin.maths.kernels.TruncatedLegendreKernel`, one per q),
so every path that takes a Legendre series takes them: ``gram``, ``blocked``, ``reference``,
``feature`` (when the degree is ≤ 2), sharded or replicated under a process group.

Where the weights come from
---------------------------
Let ``{Y_ℓm}``, ``m = 1..N(q, ℓ)``, be an orthonormal basis (in L²(S^{q-1}) with the surface
measure) of the spherical harmonics of degree ℓ. They are the eigenfunctions of the
Laplace–Beltrami operator: ``-Δ Y_ℓm = λ_ℓ Y_ℓm`` with ``λ_ℓ = ℓ(ℓ + q - 2)``, and the eigenspace
has dimension

    N(q, ℓ) = (2ℓ + q - 2) (ℓ + q - 3)! / (ℓ! (q - 2)!)    (N(q, 0) = 1, N(q, 1) = q, N(3, ℓ) = 2ℓ + 1).

The addition theorem ties the harmonics to the Legendre polynomials of this project
(normalised by ``P_ℓ(q; 1) = 1``, see :mod:`sfrik_plugin.maths.legendre`):

    Σ_m Y_ℓm(u) Y_ℓm(v) = (N(q, ℓ) / |S^{q-1}|) P_ℓ(q; uᵀv).

A kernel defined by a filter ``g`` on the spectrum, ``K(u, v) = Σ_ℓ g(ℓ) Σ_m Y_ℓm(u) Y_ℓm(v)``,
is therefore the Legendre series with ``b_ℓ = g(ℓ) N(q, ℓ) / |S^{q-1}|``: the dimension factor
N(q, ℓ) appears because each degree's kernel sums over all N(q, ℓ) harmonics of that degree,
while ``P_ℓ`` is normalised to 1 at t = 1 (by Funk–Hecke, the same b_ℓ are the eigenvalues
of the integral operator times ``|S^{q-1}| / N(q, ℓ)``).

* ``heat``: the heat semigroup ``e^{τΔ}``, ``g(ℓ) = exp(-τ λ_ℓ)``, so
  ``b_ℓ ∝ N(q, ℓ) · exp(-τ ℓ(ℓ + q - 2))``.
* ``bandlimited``: every degree ``1 ≤ ℓ ≤ L`` with the same ``b_ℓ``. Under the uniform law,
  ``E (1/N²) Σ_ij b_ℓ P_ℓ(u_iᵀ u_j) = b_ℓ / N`` (Funk–Hecke: only the diagonal survives), so
  equal b_ℓ means each degree contributes equally to the MMD in expectation. (The reproducing
  kernel of all harmonics of degree ≤ L, ``g(ℓ) = 1``, would instead have ``b_ℓ ∝ N(q, ℓ)``,
  which at q = 32768 puts all but ~L/q of the mass on degree L: not what is built here.)

Degree 0 (the constant) is dropped: ``b_0 = 0``, which the MMD to the uniform law ignores anyway,
so ``uniform_mean`` is 0 as for SFRIK's kernel.

Normalisation and numerics
--------------------------
The weights are scaled so that ``φ(1) = Σ b_ℓ = scale``, by default 81 = 1 + 40 + 40, φ(1) of
SFRIK's default kernel: the kernel's size, hence what ``sim_coeff`` balances, stays the same
when the kernel changes (the constant ``|S^{q-1}|`` and the heat kernel's own scale drop out).
Both factors are formed in log space: ``log N(q, ℓ)`` with ``lgamma`` (N overflows float64 from
ℓ ≈ 150 at q = 32768) and ``-τ ℓ(ℓ + q - 2)`` as is (its exponential underflows once
τ q > 745), normalised by a log-sum-exp; weights below float64's range become 0.

Truncation of the heat series
-----------------------------
The ratio of consecutive heat weights,

    r_ℓ = b_{ℓ+1} / b_ℓ = (2ℓ + q)/(2ℓ + q - 2) · (ℓ + q - 2)/(ℓ + 1) · exp(-τ (2ℓ + q - 1)),

does not increase with ℓ (each factor does not, for q ≥ 2). Hence once ``r_m < 1``,
``Σ_{ℓ≥m} b_ℓ ≤ b_m / (1 - r_m)`` (a geometric series). Since ``|P_ℓ(q; t)| ≤ 1`` on [-1, 1],
the weight left out beyond degree L bounds both ``sup_t |φ_∞(t) - φ_L(t)|`` and the change of
the MMD² (either estimator) that the truncation makes; ``tail_bound(q)`` returns that bound in
the units of φ (``φ_∞`` is the untruncated series scaled by the same constant). Without a
``degree``, L is the smallest degree whose bound is ≤ ``tolerance · scale``.

Choosing τ across q
-------------------
For ℓ ≪ q and τℓ ≪ 1, ``r_ℓ ≈ μ / (ℓ + 1)`` with ``μ = q · exp(-τ q)``: the weights follow a
Poisson law of rate μ over the degrees, conditioned on ℓ ≥ 1. A τ fixed across q would therefore
put nearly all the weight on degree 1 at large q (τ q ≫ log q) or spread it over thousands of
degrees (τ q ≪ log q); :meth:`HeatKernel.tau_for` gives ``τ = log(q / μ) / q``, the τ that keeps
the shape of the weights (rate μ) the same at every q.

Example:
    >>> import torch
    >>> from sfrik_plugin import build_kernel
    >>> heat = build_kernel("heat", tau=HeatKernel.tau_for(8192, rate=2.0))
    >>> [round(b, 2) for b in heat.weights_for(8192)]  # Poisson(2) shape, summing to 81
    [25.43, 25.41, 16.89, 8.41, 3.34, 1.1, 0.31, 0.08, 0.02, 0.0, 0.0, 0.0]
    >>> heat.tail_bound(8192) < 1e-6 * 81
    True
    >>> round(float(heat.phi(torch.tensor([1.0], dtype=torch.float64), 8192)[0]), 9)  # φ(1) = scale
    81.0
    >>> build_kernel("bandlimited", degree=3).weights_for(8192)
    (27.0, 27.0, 27.0)
"""

from __future__ import annotations

import math
from abc import abstractmethod

import numpy as np
from torch import Tensor

from .kernels import RotationInvariantKernel, TruncatedLegendreKernel, register_kernel
from .legendre import _check_dim

__all__ = ["DEFAULT_PHI_AT_ONE", "SpectralKernel", "HeatKernel", "BandlimitedKernel", "harmonic_dimension_log"]

#: φ(1) = Σ b_ℓ of SFRIK's default kernel (1 + 40 + 40): the default ``scale`` of the spectral kernels
DEFAULT_PHI_AT_ONE = float(sum(TruncatedLegendreKernel().weights))

#: the most degrees summed one by one when bounding a heat tail whose weights still grow
_TAIL_SCAN_LIMIT = 1 << 22
_TAIL_SCAN_CHUNK = 1 << 16
_LOG_HALF = math.log(0.5)
#: up to this degree log N(q, ℓ) sums logs (exact to rounding); beyond, a difference of lgamma
_DIRECT_LOG_SUM = 1024


def harmonic_dimension_log(dim: int, degree: int) -> float:
    """``log N(q, ℓ)``, the log of the dimension of the degree-ℓ spherical harmonics on S^{q-1}.

    ``N(q, ℓ) = (2ℓ + q - 2) (ℓ + q - 3)! / (ℓ! (q - 2)!)``, in log space (a sum of logs, and
    ``lgamma`` past degree 1024) so that it never overflows.

    Example:
        >>> [round(math.exp(harmonic_dimension_log(3, ell))) for ell in range(4)]  # 2ℓ + 1 on S²
        [1, 3, 5, 7]
        >>> round(harmonic_dimension_log(32768, 200) / math.log(10))  # N(32768, 200) ≈ 10^528
        528
    """
    _check_dim(dim)
    if isinstance(degree, bool) or not isinstance(degree, int) or degree < 0:
        raise ValueError(f"degree must be an integer >= 0, got {degree!r}")
    if degree == 0:
        return 0.0
    if dim == 2:
        return math.log(2.0)  # cos ℓθ and sin ℓθ
    if degree <= _DIRECT_LOG_SUM:
        # log((ℓ + q - 3)! / (q - 2)!) as a sum of ℓ - 1 logs: lgamma's difference would lose ~1e-11 at q = 32768
        rising = math.fsum(math.log(dim - 2 + k) for k in range(1, degree))
    else:
        rising = math.lgamma(degree + dim - 2) - math.lgamma(dim - 1)
    return math.log(2 * degree + dim - 2) + rising - math.lgamma(degree + 1)


def _log_ratios(degrees: np.ndarray, dim: int, tau: float) -> np.ndarray:
    """``log r_ℓ = log(b_{ℓ+1} / b_ℓ)`` of the heat weights (module docstring), for ℓ >= 1."""
    ell = degrees.astype(np.float64)
    return np.log1p(2.0 / (2 * ell + dim - 2)) + np.log((ell + dim - 2) / (ell + 1)) - tau * (2 * ell + dim - 1)


def _log_geometric_tail(log_first: float, log_ratio: float) -> float:
    """``log(b / (1 - r))`` from ``log b`` and ``log r < 0``: the sum of the tail it starts."""
    return log_first - math.log(-math.expm1(log_ratio))


def _exp_or_inf(log_value: float) -> float:
    """``exp`` that reads ``inf`` past float64's range instead of raising OverflowError."""
    return math.exp(log_value) if log_value < 709.0 else math.inf


def _check_positive(name: str, value: object) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value <= 0:  # type: ignore[operator]
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return float(value)  # type: ignore[arg-type]


def _check_degree(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return value


class SpectralKernel(RotationInvariantKernel):
    """A Legendre series whose weights depend on q: ``φ = Σ_{ℓ=1..L} b_ℓ(q) P_ℓ(q; ·)``.

    Subclasses give :meth:`weights_for`; φ, φ', the uniform mean (0) and the feature-space form
    are those of the :class:`TruncatedLegendreKernel` with these weights (one per q, cached).
    """

    scale: float

    def __init__(self) -> None:
        self._per_dim: dict[int, TruncatedLegendreKernel] = {}

    @abstractmethod
    def weights_for(self, dim: int) -> tuple[float, ...]:
        """``(b_1, ..., b_L)`` at q = ``dim``, summing to ``scale``."""

    def degree_for(self, dim: int) -> int:
        """L, the number of weights at q = ``dim``."""
        return len(self.weights_for(dim))

    def tail_bound(self, dim: int) -> float:
        """Upper bound on ``Σ_{ℓ>L} b_ℓ``, the weight the truncation leaves out (0: none)."""
        return 0.0

    def legendre_kernel(self, dim: int) -> TruncatedLegendreKernel:
        """The :class:`TruncatedLegendreKernel` this kernel is at q = ``dim``."""
        if dim not in self._per_dim:
            _check_dim(dim)
            self._per_dim[dim] = TruncatedLegendreKernel(self.weights_for(dim))
        return self._per_dim[dim]

    def phi_and_derivative(self, t: Tensor, dim: int) -> tuple[Tensor, Tensor]:
        return self.legendre_kernel(dim).phi_and_derivative(t, dim)

    def phi(self, t: Tensor, dim: int) -> Tensor:
        return self.legendre_kernel(dim).phi(t, dim)

    def uniform_mean(self, dim: int) -> float:
        return self.legendre_kernel(dim).uniform_mean(dim)

    def feature_space_coefficients(self, dim: int) -> tuple[float, float, float] | None:
        return self.legendre_kernel(dim).feature_space_coefficients(dim)


@register_kernel("heat")
class HeatKernel(SpectralKernel):
    """The heat kernel of S^{q-1}: ``b_ℓ ∝ N(q, ℓ) exp(-τ ℓ(ℓ + q - 2))``, ``ℓ = 1..L``, ``Σ b_ℓ = scale``.

    Args:
        tau: diffusion time τ > 0 (see :meth:`tau_for` to keep the same shape across q).
        degree: the truncation degree L; ``None`` chooses, for each q, the smallest L whose
            :meth:`tail_bound` is at most ``tolerance · scale``.
        tolerance: the weight left out, relative to φ(1), when ``degree`` is ``None``.
        max_degree: the largest L the automatic choice may take (each degree costs one
            elementwise pass over the Gram matrix); beyond it, an error says what to change.
        scale: φ(1) = Σ b_ℓ (default 81, φ(1) of SFRIK's default kernel).

    The derivation, the tail bound and the choice of τ are in :mod:`sfrik_plugin.maths.spectral`.

    Example:
        >>> kernel = HeatKernel(tau=0.5)
        >>> kernel.weights_for(3)  # on S²: b_ℓ ∝ (2ℓ + 1) e^{-ℓ(ℓ+1)/2}
        (65.23..., 14.71..., 1.025..., 0.0241..., 0.000198...)
        >>> kernel.tail_bound(3) <= 1e-6 * 81
        True
    """

    def __init__(
        self,
        tau: float,
        degree: int | None = None,
        tolerance: float = 1e-6,
        max_degree: int = 64,
        scale: float = DEFAULT_PHI_AT_ONE,
    ):
        super().__init__()
        self.tau = _check_positive("tau", tau)
        self.degree = None if degree is None else _check_degree("degree", degree)
        self.tolerance = _check_positive("tolerance", tolerance)
        if self.tolerance >= 1:
            raise ValueError(f"tolerance must be in (0, 1) (relative to φ(1)), got {tolerance!r}")
        self.max_degree = _check_degree("max_degree", max_degree)
        self.scale = _check_positive("scale", scale)
        self._solved: dict[int, tuple[tuple[float, ...], float]] = {}

    def __repr__(self) -> str:
        return (
            f"HeatKernel(tau={self.tau}, degree={self.degree}, tolerance={self.tolerance}, "
            f"max_degree={self.max_degree}, scale={self.scale})"
        )

    @staticmethod
    def tau_for(dim: int, rate: float) -> float:
        """``τ = log(q / μ) / q``: the τ whose weights at q follow a Poisson law of rate μ over the
        degrees (to first order in ℓ/q; module docstring), the same shape at every q.

        Example:
            >>> round(HeatKernel.tau_for(8192, rate=2.0), 6)
            0.001015
        """
        _check_dim(dim)
        rate = _check_positive("rate", rate)
        if rate >= dim:
            raise ValueError(f"rate must be below q = {dim} (τ > 0), got {rate!r}")
        return math.log(dim / rate) / dim

    def _log_weights(self, dim: int, degree: int) -> np.ndarray:
        """Unnormalised ``log b_ℓ`` for ``ℓ = 1..degree``."""
        return np.array(
            [harmonic_dimension_log(dim, ell) - self.tau * ell * (ell + dim - 2) for ell in range(1, degree + 1)]
        )

    def _log_tail(self, dim: int, degree: int, log_next: float) -> float:
        """``log`` of a bound on ``Σ_{ℓ>degree} b_ℓ`` (unnormalised), from ``log b_{degree+1}``: the
        terms are summed one by one until their ratio falls below 1/2, then the rest is bounded by
        the geometric series (at most the last term again, since the ratios never increase)."""
        logs: list[float] = []
        start, log_first, chunk = degree + 1, log_next, 64
        last_ratio = math.inf
        while start - degree <= _TAIL_SCAN_LIMIT:
            ratios = _log_ratios(np.arange(start, start + chunk), dim, self.tau)
            falling = np.flatnonzero(ratios < _LOG_HALF)
            stop = int(falling[0]) if falling.size else ratios.size
            # log b for ℓ = start .. start + stop (the last one starts the geometric tail)
            terms = log_first + np.concatenate([[0.0], np.cumsum(ratios[:stop])])
            if falling.size:
                logs += list(terms[:-1]) + [_log_geometric_tail(float(terms[-1]), float(ratios[stop]))]
                return float(np.logaddexp.reduce(np.array(logs)))
            logs.append(float(np.logaddexp.reduce(terms[:-1])))
            start, log_first, last_ratio = start + stop, float(terms[-1]), float(ratios[-1])
            chunk = min(2 * chunk, _TAIL_SCAN_CHUNK)
        if last_ratio < 0:  # falling, though slowly: close with the geometric bound where the scan stopped
            logs.append(_log_geometric_tail(log_first, _log_ratios(np.array([start]), dim, self.tau)[0]))
            return float(np.logaddexp.reduce(np.array(logs)))
        return math.inf  # the weights still grow after 4 million degrees: no finite bound found here

    def _solve(self, dim: int) -> tuple[tuple[float, ...], float]:
        """``(weights, tail bound)`` at q = ``dim`` (cached)."""
        if dim in self._solved:
            return self._solved[dim]
        _check_dim(dim)
        top = self.degree if self.degree is not None else self.max_degree
        log_b = self._log_weights(dim, top + 1)
        log_mass = np.logaddexp.accumulate(log_b)  # log Σ_{ℓ≤L} b_ℓ for L = 1..top+1
        if self.degree is not None:
            degree = self.degree
            log_tail = self._log_tail(dim, degree, float(log_b[degree]))
        else:
            ratios = _log_ratios(np.arange(2, top + 2), dim, self.tau)  # r_{L+1} for L = 1..top
            degree, log_tail = 0, math.inf
            for L in range(1, top + 1):
                if ratios[L - 1] < 0:  # the weights fall from degree L + 1 on: the tail can be small
                    log_tail = self._log_tail(dim, L, float(log_b[L]))
                    if log_tail - log_mass[L - 1] <= math.log(self.tolerance):
                        degree = L
                        break
            if degree == 0:
                relative = _exp_or_inf(log_tail - float(log_mass[top - 1]))
                found = f"bound {relative:.3g}" if math.isfinite(relative) else "its weights still grow there"
                raise ValueError(
                    f"heat kernel tau={self.tau} at q={dim}: the weight beyond max_degree={self.max_degree} "
                    f"is not below tolerance={self.tolerance} of φ(1) ({found}); raise tau "
                    f"(HeatKernel.tau_for(q, rate) keeps few degrees), max_degree or tolerance, or set degree"
                )
        log_total = float(log_mass[degree - 1])
        weights = tuple(float(w) for w in self.scale * np.exp(log_b[:degree] - log_total))
        solved = weights, self.scale * _exp_or_inf(log_tail - log_total)
        self._solved[dim] = solved
        return solved

    def weights_for(self, dim: int) -> tuple[float, ...]:
        return self._solve(dim)[0]

    def tail_bound(self, dim: int) -> float:
        """Upper bound on ``Σ_{ℓ>L} b_ℓ`` at q = ``dim`` (in φ's units, with the same scaling as the
        kept weights): it bounds ``sup |φ_∞ - φ_L|`` on [-1, 1] and the change of the MMD². Values
        under float64's range read 0; ``inf`` when no bound was found (weights still growing) or
        the bound passes float64's range (the weights left out dwarf the ones kept)."""
        return self._solve(dim)[1]


@register_kernel("bandlimited")
class BandlimitedKernel(SpectralKernel):
    """Every degree ``1 ≤ ℓ ≤ L`` with the same weight: ``b_ℓ = scale / L`` (module docstring).

    Exact (no truncation, ``tail_bound`` is 0) and the same weights at every q; with
    ``degree <= 2`` it has the O(N q²) feature-space form.

    Example:
        >>> import torch
        >>> kernel = BandlimitedKernel(degree=2, scale=2.0)
        >>> kernel.weights_for(3)
        (1.0, 1.0)
        >>> kernel.phi(torch.tensor([0.0]), dim=3)  # P_1(0) + P_2(0) = 0 - 1/2 on S²
        tensor([-0.5000])
    """

    def __init__(self, degree: int = 3, scale: float = DEFAULT_PHI_AT_ONE):
        super().__init__()
        self.degree = _check_degree("degree", degree)
        self.scale = _check_positive("scale", scale)

    def __repr__(self) -> str:
        return f"BandlimitedKernel(degree={self.degree}, scale={self.scale})"

    def weights_for(self, dim: int) -> tuple[float, ...]:
        _check_dim(dim)
        return (self.scale / self.degree,) * self.degree

"""Gradient noise of a sliced regulariser: SIGReg's gradient over slice draws, against SFRIK's.

SIGReg (:mod:`sfrik_plugin.contenders.sigreg`) averages an Epps–Pulley statistic over M random
unit directions drawn anew every step, so the gradient it gives the embeddings of one fixed batch
is a random vector; SFRIK's MMD integrates the directions out (a kernel on the sphere) and gives
one deterministic gradient. The figure here is the **relative gradient deviation** at a fixed
batch::

    ρ = sqrt( Σ_i ‖g_i − ḡ‖² / (D − 1) ) / ‖E g‖

over D slice draws (g_i: the gradient of the regulariser w.r.t. both views' embeddings, flattened;
ḡ their mean, E g the expected gradient): how far one step's gradient lies from the expected one,
relative to its size.
SIGReg's statistic is the mean over M independent slices, so its gradient is a mean of M i.i.d.
per-slice gradients and ρ falls exactly like 1/sqrt(M) in expectation; SFRIK's ρ is zero.

Example:
    >>> g = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    >>> relative_gradient_deviation(g)["relative"]
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..console import InputError
from ..contenders.losses import SFRIK_PROFILE_WEIGHTS
from ..contenders.sigreg import build_sigreg
from ..maths.losses import sfrik_loss_func

__all__ = [
    "BATCH_KINDS",
    "noise_batch",
    "relative_gradient_deviation",
    "sigreg_gradients",
    "sfrik_gradients",
    "slices_below",
]

#: The fixed batches: ``anisotropic`` (per-dimension scales log-spaced from 0.1 to 3, a batch far
#: from SIGReg's isotropic target, as early in training) and ``gaussian`` (the standard Gaussian
#: SIGReg aims for: its expected gradient is small, so the relative deviation is large).
BATCH_KINDS = ("anisotropic", "gaussian")


def noise_batch(n: int, q: int, kind: str = "anisotropic", seed: int = 0) -> tuple[Tensor, Tensor]:
    """Two views ``(N × q)`` of one batch, float32: ``z`` of :data:`BATCH_KINDS` and
    ``z + 0.3 · ε`` (a second view close to the first, as two augmentations give).

    Example:
        >>> z1, z2 = noise_batch(4, 3)
        >>> tuple(z1.shape), bool((z1 != z2).all())
        ((4, 3), True)
    """
    if kind not in BATCH_KINDS:
        raise InputError(f"batch kind must be one of {list(BATCH_KINDS)}, got {kind!r}")
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, q, generator=generator)
    if kind == "anisotropic":
        z = z * torch.logspace(math.log10(3.0), -1.0, q)
    return z, z + 0.3 * torch.randn(n, q, generator=generator)


def relative_gradient_deviation(gradients: Tensor, mean: Tensor | None = None) -> dict[str, Any]:
    """ρ of the module docstring for ``gradients`` of shape ``(draws, ...)`` (one row per draw,
    computed in float64): ``{relative, std, mean_norm, draws}``; ``std`` is the root of the summed
    per-coordinate variances (unbiased).

    The denominator is the norm of the *expected* gradient. Without ``mean`` it is estimated
    from the draws without bias, ``sqrt(‖ḡ‖² − std² / draws)``: the plain ``‖ḡ‖`` carries the
    draws' own noise, and where ρ exceeds ``sqrt(draws)`` it alone would make ρ saturate near
    ``sqrt(draws)``; ``relative`` is ``inf`` when the draws cannot tell the mean from zero.
    ``mean``: a better estimate of the expected gradient (e.g. pooled over many more draws).

    Example:
        >>> g = torch.tensor([[3.0, 1.0], [3.0, -1.0]])      # mean (3, 0), deviations ±(0, 1)
        >>> out = relative_gradient_deviation(g)
        >>> round(out["std"] ** 2, 6), round(out["mean_norm"] ** 2, 6), round(out["relative"], 6)
        (2.0, 8.0, 0.5)
        >>> relative_gradient_deviation(g, mean=torch.tensor([3.0, 0.0]))["relative"] == 2**0.5 / 3
        True
    """
    if gradients.ndim < 1 or gradients.shape[0] < 2:
        raise InputError(f"need at least 2 draws (rows), got shape {tuple(gradients.shape)}")
    flat = gradients.reshape(gradients.shape[0], -1).double()
    sample_mean = flat.mean(0)
    variance = float((flat - sample_mean).square().sum()) / (flat.shape[0] - 1)
    std = math.sqrt(variance)
    if mean is not None:
        norm = float(mean.reshape(-1).double().norm())
    else:
        norm = math.sqrt(max(0.0, float(sample_mean.square().sum()) - variance / flat.shape[0]))
    relative = std / norm if norm > 0 else (0.0 if std == 0 else math.inf)
    return {"relative": relative, "std": std, "mean_norm": norm, "draws": int(flat.shape[0])}


def _leaf(views: Sequence[Tensor]) -> list[Tensor]:
    return [v.detach().clone().requires_grad_() for v in views]


def sigreg_gradients(z1: Tensor, z2: Tensor, slices: int, draws: int, first_step: int = 0, seed: int = 0) -> Tensor:
    """``(draws, 2 N q)``: the gradient of SIGReg(views) (the regulariser alone, M = ``slices``,
    17 knots on [0, 3]) w.r.t. both views, once per slice draw (steps ``first_step …``).

    Example:
        >>> z1, z2 = noise_batch(8, 4)
        >>> sigreg_gradients(z1, z2, slices=16, draws=3).shape
        torch.Size([3, 64])
    """
    if draws < 1:
        raise InputError(f"draws must be >= 1, got {draws!r}")
    sigreg = build_sigreg(num_slices=slices, gather_distributed=False, seed=seed)
    leaves = _leaf([z1, z2])
    rows = []
    for draw in range(draws):
        sigreg.step = first_step + draw  # type: ignore[assignment]  # an attribute of SeededSIGReg
        value = sigreg(torch.stack(leaves))
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, leaves)]))
    return torch.stack(rows)


def sfrik_gradients(z1: Tensor, z2: Tensor, repeats: int = 2) -> Tensor:
    """``(repeats, 2 N q)``: the gradient of SFRIK's MMD term (Gram path, the profiled weights)
    w.r.t. both views, computed ``repeats`` times.

    Example:
        >>> z1, z2 = noise_batch(8, 4)
        >>> relative_gradient_deviation(sfrik_gradients(z1, z2))["relative"]
        0.0
    """
    leaves = _leaf([z1, z2])
    rows = []
    for _ in range(repeats):
        value = sfrik_loss_func(*leaves, method="gram", weights=SFRIK_PROFILE_WEIGHTS).mmd
        rows.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(value, leaves)]))
    return torch.stack(rows)


def slices_below(slices: Sequence[int], relative: Sequence[float], threshold: float) -> dict[str, Any]:
    """The M at which ρ falls below ``threshold``: ``measured`` (the smallest measured M with
    ρ < threshold, or ``None``) and ``fitted`` (from ρ ≈ c / sqrt(M), c fitted by least squares in
    log space on every measured M: M = (c / threshold)²).

    Example:
        >>> slices_below([16, 64, 256], [0.5, 0.25, 0.125], 0.1)
        {'measured': None, 'fitted': 400.0, 'c': 2.0}
    """
    pairs = [(int(m), float(r)) for m, r in zip(slices, relative) if r > 0 and math.isfinite(r)]
    if not pairs:
        raise InputError("no finite positive relative deviation to fit")
    log_c = sum(math.log(r) + 0.5 * math.log(m) for m, r in pairs) / len(pairs)
    c = math.exp(log_c)
    measured = next((m for m, r in sorted(pairs) if r < threshold), None)
    return {"measured": measured, "fitted": round((c / threshold) ** 2, 1), "c": round(c, 6)}

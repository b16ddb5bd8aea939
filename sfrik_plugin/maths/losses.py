"""SFRIK and uniformity ("AUH") losses: pure functions plus ``nn.Module`` wrappers.

SFRIK (Zheng et al., ICLR 2023) for two views with projector outputs ``z1, z2`` (N × q):

    x, y = z1 / ||z1||, z2 / ||z2||                           (rows onto S^{q-1})
    invariance = (1 / (N q)) Σ ||x_i - y_i||²                 (MSE, global batch)
    mmd = [M(x) + M(y)] / 2,   M(e) = (1/N²) Σ_{i,j} φ(e_iᵀ e_j),   φ = Σ_{ℓ=1..L} b_ℓ P_ℓ(q; ·)
    loss = sim_coeff · invariance + mmd_coeff · mmd

In the paper's notation ``λ = mmd_coeff · q / sim_coeff``. Under a process group every rank
returns the global value and DDP's gradient averaging yields the single-process gradients on
the concatenated batch (see :mod:`sfrik_plugin.maths.distributed`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .distributed import all_reduce_sum
from .kernels import GaussianKernel, TruncatedLegendreKernel
from .mmd import check_embeddings, kernel_mean, resolve_distributed, sphere_statistics

__all__ = [
    "SFRIK_LOSS_DEFAULTS",
    "UNIFORMITY_LOSS_DEFAULTS",
    "SFRIKLossOutput",
    "invariance_loss",
    "sfrik_loss_func",
    "sfrik_multicrop_loss_func",
    "SFRIKLoss",
    "uniformity_loss_func",
    "UniformityLoss",
]

#: The one place the loss defaults live: the paper's L = 3, b = (1, 40, 40), ResNet-18 setting.
SFRIK_LOSS_DEFAULTS: dict[str, Any] = {
    "sim_coeff": 4000.0,  # official: 4000 for ResNet-18 (IN20%), 40000 for ResNet-50 (IN-1k)
    "mmd_coeff": 1.0,
    "weights": (1.0, 40.0, 40.0),
    "estimator": "v",
    "method": "auto",
    "block_size": None,
    "distributed": "auto",
}

#: Defaults of the official "AUH" baseline (Wang & Isola's uniformity loss).
UNIFORMITY_LOSS_DEFAULTS: dict[str, Any] = {
    "sim_coeff": 3000.0,
    "unif_coeff": 1.0,
    "tau": 2.5,
    "distributed": "auto",
}


class SFRIKLossOutput(NamedTuple):
    """The total loss and its two parts (scalar tensors, global-batch values)."""

    loss: Tensor
    invariance: Tensor
    mmd: Tensor


def _normalize(z: Tensor) -> Tensor:
    # in float32 at least, so fp16 norms of wide embeddings do not overflow; zero rows stay zero
    z = z.float() if z.dtype in (torch.float16, torch.bfloat16) else z
    return F.normalize(z, dim=1, eps=1e-12)


def _check_same_shapes(views: Sequence[Tensor], names: Sequence[str], check_finite: bool) -> None:
    for view, name in zip(views, names):
        check_embeddings(view, name, check_finite)
    reference = views[0].shape
    for view, name in zip(views[1:], names[1:]):
        if view.shape != reference:
            raise ValueError(
                f"all views must have the same shape; {names[0]} is {tuple(reference)} but {name} is {tuple(view.shape)}"
            )


def _global_mean(local_sums: Tensor, local_count: int, distributed: str, group) -> Tensor:
    """``local_sums / count`` over the global batch, with one (differentiable) all-reduce."""
    mode, group, _, _ = resolve_distributed(distributed, group)
    if mode == "none":
        return local_sums / local_count
    count = local_sums.new_full((1,), float(local_count))
    reduced = all_reduce_sum(torch.cat([local_sums.reshape(-1), count]), group)
    return reduced[:-1].reshape(local_sums.shape) / reduced[-1]


def invariance_loss(x: Tensor, y: Tensor, *, distributed: str = "auto", group: Any = None) -> Tensor:
    """Mean squared difference of two batches over the global batch (``F.mse_loss`` on one process).

    Example:
        >>> import torch
        >>> invariance_loss(torch.zeros(4, 2), torch.ones(4, 2))
        tensor(1.)
    """
    squared = (x - y).pow(2).sum()
    return _global_mean(squared, x.numel(), distributed, group)


def _multiview_loss(
    large: Sequence[Tensor],
    small: Sequence[Tensor],
    regularize_small: bool,
    sim_coeff: float,
    mmd_coeff: float,
    kernel,
    *,
    estimator: str,
    method: str,
    block_size: int | None,
    distributed: str,
    normalize: bool,
    group: Any,
    check_finite: bool,
    names: Sequence[str] | None = None,
) -> SFRIKLossOutput:
    views = list(large) + list(small)
    if names is None:
        names = [f"large[{i}]" for i in range(len(large))] + [f"small[{i}]" for i in range(len(small))]
    _check_same_shapes(views, names, check_finite=False)
    for name, value in (("sim_coeff", sim_coeff), ("mmd_coeff", mmd_coeff)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
            raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    # invariance: each large view against every other view (two views: plain MSE)
    pairs = [(i, j) for i in range(len(large)) for j in range(len(views)) if j != i]
    regularized = range(len(views)) if regularize_small else range(len(large))
    statistics = sphere_statistics(
        views,
        pairs,
        tuple(regularized),
        kernel,
        normalize=normalize,
        estimator=estimator,
        method=method,
        block_size=block_size,
        distributed=distributed,
        group=group,
    )
    invariance = statistics[: len(pairs)].mean()
    mmd = statistics[len(pairs) :].mean() - kernel.uniform_mean(views[0].shape[1])
    loss = sim_coeff * invariance + mmd_coeff * mmd
    if check_finite and not bool(torch.isfinite(loss)):
        # checking the scalar output costs nothing; find the culprit only on failure
        _check_same_shapes(views, names, check_finite=True)
        raise ValueError(f"the SFRIK loss is not finite ({float(loss)}) although its inputs are")
    return SFRIKLossOutput(loss, invariance, mmd)


def sfrik_loss_func(
    z1: Tensor,
    z2: Tensor,
    *,
    sim_coeff: float = SFRIK_LOSS_DEFAULTS["sim_coeff"],
    mmd_coeff: float = SFRIK_LOSS_DEFAULTS["mmd_coeff"],
    weights: Sequence[float] = SFRIK_LOSS_DEFAULTS["weights"],
    estimator: str = SFRIK_LOSS_DEFAULTS["estimator"],
    method: str = SFRIK_LOSS_DEFAULTS["method"],
    block_size: int | None = SFRIK_LOSS_DEFAULTS["block_size"],
    distributed: str = SFRIK_LOSS_DEFAULTS["distributed"],
    normalize: bool = True,
    group: Any = None,
    check_finite: bool = True,
) -> SFRIKLossOutput:
    """SFRIK loss of two views (module docstring for the formula).

    Args:
        z1, z2: projector outputs of the two views, ``(N_local, q)``, q >= 2.
        sim_coeff: weight of the invariance (MSE) term.
        mmd_coeff: weight of the MMD term.
        weights: Legendre weights ``(b_1, ..., b_L)``, all >= 0.
        estimator, method, block_size, distributed, group: see :func:`sfrik_plugin.kernel_mean`.
        normalize: project the rows onto the sphere first (leave on for raw projector outputs).
        check_finite: raise on NaN/inf inputs.

    Returns:
        :class:`SFRIKLossOutput` ``(loss, invariance, mmd)``.

    Example:
        >>> import torch
        >>> z1, z2 = torch.randn(64, 128), torch.randn(64, 128)
        >>> out = sfrik_loss_func(z1, z2)
        >>> bool(torch.isclose(out.loss, 4000 * out.invariance + out.mmd))
        True
    """
    return _multiview_loss(
        [z1, z2],
        [],
        True,
        sim_coeff,
        mmd_coeff,
        TruncatedLegendreKernel(weights),
        estimator=estimator,
        method=method,
        block_size=block_size,
        distributed=distributed,
        normalize=normalize,
        group=group,
        check_finite=check_finite,
        names=("z1", "z2"),
    )


def sfrik_multicrop_loss_func(
    large: Sequence[Tensor],
    small: Sequence[Tensor] = (),
    *,
    regularize_small: bool = True,
    sim_coeff: float = SFRIK_LOSS_DEFAULTS["sim_coeff"],
    mmd_coeff: float = SFRIK_LOSS_DEFAULTS["mmd_coeff"],
    weights: Sequence[float] = SFRIK_LOSS_DEFAULTS["weights"],
    estimator: str = SFRIK_LOSS_DEFAULTS["estimator"],
    method: str = SFRIK_LOSS_DEFAULTS["method"],
    block_size: int | None = SFRIK_LOSS_DEFAULTS["block_size"],
    distributed: str = SFRIK_LOSS_DEFAULTS["distributed"],
    normalize: bool = True,
    group: Any = None,
    check_finite: bool = True,
) -> SFRIKLossOutput:
    """SFRIK with several crops per image (the paper's SwAV-style multi-crop).

    ``invariance`` averages, over the large views i, the mean over every other view j (large or
    small) of ``MSE(z_i, z_j)``; ``mmd`` averages ``M`` over all views when
    ``regularize_small`` (the paper's ``reg_small=True``) or over the large views only. With two
    large views and no small one this is exactly :func:`sfrik_loss_func`.

    Example:
        >>> import torch
        >>> large = [torch.randn(32, 64) for _ in range(2)]
        >>> small = [torch.randn(32, 64) for _ in range(4)]
        >>> out = sfrik_multicrop_loss_func(large, small, regularize_small=False)
        >>> out.loss.shape
        torch.Size([])
    """
    if len(large) < 1 or len(large) + len(small) < 2:
        raise ValueError(
            f"need at least one large view and two views in all; got {len(large)} large and {len(small)} small"
        )
    return _multiview_loss(
        large,
        small,
        bool(regularize_small),
        sim_coeff,
        mmd_coeff,
        TruncatedLegendreKernel(weights),
        estimator=estimator,
        method=method,
        block_size=block_size,
        distributed=distributed,
        normalize=normalize,
        group=group,
        check_finite=check_finite,
    )


class SFRIKLoss(nn.Module):
    """SFRIK loss as a module; see :func:`sfrik_loss_func` for the arguments.

    ``forward(z1, z2)`` returns the total loss; the parts of the last call are kept in
    ``self.last_output`` for logging.

    Example:
        >>> import torch
        >>> criterion = SFRIKLoss(sim_coeff=4000.0, weights=(1.0, 40.0, 40.0))
        >>> loss = criterion(torch.randn(32, 256), torch.randn(32, 256))
        >>> sorted(criterion.last_output._asdict())
        ['invariance', 'loss', 'mmd']
    """

    def __init__(
        self,
        sim_coeff: float = SFRIK_LOSS_DEFAULTS["sim_coeff"],
        mmd_coeff: float = SFRIK_LOSS_DEFAULTS["mmd_coeff"],
        weights: Sequence[float] = SFRIK_LOSS_DEFAULTS["weights"],
        estimator: str = SFRIK_LOSS_DEFAULTS["estimator"],
        method: str = SFRIK_LOSS_DEFAULTS["method"],
        block_size: int | None = SFRIK_LOSS_DEFAULTS["block_size"],
        distributed: str = SFRIK_LOSS_DEFAULTS["distributed"],
        normalize: bool = True,
    ):
        super().__init__()
        self.kernel = TruncatedLegendreKernel(weights)  # validates the weights now, not at step 1
        self.options = dict(
            sim_coeff=sim_coeff,
            mmd_coeff=mmd_coeff,
            weights=self.kernel.weights,
            estimator=estimator,
            method=method,
            block_size=block_size,
            distributed=distributed,
            normalize=normalize,
        )
        self.last_output: SFRIKLossOutput | None = None

    def extra_repr(self) -> str:
        return ", ".join(f"{key}={value!r}" for key, value in self.options.items())

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        self.last_output = sfrik_loss_func(z1, z2, **self.options)
        return self.last_output.loss


def uniformity_loss_func(
    z1: Tensor,
    z2: Tensor,
    *,
    sim_coeff: float = UNIFORMITY_LOSS_DEFAULTS["sim_coeff"],
    unif_coeff: float = UNIFORMITY_LOSS_DEFAULTS["unif_coeff"],
    tau: float = UNIFORMITY_LOSS_DEFAULTS["tau"],
    distributed: str = UNIFORMITY_LOSS_DEFAULTS["distributed"],
    group: Any = None,
    check_finite: bool = True,
) -> SFRIKLossOutput:
    """Alignment + uniformity loss of Wang & Isola ("AUH", the official SFRIK baseline).

    ``uniformity(e) = log( (1/(N(N-1))) Σ_{i≠j} exp(-2τ (1 - e_iᵀ e_j)) )``: the log of the
    U-statistic kernel mean of :class:`GaussianKernel`, i.e. a monotone transform of the Gaussian
    MMD to the uniform distribution. Returned as ``(loss, invariance, uniformity)``.

    Example:
        >>> import torch
        >>> out = uniformity_loss_func(torch.randn(64, 32), torch.randn(64, 32))
        >>> bool(out.mmd < 0)  # log of a mean kernel value < 1
        True
    """
    kernel = GaussianKernel(tau)
    _check_same_shapes([z1, z2], ["z1", "z2"], check_finite)
    x, y = _normalize(z1), _normalize(z2)
    invariance = invariance_loss(x, y, distributed=distributed, group=group)
    uniformity = (
        sum(
            torch.log(
                kernel_mean(
                    v, kernel, estimator="u", method="gram", distributed=distributed, group=group, check_finite=False
                )
            )
            for v in (x, y)
        )
        / 2
    )
    return SFRIKLossOutput(sim_coeff * invariance + unif_coeff * uniformity, invariance, uniformity)


class UniformityLoss(nn.Module):
    """Module form of :func:`uniformity_loss_func`.

    Example:
        >>> import torch
        >>> UniformityLoss(tau=2.5)(torch.randn(16, 8), torch.randn(16, 8)).shape
        torch.Size([])
    """

    def __init__(
        self,
        sim_coeff: float = UNIFORMITY_LOSS_DEFAULTS["sim_coeff"],
        unif_coeff: float = UNIFORMITY_LOSS_DEFAULTS["unif_coeff"],
        tau: float = UNIFORMITY_LOSS_DEFAULTS["tau"],
        distributed: str = UNIFORMITY_LOSS_DEFAULTS["distributed"],
    ):
        super().__init__()
        GaussianKernel(tau)  # validate now
        self.options = dict(sim_coeff=sim_coeff, unif_coeff=unif_coeff, tau=tau, distributed=distributed)
        self.last_output: SFRIKLossOutput | None = None

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        self.last_output = uniformity_loss_func(z1, z2, **self.options)
        return self.last_output.loss

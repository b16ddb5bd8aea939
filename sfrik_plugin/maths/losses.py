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

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from .distributed import all_reduce_sum
from .kernels import RotationInvariantKernel, TruncatedLegendreKernel
from .options import InvalidOption, MMDOptions
from .statistics import check_embeddings, resolve_distributed, sphere_statistics

__all__ = [
    "SFRIK_LOSS_DEFAULTS",
    "SFRIKLossOutput",
    "SFRIKLossSettings",
    "invariance_loss",
    "sfrik_loss_func",
    "sfrik_multicrop_loss_func",
    "SFRIKLoss",
    "check_views",
]

#: The one place the loss defaults live: the paper's L = 3, b = (1, 40, 40), ResNet-18 setting,
#: followed by the defaults of the MMD options (:class:`~sfrik_plugin.maths.options.MMDOptions`).
SFRIK_LOSS_DEFAULTS: dict[str, Any] = {
    "sim_coeff": 4000.0,  # official: 4000 for ResNet-18 (IN20%), 40000 for ResNet-50 (IN-1k)
    "mmd_coeff": 1.0,
    "weights": (1.0, 40.0, 40.0),
    **MMDOptions().defaults(),
}


class SFRIKLossOutput(NamedTuple):
    """The total loss and its two parts (scalar tensors, global-batch values)."""

    loss: Tensor
    invariance: Tensor
    mmd: Tensor


def check_views(views: Sequence[Tensor], names: Sequence[str], check_finite: bool) -> None:
    """Every view a valid batch of embeddings, all of the same shape (errors name the view)."""
    for view, name in zip(views, names):
        check_embeddings(view, name, check_finite)
    reference = views[0].shape
    for view, name in zip(views[1:], names[1:]):
        if view.shape != reference:
            raise ValueError(
                f"all views must have the same shape; {names[0]} is {tuple(reference)} but {name} is {tuple(view.shape)}"
            )


def _check_coefficient(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
        raise InvalidOption(name, f"must be a finite number >= 0, got {value!r}")


def invariance_loss(x: Tensor, y: Tensor, *, distributed: str = "auto", group: Any = None) -> Tensor:
    """Mean squared difference of two batches over the global batch (``F.mse_loss`` on one process).

    Example:
        >>> import torch
        >>> invariance_loss(torch.zeros(4, 2), torch.ones(4, 2))
        tensor(1.)
    """
    mode, group, _, _ = resolve_distributed(distributed, group)
    squared = (x - y).pow(2).sum()
    if mode == "none":
        return squared / x.numel()
    count = squared.new_full((1,), float(x.numel()))
    reduced = all_reduce_sum(torch.cat([squared.reshape(1), count]), group)
    return reduced[0] / reduced[1]


@dataclass(frozen=True)
class SFRIKLossSettings:
    """Everything of the SFRIK loss that is not a batch, validated once on construction: the
    coefficients, the kernel, the :class:`~sfrik_plugin.maths.options.MMDOptions` and ``normalize``.

    Build it once (a training method does it when it is built) and call :meth:`loss` or
    :meth:`multicrop_loss` at every step: nothing is re-validated or rebuilt per call (the kernel
    keeps its per-q cache). What depends on the batch or the process group (``method="auto"``,
    ``distributed="auto"``) is resolved per call, since the group may not exist yet when the
    settings are made. :func:`sfrik_loss_func` is ``SFRIKLossSettings.from_keywords(...).loss(...)``.

    Example:
        >>> import torch
        >>> settings = SFRIKLossSettings.from_keywords(sim_coeff=100.0, weights=(1.0, 40.0), method="gram")
        >>> z1, z2 = torch.randn(16, 8), torch.randn(16, 8)
        >>> bool(torch.isclose(settings.loss(z1, z2).loss, sfrik_loss_func(z1, z2, sim_coeff=100.0, weights=(1.0, 40.0)).loss))
        True
        >>> SFRIKLossSettings(sim_coeff=-1.0)
        Traceback (most recent call last):
        ...
        sfrik_plugin.maths.options.InvalidOption: sim_coeff must be a finite number >= 0, got -1.0
    """

    sim_coeff: float = SFRIK_LOSS_DEFAULTS["sim_coeff"]
    mmd_coeff: float = SFRIK_LOSS_DEFAULTS["mmd_coeff"]
    kernel: RotationInvariantKernel = field(
        default_factory=lambda: TruncatedLegendreKernel(SFRIK_LOSS_DEFAULTS["weights"])
    )
    options: MMDOptions = field(default_factory=MMDOptions)
    normalize: bool = True

    def __post_init__(self) -> None:
        _check_coefficient("sim_coeff", self.sim_coeff)
        _check_coefficient("mmd_coeff", self.mmd_coeff)
        if not isinstance(self.kernel, RotationInvariantKernel):
            raise TypeError(f"kernel must be a RotationInvariantKernel, got {type(self.kernel).__name__}")
        if not isinstance(self.options, MMDOptions):
            raise TypeError(f"options must be an MMDOptions, got {type(self.options).__name__}")

    @classmethod
    def from_keywords(
        cls,
        *,
        sim_coeff: float = SFRIK_LOSS_DEFAULTS["sim_coeff"],
        mmd_coeff: float = SFRIK_LOSS_DEFAULTS["mmd_coeff"],
        weights: Sequence[float] = SFRIK_LOSS_DEFAULTS["weights"],
        normalize: bool = True,
        **options: Any,
    ) -> SFRIKLossSettings:
        """The settings from the keywords of :func:`sfrik_loss_func` (``weights``: the Legendre
        kernel's; ``**options``: :class:`~sfrik_plugin.maths.options.MMDOptions`'s)."""
        kernel = TruncatedLegendreKernel(weights)
        return cls(sim_coeff, mmd_coeff, kernel, MMDOptions.from_keywords(options), bool(normalize))

    def loss(self, z1: Tensor, z2: Tensor, *, check_finite: bool = True) -> SFRIKLossOutput:
        """The loss of two views (what :func:`sfrik_loss_func` returns)."""
        return self._views_loss([z1, z2], [], True, check_finite, ("z1", "z2"))

    def multicrop_loss(
        self,
        large: Sequence[Tensor],
        small: Sequence[Tensor] = (),
        *,
        regularize_small: bool = True,
        check_finite: bool = True,
    ) -> SFRIKLossOutput:
        """The loss of several crops per image (what :func:`sfrik_multicrop_loss_func` returns)."""
        if len(large) < 1 or len(large) + len(small) < 2:
            raise ValueError(
                f"need at least one large view and two views in all; got {len(large)} large and {len(small)} small"
            )
        return self._views_loss(large, small, bool(regularize_small), check_finite, None)

    def _views_loss(
        self,
        large: Sequence[Tensor],
        small: Sequence[Tensor],
        regularize_small: bool,
        check_finite: bool,
        names: Sequence[str] | None,
    ) -> SFRIKLossOutput:
        """The invariance pairs each large view with every other view, the MMD covers all views
        (``regularize_small``) or the large ones only."""
        views = list(large) + list(small)
        if names is None:
            names = [f"large[{i}]" for i in range(len(large))] + [f"small[{i}]" for i in range(len(small))]
        check_views(views, names, check_finite=False)
        kernel = self.kernel
        pairs = [(i, j) for i in range(len(large)) for j in range(len(views)) if j != i]
        regularized = range(len(views)) if regularize_small else range(len(large))
        statistics = sphere_statistics(
            views, pairs, tuple(regularized), kernel, normalize=self.normalize, options=self.options
        )
        invariance = statistics.distances.mean()
        mmd = statistics.kernel_means.mean() - kernel.uniform_mean(views[0].shape[1])
        loss = self.sim_coeff * invariance + self.mmd_coeff * mmd
        if check_finite and not bool(torch.isfinite(loss)):
            # checking the scalar output costs nothing; find the culprit only on failure
            check_views(views, names, check_finite=True)
            raise ValueError(f"the SFRIK loss is not finite ({float(loss)}) although its inputs are")
        return SFRIKLossOutput(loss, invariance, mmd)


def sfrik_loss_func(
    z1: Tensor,
    z2: Tensor,
    *,
    sim_coeff: float = SFRIK_LOSS_DEFAULTS["sim_coeff"],
    mmd_coeff: float = SFRIK_LOSS_DEFAULTS["mmd_coeff"],
    weights: Sequence[float] = SFRIK_LOSS_DEFAULTS["weights"],
    normalize: bool = True,
    check_finite: bool = True,
    **options: Any,
) -> SFRIKLossOutput:
    """SFRIK loss of two views (module docstring for the formula).

    Args:
        z1, z2: projector outputs of the two views, ``(N_local, q)``, q >= 2.
        sim_coeff: weight of the invariance (MSE) term.
        mmd_coeff: weight of the MMD term.
        weights: Legendre weights ``(b_1, ..., b_L)``, all >= 0.
        normalize: project the rows onto the sphere first (leave on for raw projector outputs).
        check_finite: raise on NaN/inf inputs.
        **options: ``estimator``, ``method``, ``block_size``, ``distributed``, ``group``
            (:class:`~sfrik_plugin.maths.options.MMDOptions`); ``method="reference"`` is the
            official formula by plain autograd.

    Returns:
        :class:`SFRIKLossOutput` ``(loss, invariance, mmd)``.

    Example:
        >>> import torch
        >>> z1, z2 = torch.randn(64, 128), torch.randn(64, 128)
        >>> out = sfrik_loss_func(z1, z2)
        >>> bool(torch.isclose(out.loss, 4000 * out.invariance + out.mmd))
        True
        >>> bool(torch.isclose(out.loss, sfrik_loss_func(z1, z2, method="reference").loss))
        True
    """
    settings = SFRIKLossSettings.from_keywords(
        sim_coeff=sim_coeff, mmd_coeff=mmd_coeff, weights=weights, normalize=normalize, **options
    )
    return settings.loss(z1, z2, check_finite=check_finite)


def sfrik_multicrop_loss_func(
    large: Sequence[Tensor],
    small: Sequence[Tensor] = (),
    *,
    regularize_small: bool = True,
    sim_coeff: float = SFRIK_LOSS_DEFAULTS["sim_coeff"],
    mmd_coeff: float = SFRIK_LOSS_DEFAULTS["mmd_coeff"],
    weights: Sequence[float] = SFRIK_LOSS_DEFAULTS["weights"],
    normalize: bool = True,
    check_finite: bool = True,
    **options: Any,
) -> SFRIKLossOutput:
    """SFRIK with several crops per image (the paper's SwAV-style multi-crop).

    ``invariance`` averages, over the large views i, the mean over every other view j (large or
    small) of ``MSE(z_i, z_j)``; ``mmd`` averages ``M`` over all views when
    ``regularize_small`` (the paper's ``reg_small=True``) or over the large views only. With two
    large views and no small one this is exactly :func:`sfrik_loss_func`. Takes the same options.

    Example:
        >>> import torch
        >>> large = [torch.randn(32, 64) for _ in range(2)]
        >>> small = [torch.randn(32, 64) for _ in range(4)]
        >>> out = sfrik_multicrop_loss_func(large, small, regularize_small=False)
        >>> out.loss.shape
        torch.Size([])
    """
    settings = SFRIKLossSettings.from_keywords(
        sim_coeff=sim_coeff, mmd_coeff=mmd_coeff, weights=weights, normalize=normalize, **options
    )
    return settings.multicrop_loss(large, small, regularize_small=regularize_small, check_finite=check_finite)


class SFRIKLoss(nn.Module):
    """SFRIK loss as a module; see :func:`sfrik_loss_func` for the arguments.

    ``forward(z1, z2)`` returns the total loss; the parts of the last call are kept in
    ``self.last_output`` for logging. The weights and options are validated here, not at step 1.

    Example:
        >>> import torch
        >>> criterion = SFRIKLoss(sim_coeff=4000.0, weights=(1.0, 40.0, 40.0), method="blocked")
        >>> loss = criterion(torch.randn(32, 256), torch.randn(32, 256))
        >>> sorted(criterion.last_output._asdict())
        ['invariance', 'loss', 'mmd']
    """

    def __init__(
        self,
        sim_coeff: float = SFRIK_LOSS_DEFAULTS["sim_coeff"],
        mmd_coeff: float = SFRIK_LOSS_DEFAULTS["mmd_coeff"],
        weights: Sequence[float] = SFRIK_LOSS_DEFAULTS["weights"],
        normalize: bool = True,
        **options: Any,
    ):
        super().__init__()
        self.kernel = TruncatedLegendreKernel(weights)
        self.options = MMDOptions.from_keywords(options)
        self.settings = SFRIKLossSettings(sim_coeff, mmd_coeff, self.kernel, self.options, bool(normalize))
        self.sim_coeff, self.mmd_coeff, self.normalize = sim_coeff, mmd_coeff, normalize
        self.last_output: SFRIKLossOutput | None = None

    def extra_repr(self) -> str:
        settings = {"sim_coeff": self.sim_coeff, "mmd_coeff": self.mmd_coeff, "weights": self.kernel.weights}
        settings.update(self.options.defaults(), normalize=self.normalize)
        return ", ".join(f"{key}={value!r}" for key, value in settings.items())

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        self.last_output = self.settings.loss(z1, z2)
        return self.last_output.loss

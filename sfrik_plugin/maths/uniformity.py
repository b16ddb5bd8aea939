"""The alignment + uniformity loss of Wang & Isola (2020), the official SFRIK paper's "AUH" baseline.

``uniformity(e) = log( (1/(N(N-1))) Σ_{i≠j} exp(-2τ (1 - e_iᵀ e_j)) )``: the log of the U-statistic
kernel mean of :class:`~sfrik_plugin.maths.kernels.GaussianKernel`, i.e. a monotone transform of the
Gaussian MMD to the uniform distribution — the same family as SFRIK with another kernel.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .kernels import GaussianKernel
from .losses import SFRIKLossOutput, check_views
from .options import MMDOptions
from .statistics import sphere_statistics

__all__ = ["UNIFORMITY_LOSS_DEFAULTS", "uniformity_loss_func", "UniformityLoss"]

#: Defaults of the official "AUH" baseline.
UNIFORMITY_LOSS_DEFAULTS: dict[str, Any] = {
    "sim_coeff": 3000.0,
    "unif_coeff": 1.0,
    "tau": 2.5,
    "distributed": "auto",
}


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
    """Alignment + uniformity loss on the normalised views; returns ``(loss, invariance, uniformity)``.

    Example:
        >>> import torch
        >>> out = uniformity_loss_func(torch.randn(64, 32), torch.randn(64, 32))
        >>> bool(out.mmd < 0)  # log of a mean kernel value < 1
        True
    """
    kernel = GaussianKernel(tau)
    check_views([z1, z2], ["z1", "z2"], check_finite)
    options = MMDOptions(estimator="u", method="gram", distributed=distributed, group=group)
    statistics = sphere_statistics([z1, z2], [(0, 1)], (0, 1), kernel, normalize=True, options=options)
    invariance = statistics.distances[0]
    uniformity = torch.log(statistics.kernel_means).mean()
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
        self.options: dict[str, Any] = dict(
            sim_coeff=sim_coeff, unif_coeff=unif_coeff, tau=tau, distributed=distributed
        )
        self.last_output: SFRIKLossOutput | None = None

    def forward(self, z1: Tensor, z2: Tensor) -> Tensor:
        self.last_output = uniformity_loss_func(z1, z2, **self.options)
        return self.last_output.loss

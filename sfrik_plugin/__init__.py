"""sfrik-plugin: SFRIK (self-supervised learning with rotation-invariant kernels) for PyTorch.

The mathematics here (kernels, MMD, losses, distributed reductions) depends on torch alone; the
solo-learn adapter lives in :mod:`sfrik_plugin.solo` and is imported only on demand.

Example:
    >>> import torch
    >>> from sfrik_plugin import sfrik_loss_func
    >>> out = sfrik_loss_func(torch.randn(32, 128), torch.randn(32, 128))
    >>> out.loss.shape
    torch.Size([])
"""

from .maths.distributed import all_reduce_sum, gather_rows, world_size_and_rank
from .maths.kernels import (
    KERNELS,
    GaussianKernel,
    RotationInvariantKernel,
    TruncatedLegendreKernel,
    build_kernel,
    register_kernel,
)
from .maths.legendre import legendre_polynomial, legendre_series
from .maths.losses import (
    SFRIK_LOSS_DEFAULTS,
    SFRIKLoss,
    SFRIKLossOutput,
    SFRIKLossSettings,
    invariance_loss,
    sfrik_loss_func,
    sfrik_multicrop_loss_func,
)
from .maths.mmd import kernel_mean, mmd_to_uniform
from .maths.options import DISTRIBUTED_MODES, ESTIMATORS, METHODS, MMDOptions
from .maths.spectral import BandlimitedKernel, HeatKernel, SpectralKernel
from .maths.uniformity import UNIFORMITY_LOSS_DEFAULTS, UniformityLoss, uniformity_loss_func

__version__ = "0.1.0"

__all__ = [
    "legendre_polynomial",
    "legendre_series",
    "RotationInvariantKernel",
    "TruncatedLegendreKernel",
    "GaussianKernel",
    "SpectralKernel",
    "HeatKernel",
    "BandlimitedKernel",
    "KERNELS",
    "register_kernel",
    "build_kernel",
    "kernel_mean",
    "mmd_to_uniform",
    "ESTIMATORS",
    "METHODS",
    "DISTRIBUTED_MODES",
    "MMDOptions",
    "SFRIK_LOSS_DEFAULTS",
    "UNIFORMITY_LOSS_DEFAULTS",
    "SFRIKLossOutput",
    "SFRIKLossSettings",
    "invariance_loss",
    "sfrik_loss_func",
    "sfrik_multicrop_loss_func",
    "SFRIKLoss",
    "uniformity_loss_func",
    "UniformityLoss",
    "all_reduce_sum",
    "gather_rows",
    "world_size_and_rank",
]

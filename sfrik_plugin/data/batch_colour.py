"""Colour operations on float image batches in [0, 1], one factor per image (solo-learn's jitter,
grayscale, blur, solarisation, equalisation and normalisation). See
:mod:`sfrik_plugin.data.batch_augment` for where these differ from the PIL path.

Example:
    >>> x = torch.rand(2, 3, 8, 8)
    >>> tuple(to_grayscale(x).shape), bool((solarize(x) >= 0).all())
    ((2, 1, 8, 8), True)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

__all__ = [
    "LUMA",
    "to_grayscale",
    "blend",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_saturation",
    "adjust_hue",
    "gaussian_blur",
    "solarize",
    "equalize",
    "normalize",
]

LUMA = (0.299, 0.587, 0.114)  # ITU-R 601-2, Pillow's RGB -> "L"


def to_grayscale(x: torch.Tensor) -> torch.Tensor:
    """Pillow's "L" conversion (0.299 R + 0.587 G + 0.114 B), kept as ``[B, 1, H, W]``."""
    r, g, b = x.unbind(dim=1)
    return (LUMA[0] * r + LUMA[1] * g + LUMA[2] * b).unsqueeze(1)


def blend(x: torch.Tensor, other: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """``factor · x + (1 − factor) · other`` per image, clipped to [0, 1] (PIL's ``ImageEnhance``)."""
    f = factor.to(x)[:, None, None, None]
    return (f * x + (1.0 - f) * other).clamp_(0.0, 1.0)


def adjust_brightness(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with black: ``x * factor``, clipped."""
    return blend(x, torch.zeros_like(x[:1]), factor)


def adjust_contrast(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's mean grey level."""
    return blend(x, to_grayscale(x).mean(dim=(1, 2, 3), keepdim=True), factor)


def adjust_saturation(x: torch.Tensor, factor: torch.Tensor) -> torch.Tensor:
    """Blend with the image's grayscale version."""
    return blend(x, to_grayscale(x), factor)


def adjust_hue(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Rotates hue by ``shift`` turns (in [-0.5, 0.5]) in HSV space; value and saturation are kept."""
    r, g, b = x.unbind(dim=1)
    value, low = x.amax(dim=1), x.amin(dim=1)
    chroma = value - low  # = value * saturation
    # grey pixels have chroma 0 and equal channels: every numerator below is 0, so hue 0
    safe = chroma.clamp(min=1e-12)
    # hue in sixths of a turn, from whichever channel is the maximum
    hue = torch.where(value == r, (g - b) / safe, torch.where(value == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    hue = hue + 6.0 * shift.to(x)[:, None, None]
    # HSV -> RGB: channel n is V - V S clamp(min(k, 4 - k), 0, 1) with k = (n + hue) mod 6
    out = []
    for n in (5.0, 3.0, 1.0):
        k = n + hue
        k = k - 6.0 * torch.floor(k / 6.0)
        out.append(value - chroma * torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0))
    return torch.stack(out, dim=1)


def gaussian_blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Separable Gaussian blur with a per-image ``sigma`` (pixels), radius ``ceil(3 sigma)``,
    edge pixels repeated beyond the border."""
    height, width = x.shape[-2:]
    sigma = sigma.to(x.device, torch.float32)
    radius = max(1, math.ceil(3.0 * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, device=x.device, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets[None, :] / sigma[:, None]) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)

    def matrix(n: int) -> torch.Tensor:
        # row i gathers pixels i + d, clamped to the border (repeated edge pixels)
        index = (torch.arange(n, device=x.device)[:, None] + offsets.long()[None, :]).clamp(0, n - 1)
        index = index[None].expand(len(x), n, offsets.numel())
        blur = torch.zeros(len(x), n, n, device=x.device, dtype=torch.float32)
        return blur.scatter_add_(2, index, kernel[:, None, :].expand(len(x), n, offsets.numel()).contiguous())

    return matrix(height)[:, None] @ x @ matrix(width).transpose(1, 2)[:, None]


def solarize(x: torch.Tensor) -> torch.Tensor:
    """Inverts values >= 128/255, as Pillow's ``ImageOps.solarize`` (threshold 128) on 8-bit levels."""
    return torch.where(x >= 128.0 / 255.0, 1.0 - x, x)


def equalize(x: torch.Tensor) -> torch.Tensor:
    """Pillow's ``ImageOps.equalize`` per image and channel, on the 8-bit levels ``round(255 x)``."""
    b, c = x.shape[:2]
    levels = (x * 255.0).round_().clamp_(0, 255).long().reshape(b * c, -1)
    hist = torch.zeros(b * c, 256, device=x.device, dtype=torch.long).scatter_add_(1, levels, torch.ones_like(levels))
    top_level = ((hist > 0).long() * torch.arange(256, device=x.device)).argmax(dim=1, keepdim=True)
    # the step spreads all pixels but those of the brightest level over 255 levels
    step = (hist.sum(dim=1, keepdim=True) - hist.gather(1, top_level)) // 255
    below = torch.cumsum(hist, dim=1) - hist  # pixels strictly darker than each level
    lut = ((below + step // 2) // step.clamp(min=1)).clamp_(max=255)
    lut = torch.where(step > 0, lut, torch.arange(256, device=x.device)[None, :])
    return (lut.gather(1, levels).float() / 255.0).reshape(x.shape)


def normalize(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """``(x - mean) / std`` per channel."""
    m = torch.tensor(mean, dtype=x.dtype, device=x.device)[None, :, None, None]
    s = torch.tensor(std, dtype=x.dtype, device=x.device)[None, :, None, None]
    return (x - m) / s


# ---------------------------------------------------------------------------------------------
# the pipeline

"""Random resized crops of a uint8 batch, resampled exactly as Pillow does, as matrix products.

The crop boxes are drawn like torchvision's ``RandomResizedCrop`` (scale uniform, log-ratio uniform,
10 tries, then its centre-crop fallback); crop + resize is ``Wy @ image @ Wx^T`` per image with
Pillow's bicubic filter (a = -0.5, taps restricted to the box, renormalised, antialiased when
shrinking), its 22-bit fixed-point weights and its rounding to 8 bits after each pass. See
:mod:`sfrik_plugin.data.batch_augment` for where this differs from the PIL path.

Example:
    >>> boxes = sample_crop_boxes(torch.rand(3, 10), torch.rand(3, 10), torch.rand(3, 2), 28, 28, (0.2, 1.0))
    >>> [tuple(b.shape) for b in boxes]
    [(3,), (3,), (3,), (3,)]
"""

from __future__ import annotations

import functools
import math

import torch

__all__ = ["RATIO", "ATTEMPTS", "sample_crop_boxes", "resize_matrices", "crop_resize"]

RATIO = (3.0 / 4.0, 4.0 / 3.0)  # torchvision's RandomResizedCrop default, which solo-learn keeps
ATTEMPTS = 10  # random resized crop tries this many boxes before its centre-crop fallback


def sample_crop_boxes(
    u_scale: torch.Tensor, u_ratio: torch.Tensor, u_pos: torch.Tensor, height: int, width: int,
    scale: tuple[float, float], ratio: tuple[float, float] = RATIO,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:  # fmt: skip
    """Random resized crop boxes ``(top, left, h, w)`` (int64 ``[B]``) from uniforms in [0, 1):
    ``u_scale`` and ``u_ratio`` ``[B, attempts]``, ``u_pos`` ``[B, 2]``.

    Per attempt: area fraction ~ U(scale), aspect ratio log-uniform in ``ratio``, sides rounded;
    the first attempt that fits the image wins, else the centre crop clamped to ``ratio``; the
    position is uniform over the valid ones (torchvision's ``RandomResizedCrop.get_params``).

    Example:
        >>> g = torch.Generator().manual_seed(0)
        >>> top, left, h, w = sample_crop_boxes(torch.rand(3, 10, generator=g), torch.rand(3, 10, generator=g),
        ...                                     torch.rand(3, 2, generator=g), 28, 28, (0.2, 1.0))
        >>> bool(((h >= 1) & (h <= 28) & (top + h <= 28)).all())
        True
    """
    area = float(height * width)
    target = area * (scale[0] + (scale[1] - scale[0]) * u_scale.double())
    low, high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(low + (high - low) * u_ratio.double())
    w = torch.round(torch.sqrt(target * aspect))
    h = torch.round(torch.sqrt(target / aspect))
    fits = (w > 0) & (w <= width) & (h > 0) & (h <= height)
    first = fits.to(torch.uint8).argmax(dim=1, keepdim=True)  # argmax returns the first maximum
    found = fits.any(dim=1)
    w, h = w.gather(1, first).squeeze(1), h.gather(1, first).squeeze(1)
    # fallback: the whole image, narrowed to the nearest allowed aspect ratio
    in_ratio = width / height
    if in_ratio < ratio[0]:
        fw, fh = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        fw, fh = int(round(height * ratio[1])), height
    else:
        fw, fh = width, height
    w = torch.where(found, w, torch.full_like(w, fw)).long()
    h = torch.where(found, h, torch.full_like(h, fh)).long()
    top = torch.floor(u_pos[:, 0].double() * (height - h + 1)).long()
    left = torch.floor(u_pos[:, 1].double() * (width - w + 1)).long()
    top = torch.where(found, top, (height - h) // 2)
    left = torch.where(found, left, (width - w) // 2)
    return top, left, h, w


def _bicubic(x: torch.Tensor) -> torch.Tensor:
    """Pillow's bicubic filter (Keys, a = -0.5), support 2."""
    a = -0.5
    x = x.abs()
    near = ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
    x = x.clamp(max=2.0)  # the outer piece is 0 at 2, so this zeroes everything beyond the support
    far = (((x - 5.0) * x + 8.0) * x - 4.0) * a
    return torch.where(x < 1.0, near, far)


def resize_matrices(start: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int) -> torch.Tensor:
    """``[B, out_size, in_size]`` float64 matrices resampling the span ``[start, start + length)`` of an
    axis of ``in_size`` pixels to ``out_size`` pixels, as Pillow's bicubic resize of that crop:
    output pixel ``o`` centred at ``start + (o + 0.5) * length / out_size``, filter stretched by
    the shrink factor when shrinking, taps outside the span dropped and the rest renormalised.

    Example:
        >>> m = resize_matrices(torch.tensor([0]), torch.tensor([4]), 4, 4)  # identity
        >>> torch.allclose(m[0], torch.eye(4, dtype=torch.float64))
        True
    """
    start, length = start.double()[:, None, None], length.double()[:, None, None]
    step = length / out_size
    stretch = step.clamp(min=1.0)
    centre = start + (torch.arange(out_size, dtype=torch.float64, device=start.device)[None, :, None] + 0.5) * step
    taps = torch.arange(in_size, dtype=torch.float64, device=start.device)[None, None, :]
    weights = _bicubic((taps + 0.5 - centre) / stretch)
    weights = weights * ((taps >= start) & (taps < start + length))
    return weights / weights.sum(dim=2, keepdim=True)


def crop_resize(
    images: torch.Tensor, top: torch.Tensor, left: torch.Tensor, h: torch.Tensor, w: torch.Tensor,
    size: tuple[int, int], flip: torch.Tensor | None = None,
) -> torch.Tensor:  # fmt: skip
    """Crops box ``(top, left, h, w)`` of each image, resizes it to ``size`` (Pillow's bicubic) and
    mirrors it where ``flip``; uint8 or [0, 255] float ``[B, C, H, W]`` in, float in [0, 1] out.

    Example:
        >>> img = torch.arange(16, dtype=torch.uint8).view(1, 1, 4, 4)
        >>> one = torch.tensor([1])
        >>> crop_resize(img, one, one, 2 * one, 2 * one, (2, 2))[0, 0] * 255
        tensor([[ 5.,  6.],
                [ 9., 10.]])
    """
    height, width = images.shape[-2:]
    wy = _fixed_point_matrices(top, h, height, size[0]).to(images.device)
    wx = _fixed_point_matrices(left, w, width, size[1]).to(images.device)
    if flip is not None:
        wx = torch.where(flip.to(images.device)[:, None, None], wx.flip(1), wx)
    # Pillow resizes 8-bit images in two passes with 22-bit fixed-point weights, rounding and
    # clipping to 0..255 after each; the clipped overshoot of the first pass changes edges by up to
    # ~16 levels, so the order matters. Pillow 13 runs the vertical pass first when the height
    # shrinks and the width does not (observed; when both shrink, usually horizontal first, as here).
    # float64 holds every fixed-point sum exactly.
    x = images.double()
    out = _pass8(_along_rows(_pass8(_along_columns(x, wx)), wy))
    vertical_first = (h > size[0]) & (w <= size[1])
    if bool(vertical_first.any()):
        chosen = vertical_first.nonzero().squeeze(1).to(images.device)
        out[chosen] = _pass8(_along_columns(_pass8(_along_rows(x[chosen], wy[chosen])), wx[chosen]))
    return out.float().div_(255.0)


_TABLE_BYTES = 32 * 2**20  # small images: every (start, length) matrix computed once, then looked up


@functools.lru_cache(maxsize=8)
def _matrix_table(in_size: int, out_size: int) -> torch.Tensor:
    """``table[length - 1, start]``: the fixed-point matrix of every span of an axis (CPU)."""
    start = torch.arange(in_size).repeat(in_size)
    length = torch.arange(1, in_size + 1).repeat_interleave(in_size)
    valid = start + length <= in_size
    table = torch.zeros(in_size * in_size, out_size, in_size, dtype=torch.float64)
    table[valid] = _fixed_point(resize_matrices(start[valid], length[valid], in_size, out_size))
    return table.view(in_size, in_size, out_size, in_size)


def _fixed_point_matrices(start: torch.Tensor, length: torch.Tensor, in_size: int, out_size: int) -> torch.Tensor:
    if in_size * in_size * out_size * in_size * 8 <= _TABLE_BYTES:
        return _matrix_table(in_size, out_size)[length.cpu() - 1, start.cpu()]
    return _fixed_point(resize_matrices(start, length, in_size, out_size))


def _along_columns(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Resamples each row: ``[B, C, H, W] x [B, W', W] -> [B, C, H, W']`` as one bmm (a broadcast
    matmul is ~3x slower in float64)."""
    b, c, height, width = x.shape
    return torch.bmm(x.reshape(b, c * height, width), weights.transpose(1, 2)).view(b, c, height, -1)


def _along_rows(x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Resamples each column: ``[B, C, H, W] x [B, H', H] -> [B, C, H', W]`` (weights repeated per
    channel: cheaper than transposing the images)."""
    b, c, height, width = x.shape
    per_channel = weights.repeat_interleave(c, dim=0)
    return torch.bmm(per_channel, x.reshape(b * c, height, width)).view(b, c, -1, width)


_PRECISION = 2.0**22  # Pillow's fixed-point scale of 8-bit resampling weights


def _fixed_point(weights: torch.Tensor) -> torch.Tensor:
    """Pillow's integer weights: ``weight * 2**22`` rounded half away from zero."""
    return torch.sign(weights) * torch.floor(weights.abs() * _PRECISION + 0.5)


def _pass8(sums: torch.Tensor) -> torch.Tensor:
    """Pillow's 8-bit output of a pass from fixed-point sums: rounded half up, clipped to 0..255."""
    return sums.add_(_PRECISION / 2).div_(_PRECISION).floor_().clamp_(0.0, 255.0)


# ---------------------------------------------------------------------------------------------
# colour; every op takes float images in [0, 1] [B, 3, H, W] and per-image factors [B]

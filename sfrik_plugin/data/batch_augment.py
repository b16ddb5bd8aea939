"""solo-learn's pretraining augmentations, applied to a whole uint8 batch at once (any device).

solo-learn's PIL pipeline (``build_transform_pipeline``) runs, per image and per view, in this order:
random resized crop (bicubic; plain shorter-side resize when ``rrc.enabled`` is false), colour
jitter (with probability ``color_jitter.prob``: brightness, contrast, saturation and hue factors
drawn per image and applied in a random order), grayscale, Gaussian blur, solarisation,
equalisation, horizontal flip, ToTensor and normalisation. :class:`BatchAugment` draws the same
parameters from the same distributions, independently per image, from a seeded
``torch.Generator`` (:meth:`BatchAugment.set_epoch` reseeds it deterministically), and applies
them with a few batched tensor operations instead of ~10 PIL calls per image.

Choices, and where the result differs from the PIL path:

* Crop + resize is a batched matrix product per axis, ``Wy @ image @ Wx^T``, with Pillow's
  bicubic filter (a = -0.5, taps restricted to the crop box, renormalised, antialiased when
  shrinking), its 22-bit fixed-point weights and its rounding to 8 bits after each pass: the result
  equals Pillow's exactly, except when both sides shrink, where Pillow 13 sometimes runs its passes
  in the other order (up to ~16 levels on ~2 % of edge pixels). A flip reverses the rows of ``Wx``.
  (``grid_sample`` is bilinear or a = -0.75 and reads outside the box; ``roi_align`` is bilinear;
  a per-image ``interpolate`` loop is ~10x slower.)
* After the crop everything is float: grey uses Pillow's "L" weights (0.299, 0.587, 0.114) for
  grayscale, contrast and saturation, the contrast mean is not rounded, hue turns in continuous
  HSV (torchvision's tensor semantics, not Pillow's 256 steps); solarisation inverts values
  >= 128/255 (``ImageOps.solarize`` inverts levels >= 128); equalisation works on ``round(255 x)``.
* Gaussian blur is a true Gaussian (radius 3 sigma, edge pixels repeated), Pillow runs three box
  blurs; sigma ~ U[``sigma_min``, ``sigma_max``] if the config has them, else U[0.1, 2.0] (solo-learn's
  PIL path always uses [0.1, 2.0]).

Example:
    >>> aug = BatchAugment([{"crop_size": 16, "num_crops": 2, "rrc": {"enabled": True,
    ...     "crop_min_scale": 0.2, "crop_max_scale": 1.0}, "horizontal_flip": {"prob": 0.5}}], seed=0)
    >>> views = aug(torch.zeros(4, 3, 28, 28, dtype=torch.uint8))
    >>> len(views), tuple(views[0].shape)
    (2, (4, 3, 16, 16))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from ..console import InputError
from .batch_colour import (
    adjust_hue,
    blend,
    equalize,
    gaussian_blur,
    normalize,
    solarize,
    to_grayscale,
)
from .batch_geometry import ATTEMPTS, crop_resize, sample_crop_boxes
from .seeds import epoch_seed
from .transforms import IMAGENET_MEAN, IMAGENET_STD  # timm's defaults, which solo-learn falls back to

__all__ = [
    "PipelineSettings",
    "pipeline_settings",
    "ViewParams",
    "draw_view_params",
    "apply_view",
    "BatchAugment",
]  # the colour and geometry operations are public in batch_colour and batch_geometry


@dataclass(frozen=True)
class PipelineSettings:
    """One solo-learn augmentation pipeline (one entry of ``cfg.augmentations``)."""

    crop_size: int
    num_crops: int = 1
    rrc: bool = True
    crop_min_scale: float = 0.08
    crop_max_scale: float = 1.0
    jitter_prob: float = 0.0
    brightness: float = 0.0
    contrast: float = 0.0
    saturation: float = 0.0
    hue: float = 0.0
    grayscale_prob: float = 0.0
    blur_prob: float = 0.0
    sigma_min: float = 0.1
    sigma_max: float = 2.0
    solarization_prob: float = 0.0
    equalization_prob: float = 0.0
    flip_prob: float = 0.0
    mean: tuple[float, ...] = IMAGENET_MEAN
    std: tuple[float, ...] = IMAGENET_STD


def _section(node: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = node.get(key) or {}
    if not isinstance(value, Mapping):
        raise InputError(f"augmentation key {key!r} must be a mapping, got {value!r}")
    return value


def pipeline_settings(node: Mapping[str, Any] | PipelineSettings) -> PipelineSettings:
    """Reads one solo-learn augmentation entry (a dict or an OmegaConf node); missing
    probabilities are 0, as solo-learn skips an op whose probability is 0.

    Example:
        >>> pipeline_settings({"crop_size": 28, "solarization": {"prob": 0.2}}).solarization_prob
        0.2
    """
    if isinstance(node, PipelineSettings):
        return node
    if not isinstance(node, Mapping) or "crop_size" not in node:
        raise InputError(f"an augmentation pipeline must be a mapping with a crop_size, got {node!r}")
    rrc, jitter, blur = _section(node, "rrc"), _section(node, "color_jitter"), _section(node, "gaussian_blur")
    s = PipelineSettings(
        crop_size=int(node["crop_size"]),
        num_crops=int(node.get("num_crops", 1)),
        rrc=bool(rrc.get("enabled", True)),
        crop_min_scale=float(rrc.get("crop_min_scale", 0.08)),
        crop_max_scale=float(rrc.get("crop_max_scale", 1.0)),
        jitter_prob=float(jitter.get("prob", 0.0)),
        brightness=float(jitter.get("brightness", 0.0)),
        contrast=float(jitter.get("contrast", 0.0)),
        saturation=float(jitter.get("saturation", 0.0)),
        hue=float(jitter.get("hue", 0.0)),
        grayscale_prob=float(_section(node, "grayscale").get("prob", 0.0)),
        blur_prob=float(blur.get("prob", 0.0)),
        sigma_min=float(blur.get("sigma_min", 0.1)),
        sigma_max=float(blur.get("sigma_max", 2.0)),
        solarization_prob=float(_section(node, "solarization").get("prob", 0.0)),
        equalization_prob=float(_section(node, "equalization").get("prob", 0.0)),
        flip_prob=float(_section(node, "horizontal_flip").get("prob", 0.0)),
        mean=tuple(float(m) for m in node.get("mean", IMAGENET_MEAN)),
        std=tuple(float(v) for v in node.get("std", IMAGENET_STD)),
    )
    _check(s)
    return s


def _check(s: PipelineSettings) -> None:
    if s.crop_size < 1 or s.num_crops < 1:
        raise InputError(f"crop_size and num_crops must be >= 1, got {s.crop_size} and {s.num_crops}")
    if not 0.0 < s.crop_min_scale <= s.crop_max_scale <= 1.0:
        raise InputError(
            f"rrc needs 0 < crop_min_scale <= crop_max_scale <= 1, got {s.crop_min_scale} and {s.crop_max_scale}"
        )
    for name in ("jitter_prob", "grayscale_prob", "blur_prob", "solarization_prob", "equalization_prob", "flip_prob"):
        if not 0.0 <= getattr(s, name) <= 1.0:
            raise InputError(f"{name} must be a probability in [0, 1], got {getattr(s, name)}")
    if min(s.brightness, s.contrast, s.saturation) < 0 or not 0.0 <= s.hue <= 0.5:
        raise InputError(
            "color_jitter needs brightness, contrast, saturation >= 0 and hue in [0, 0.5], got "
            f"{s.brightness}, {s.contrast}, {s.saturation}, {s.hue}"
        )
    if not 0.0 < s.sigma_min <= s.sigma_max:
        raise InputError(f"gaussian_blur needs 0 < sigma_min <= sigma_max, got {s.sigma_min} and {s.sigma_max}")
    if len(s.mean) != len(s.std) or min(s.std) <= 0:
        raise InputError(f"mean and std need one entry per channel and std > 0, got {s.mean} and {s.std}")


# ---------------------------------------------------------------------------------------------
# geometry


@dataclass(frozen=True)
class ViewParams:
    """The random parameters of one view, per image (``[B]`` tensors on the CPU): crop box, output
    size, flip, whether colour jitter applies, its factors (brightness, contrast, saturation: gains;
    hue: shift in turns) and the order of its 4 ops (op ids 0-3 in that order), grayscale, blur
    and its sigma, solarisation, equalisation."""

    top: torch.Tensor
    left: torch.Tensor
    height: torch.Tensor
    width: torch.Tensor
    size: tuple[int, int]
    flip: torch.Tensor
    jitter: torch.Tensor
    factors: torch.Tensor
    order: torch.Tensor
    grayscale: torch.Tensor
    blur: torch.Tensor
    sigma: torch.Tensor
    solarize: torch.Tensor
    equalize: torch.Tensor


def _resize_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """Output of a shorter-side resize to ``size`` (torchvision ``Resize(int)``)."""
    if height <= width:
        return size, int(size * width / height)
    return int(size * height / width), size


def _gain(u: torch.Tensor, amount: float) -> torch.Tensor:
    """ColorJitter's factor for ``amount``: uniform in [max(0, 1 - amount), 1 + amount]."""
    low = max(0.0, 1.0 - amount)
    return low + (1.0 + amount - low) * u


def draw_view_params(n: int, height: int, width: int, s: PipelineSettings, generator: torch.Generator) -> ViewParams:
    """Draws the parameters of one view of ``n`` images of ``height`` x ``width`` px, independently
    per image. Every draw is made whether or not its op is on, so a seeded stream does not depend on
    the probabilities.

    Example:
        >>> p = draw_view_params(3, 28, 28, pipeline_settings({"crop_size": 16}), torch.Generator().manual_seed(0))
        >>> p.size, p.order.shape
        ((16, 16), torch.Size([3, 4]))
    """
    u = torch.rand(n, 2 * ATTEMPTS + 17, generator=generator, dtype=torch.float64)
    if s.rrc:
        scale = (s.crop_min_scale, s.crop_max_scale)
        a = 2 * ATTEMPTS
        top, left, h, w = sample_crop_boxes(u[:, :ATTEMPTS], u[:, ATTEMPTS:a], u[:, a : a + 2], height, width, scale)
        size = (s.crop_size, s.crop_size)
    else:
        top = left = torch.zeros(n, dtype=torch.long)
        h, w = torch.full_like(top, height), torch.full_like(top, width)
        size = _resize_shape(height, width, s.crop_size)
    c = u[:, 2 * ATTEMPTS + 2 :]
    factors = torch.stack(
        [
            _gain(c[:, 0], s.brightness),
            _gain(c[:, 1], s.contrast),
            _gain(c[:, 2], s.saturation),
            s.hue * (2 * c[:, 3] - 1),
        ],
        dim=1,
    )
    return ViewParams(
        top=top, left=left, height=h, width=w, size=size,
        flip=c[:, 4] < s.flip_prob,
        jitter=c[:, 5] < s.jitter_prob,
        factors=factors,
        order=c[:, 6:10].argsort(dim=1),  # sorting uniform keys: every order equally likely
        grayscale=c[:, 10] < s.grayscale_prob,
        blur=c[:, 11] < s.blur_prob,
        sigma=s.sigma_min + (s.sigma_max - s.sigma_min) * c[:, 12],
        solarize=c[:, 13] < s.solarization_prob,
        equalize=c[:, 14] < s.equalization_prob,
    )  # fmt: skip


def _subset(x: torch.Tensor, mask: torch.Tensor, op, *args: torch.Tensor) -> torch.Tensor:
    chosen = mask.nonzero().squeeze(1).to(x.device)
    if chosen.numel():
        x[chosen] = op(x[chosen], *(a[mask].to(x.device) for a in args))
    return x


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.device, like.dtype)[:, None, None, None]


def _jitter(x: torch.Tensor, s: PipelineSettings, p: ViewParams) -> torch.Tensor:
    """Colour jitter, each image's ops in its own order. At each position the brightness, contrast
    and saturation images are done by one blend ``f x + (1 - f) other`` with ``other`` black, the
    mean grey or the grey image, and f = 1 (exactly the identity) for the others; hue runs on its
    images only."""
    active = torch.tensor([s.brightness > 0, s.contrast > 0, s.saturation > 0, s.hue > 0])
    for position in range(4):
        op = p.order[:, position]
        on = p.jitter & active[op]
        gain = on & (op < 3)
        if bool(gain.any()):
            factor = torch.where(gain, p.factors.gather(1, op.clamp(max=2)[:, None]).squeeze(1), 1.0)
            other = torch.zeros_like(x[:, :1])
            if s.contrast > 0 or s.saturation > 0:
                grey = to_grayscale(x)
                other = _per_image(op == 2, x) * grey + _per_image(op == 1, x) * grey.mean(dim=(1, 2, 3), keepdim=True)
            x = blend(x, other, factor)
        x = _subset(x, on & (op == 3), adjust_hue, p.factors[:, 3])
    return x


def apply_view(images: torch.Tensor, s: PipelineSettings, p: ViewParams) -> torch.Tensor:
    """One view of a uint8 batch ``[B, 3, H, W]`` under pipeline ``s`` with parameters ``p``, in
    solo-learn's order: float32, normalised, on ``images.device``."""
    x = crop_resize(images, p.top, p.left, p.height, p.width, p.size, flip=p.flip)
    if s.jitter_prob > 0:
        x = _jitter(x, s, p)
    if s.grayscale_prob > 0:
        x = torch.where(_per_image(p.grayscale, x) > 0, to_grayscale(x).expand_as(x), x)
    if s.blur_prob > 0:
        x = _subset(x, p.blur, gaussian_blur, p.sigma)
    if s.solarization_prob > 0:
        x = torch.where(_per_image(p.solarize, x) > 0, solarize(x), x)
    if s.equalization_prob > 0:
        x = _subset(x, p.equalize, equalize)
    return normalize(x, s.mean, s.std)


class BatchAugment:
    """solo-learn's list of augmentation pipelines applied to uint8 batches: ``aug(images)`` returns
    ``num_crops`` views of pipeline 0, then those of pipeline 1, ... (the order of solo-learn's
    ``FullTransformPipeline``), each float32 normalised ``[B, C, crop, crop]`` on ``images.device``.

    Parameters are drawn per image from a CPU ``torch.Generator`` seeded with ``seed``;
    ``set_epoch(e)`` reseeds it from ``(seed, e)``, so a run is reproducible on any device.

    Example:
        >>> aug = BatchAugment([{"crop_size": 8}, {"crop_size": 8, "solarization": {"prob": 1.0}}], seed=1)
        >>> aug.set_epoch(3)
        >>> [tuple(v.shape) for v in aug(torch.zeros(2, 3, 28, 28, dtype=torch.uint8))]
        [(2, 3, 8, 8), (2, 3, 8, 8)]
    """

    def __init__(self, pipelines: Sequence[Mapping[str, Any] | PipelineSettings], seed: int = 0) -> None:
        if isinstance(pipelines, Mapping) or not len(pipelines):
            raise InputError(f"pipelines must be a non-empty list of augmentation mappings, got {pipelines!r}")
        self.pipelines = [pipeline_settings(p) for p in pipelines]
        self.seed = int(seed)
        self.generator = torch.Generator()
        self.set_epoch(0)

    @property
    def num_views(self) -> int:
        return sum(p.num_crops for p in self.pipelines)

    def set_epoch(self, epoch: int) -> None:
        """Reseeds from ``(seed, epoch)``: the same epoch gives the same augmentations again."""
        self.reseed(epoch_seed(self.seed, epoch))

    def reseed(self, seed: int) -> None:
        """Seeds the generator with ``seed`` itself (the loader derives one per epoch and rank)."""
        self.generator.manual_seed(int(seed))

    def __call__(self, images: torch.Tensor) -> list[torch.Tensor]:
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[1] != 3:
            raise InputError(
                f"BatchAugment takes uint8 RGB batches [B, 3, H, W], got {images.dtype} {tuple(images.shape)}"
            )
        height, width = images.shape[-2:]
        views = []
        for s in self.pipelines:
            for _ in range(s.num_crops):
                views.append(apply_view(images, s, draw_view_params(len(images), height, width, s, self.generator)))
        return views

    def __repr__(self) -> str:
        return f"BatchAugment({self.pipelines!r}, seed={self.seed})"

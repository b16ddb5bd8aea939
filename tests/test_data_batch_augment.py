"""Batched augmentation against torchvision / Pillow, the references solo-learn's PIL pipeline uses.

Three kinds of checks:

* parameter distributions (random resized crop scale, aspect ratio and position; jitter factors;
  application rates of flip, jitter, grayscale, solarisation) against torchvision's own
  ``get_params`` samples or the configured probability, with fixed seeds and thresholds that a
  wrong sampler (uniform instead of log-uniform ratio, scale range ignored) fails; the power of each
  check is itself tested on such a wrong sampler;
* pixel equivalence of every op, on the same parameters, with Pillow / torchvision's functional ops;
* a whole view against a per-image reference built from torchvision's functional ops on the same
  parameters, and the distribution of whole views against solo-learn's Compose of torchvision
  transforms.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image, ImageFilter, ImageOps
from scipy import stats
from torchvision import transforms as T
from torchvision.transforms import InterpolationMode

from sfrik_plugin.console import InputError
from sfrik_plugin.data import batch_augment as A
from sfrik_plugin.data import batch_colour as C
from sfrik_plugin.data import batch_geometry as G
from sfrik_plugin.data.transforms import IMAGENET_MEAN, IMAGENET_STD

KS_ALPHA = 1e-3  # fixed seeds: each KS outcome is deterministic; a correct sampler passes at this level

SOLO_VIEW = {  # solo-learn's asymmetric.yaml second pipeline, with the benchmark's overrides
    "crop_size": 28,
    "num_crops": 1,
    "rrc": {"enabled": True, "crop_min_scale": 0.2, "crop_max_scale": 1.0},
    "color_jitter": {"prob": 0.8, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1},
    "grayscale": {"prob": 0.2},
    "gaussian_blur": {"prob": 0.0},
    "solarization": {"prob": 0.2},
    "equalization": {"prob": 0.0},
    "horizontal_flip": {"prob": 0.5},
}


def _images(n: int = 48, seed: int = 0) -> torch.Tensor:
    """Colourful 28 px uint8 images with sharp edges (blocks) and smooth parts (gradients)."""
    g = torch.Generator().manual_seed(seed)
    blocks = torch.randint(0, 256, (n, 3, 7, 7), generator=g, dtype=torch.uint8)
    blocks = blocks.repeat_interleave(4, dim=2).repeat_interleave(4, dim=3)
    ramp = torch.linspace(0, 255, 28).round().to(torch.uint8)
    blocks[: n // 3, 0] = ramp[None, None, :]
    return blocks


def _to_pil(image: torch.Tensor) -> Image.Image:
    return Image.fromarray(image.permute(1, 2, 0).contiguous().numpy())


def _from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 255.0


def _boxes(n: int, height: int, width: int, scale, seed: int = 0, u_ratio_map=None):
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(n, 22, generator=g, dtype=torch.float64)
    u_ratio = u[:, 10:20] if u_ratio_map is None else u_ratio_map(u[:, 10:20])
    return G.sample_crop_boxes(u[:, :10], u_ratio, u[:, 20:22], height, width, scale)


def _torchvision_boxes(n: int, height: int, width: int, scale, seed: int = 1):
    torch.manual_seed(seed)
    image = torch.empty(1, height, width)
    return torch.tensor([T.RandomResizedCrop.get_params(image, list(scale), [3 / 4, 4 / 3]) for _ in range(n)])


def _crop_stats(top, left, h, w, height, width) -> dict[str, np.ndarray]:
    top, left, h, w = (np.asarray(v, dtype=np.float64) for v in (top, left, h, w))
    return {
        "scale": h * w / (height * width),
        "log_ratio": np.log(w / h),
        "top": top / np.maximum(height - h, 1),
        "left": left / np.maximum(width - w, 1),
    }


# ---------------------------------------------------------------------------------------------
# random resized crop: distributions


@pytest.mark.parametrize("size,scale", [((224, 224), (0.08, 1.0)), ((28, 28), (0.2, 1.0)), ((40, 24), (0.2, 1.0))])
def test_crop_box_distribution_matches_torchvision(size, scale):
    n = 6000
    ours = _crop_stats(*_boxes(n, *size, scale), *size)
    ref = _torchvision_boxes(n, *size, scale)
    theirs = _crop_stats(ref[:, 0], ref[:, 1], ref[:, 2], ref[:, 3], *size)
    for key in ours:
        assert stats.ks_2samp(ours[key], theirs[key]).pvalue > KS_ALPHA, key


def _uniform_ratio(u: torch.Tensor) -> torch.Tensor:
    """Uniforms that make sample_crop_boxes draw the ratio uniformly (a wrong sampler)."""
    low, high = math.log(3 / 4), math.log(4 / 3)
    return (torch.log(3 / 4 + (4 / 3 - 3 / 4) * u) - low) / (high - low)


@pytest.mark.parametrize(
    "wrong",
    [
        pytest.param({"u_ratio_map": _uniform_ratio}, id="uniform-ratio"),
        pytest.param({"scale": (0.08, 1.0)}, id="scale-range-ignored"),
    ],
)
def test_crop_box_check_rejects_a_wrong_sampler(wrong):
    """The KS check above has the power to see a wrong distribution at the same sample size."""
    n, size, scale = 6000, (224, 224), (0.2, 1.0)
    ours = _crop_stats(*_boxes(n, *size, wrong.get("scale", scale), u_ratio_map=wrong.get("u_ratio_map")), *size)
    ref = _torchvision_boxes(n, *size, scale)
    theirs = _crop_stats(ref[:, 0], ref[:, 1], ref[:, 2], ref[:, 3], *size)
    pvalues = {key: stats.ks_2samp(ours[key], theirs[key]).pvalue for key in ours}
    assert min(pvalues.values()) < KS_ALPHA, pvalues


@pytest.mark.parametrize("size,scale", [((10, 100), (0.99, 1.0)), ((100, 10), (0.99, 1.0)), ((8, 8), (1.0, 1.0))])
def test_crop_fallback_is_torchvisions_centre_crop(size, scale):
    top, left, h, w = _boxes(20, *size, scale)
    ref = _torchvision_boxes(20, *size, scale)
    if scale == (1.0, 1.0):  # always fits: the whole image
        assert (h == 8).all() and (w == 8).all() and (top == 0).all() and (left == 0).all()
    else:  # never fits: every torchvision box is the same centre crop
        assert (ref == ref[0]).all()
        assert torch.equal(torch.stack([top, left, h, w], 1), ref)


# ---------------------------------------------------------------------------------------------
# pixel equivalence of each op on the same parameters


def test_resize_matrices_are_torchvisions_antialiased_bicubic():
    images = _images(24).float() / 255.0
    top, left, h, w = _boxes(24, 28, 28, (0.08, 1.0), seed=3)
    for size in ((28, 28), (16, 16), (40, 24)):
        wy, wx = G.resize_matrices(top, h, 28, size[0]), G.resize_matrices(left, w, 28, size[1])
        ours = (wy[:, None] @ images.double() @ wx.transpose(1, 2)[:, None]).float()
        for i in range(24):
            ref = TF.resized_crop(images[i], int(top[i]), int(left[i]), int(h[i]), int(w[i]), list(size),
                                  InterpolationMode.BICUBIC, antialias=True)  # fmt: skip
            torch.testing.assert_close(ours[i], ref, atol=1e-5, rtol=0)


def test_crop_resize_and_flip_equal_pillow_when_upscaling():
    """Crops no larger than the output (the benchmark: 28 px crops of 28 px images) equal Pillow's
    bicubic resize + flip exactly."""
    images = _images(64)
    top, left, h, w = _boxes(64, 28, 28, (0.2, 1.0), seed=4)
    flip = torch.arange(64) % 2 == 0
    for size in ((28, 28), (36, 36)):
        ours = G.crop_resize(images, top, left, h, w, size, flip=flip)
        ref = []
        for i in range(64):
            crop = TF.resized_crop(_to_pil(images[i]), int(top[i]), int(left[i]), int(h[i]), int(w[i]),
                                   list(size), InterpolationMode.BICUBIC)  # fmt: skip
            ref.append(_from_pil(TF.hflip(crop) if flip[i] else crop))
        torch.testing.assert_close(ours, torch.stack(ref), atol=1e-6, rtol=0)


def test_crop_resize_when_shrinking_equals_pillow_but_for_its_pass_order():
    """Exact unless both sides shrink, where Pillow 13 sometimes rounds its vertical pass first."""
    images = torch.cat([_images(64), torch.randint(0, 256, (64, 3, 28, 28), generator=torch.Generator().manual_seed(0),
                                                   dtype=torch.uint8)])  # fmt: skip
    top, left, h, w = _boxes(128, 28, 28, (0.2, 1.0), seed=5)
    for size in ((16, 16), (12, 20)):
        ours = G.crop_resize(images, top, left, h, w, size)
        ref = torch.stack([
            _from_pil(TF.resized_crop(_to_pil(images[i]), int(top[i]), int(left[i]), int(h[i]), int(w[i]), list(size),
                                      InterpolationMode.BICUBIC))
            for i in range(128)
        ])  # fmt: skip
        both = (h > size[0]) & (w > size[1])
        assert 0 < int(both.sum()) < 128
        torch.testing.assert_close(ours[~both], ref[~both], atol=1e-6, rtol=0)
        diff = (ours[both] - ref[both]).abs() * 255  # rounding of the other pass: ~1 level, more at edges
        assert diff.mean() < 0.5 and diff.max() <= 20


@pytest.mark.parametrize("name", ["brightness", "contrast", "saturation"])
def test_gain_ops_equal_torchvision(name):
    x = _images(32).float() / 255.0
    factor = torch.linspace(0.0, 2.0, 32)
    ours = getattr(C, f"adjust_{name}")(x.clone(), factor)
    ref = torch.stack([getattr(TF, f"adjust_{name}")(x[i], float(factor[i])) for i in range(32)])
    # torchvision's tensor grey is 0.2989 R (Pillow's: 0.299 R): 1e-4 x factor
    torch.testing.assert_close(ours, ref, atol=3e-4, rtol=0)


def test_hue_equals_torchvision():
    x = _images(32).float() / 255.0
    x[:4] = x[:4, :1]  # grey images: hue does nothing
    shift = torch.linspace(-0.5, 0.5, 32)
    ref = torch.stack([TF.adjust_hue(x[i], float(shift[i])) for i in range(32)])
    torch.testing.assert_close(C.adjust_hue(x, shift), ref, atol=1e-5, rtol=0)


def test_grayscale_is_pillows_L_conversion():
    images = _images(16)
    ours = C.to_grayscale(images.float() / 255.0) * 255
    ref = torch.stack([torch.from_numpy(np.array(_to_pil(im).convert("L"))).float() for im in images])
    assert (ours[:, 0] - ref).abs().max() <= 0.5 + 1e-3  # Pillow rounds to the nearest level


def test_solarize_equals_pillow():
    images = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16)
    ours = C.solarize(images.float() / 255.0)
    ref = _from_pil(ImageOps.solarize(_to_pil(images[0])))
    torch.testing.assert_close(ours[0], ref, atol=1e-6, rtol=0)


def test_equalize_equals_pillow_and_torchvision():
    images = _images(12)
    images[0] = 7  # one level: unchanged
    images[1, :, :, :14] = 3  # two levels
    images[2] = (images[2] // 64) * 10  # few, dark levels
    ours = C.equalize(images.float() / 255.0) * 255
    for i in range(12):
        pil = torch.from_numpy(np.array(ImageOps.equalize(_to_pil(images[i])))).permute(2, 0, 1).float()
        assert torch.equal(ours[i].round(), pil), i
        assert torch.equal(ours[i].round(), TF.equalize(images[i]).float()), i


def test_gaussian_blur_is_a_gaussian_with_repeated_edges():
    x = _images(6).float() / 255.0
    sigma = torch.tensor([0.1, 0.5, 1.0, 1.5, 2.0, 0.7])
    ours = C.gaussian_blur(x, sigma)
    radius = math.ceil(3 * float(sigma.max()))  # one kernel width for the batch
    padded = torch.nn.functional.pad(x, (radius,) * 4, mode="replicate")
    for i in range(6):
        kernel = 2 * radius + 1
        ref = TF.gaussian_blur(padded[i], [kernel, kernel], [float(sigma[i])] * 2)[:, radius:-radius, radius:-radius]
        torch.testing.assert_close(ours[i], ref, atol=1e-5, rtol=0)


def test_gaussian_blur_close_to_pillow():
    x = _images(8)
    sigma = torch.linspace(0.1, 2.0, 8)
    ours = C.gaussian_blur(x.float() / 255.0, sigma)
    ref = torch.stack([_from_pil(_to_pil(x[i]).filter(ImageFilter.GaussianBlur(float(sigma[i])))) for i in range(8)])
    diff = (ours - ref).abs() * 255  # Pillow approximates the Gaussian with three box blurs
    assert diff.mean() < 2.0 and diff.max() < 40


def test_normalize_equals_torchvision():
    x = torch.rand(4, 3, 8, 8)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.6, 0.7)
    torch.testing.assert_close(C.normalize(x, mean, std), TF.normalize(x, mean, std), atol=1e-6, rtol=0)


# ---------------------------------------------------------------------------------------------
# a whole view: same parameters -> same pixels as per-image torchvision ops in solo-learn's order


def _reference_view(image: torch.Tensor, s: A.PipelineSettings, p: A.ViewParams, i: int) -> torch.Tensor:
    crop = TF.resized_crop(_to_pil(image), int(p.top[i]), int(p.left[i]), int(p.height[i]), int(p.width[i]),
                           list(p.size), InterpolationMode.BICUBIC)  # fmt: skip
    x = _from_pil(crop)
    if p.jitter[i]:
        ops = [TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue]
        for op_id in p.order[i].tolist():
            x = ops[op_id](x, float(p.factors[i, op_id]))
    if p.grayscale[i]:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    if p.solarize[i]:
        x = TF.solarize(x, 128 / 255)
    if p.flip[i]:
        x = TF.hflip(x)
    return TF.normalize(x, s.mean, s.std)


def test_whole_view_equals_per_image_reference_on_same_parameters():
    images = _images(64, seed=7)
    s = A.pipeline_settings(SOLO_VIEW)
    p = A.draw_view_params(64, 28, 28, s, torch.Generator().manual_seed(11))
    assert p.jitter.any() and p.grayscale.any() and p.solarize.any() and p.flip.any()
    ours = A.apply_view(images, s, p)
    ref = torch.stack([_reference_view(images[i], s, p, i) for i in range(64)])
    diff = (ours - ref).abs() * 0.225  # back to [0, 1] units (std ~0.225)
    # solarisation can flip a pixel sitting within 1e-4 of 128/255: allow a handful of such pixels
    assert (diff > 2e-3).float().mean() < 1e-3
    assert diff.median() < 1e-4  # torchvision's tensor grey weighs red 0.2989, Pillow 0.299


def test_jitter_order_is_a_uniform_permutation():
    p = A.draw_view_params(24000, 28, 28, A.pipeline_settings(SOLO_VIEW), torch.Generator().manual_seed(0))
    codes = (p.order * torch.tensor([64, 16, 4, 1])).sum(1)
    counts = torch.bincount(codes, minlength=256)[torch.bincount(codes, minlength=256) > 0]
    assert len(counts) == 24  # all 4! orders occur
    assert stats.chisquare(counts.numpy()).pvalue > KS_ALPHA


def test_jitter_factors_match_colorjitter():
    s = A.pipeline_settings(SOLO_VIEW)
    p = A.draw_view_params(4000, 28, 28, s, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    jitter = T.ColorJitter(0.4, 0.4, 0.2, 0.1)
    ref = torch.tensor([jitter.get_params(jitter.brightness, jitter.contrast, jitter.saturation, jitter.hue)[1:]
                        for _ in range(4000)])  # fmt: skip
    for k in range(4):
        assert stats.ks_2samp(p.factors[:, k].numpy(), ref[:, k].numpy()).pvalue > KS_ALPHA, k
    wrong = 1 + 0.4 * (2 * torch.rand(4000, generator=torch.Generator().manual_seed(1)) - 1) * 0.5
    assert stats.ks_2samp(wrong.numpy(), ref[:, 0].numpy()).pvalue < KS_ALPHA  # the check sees a halved range


# ---------------------------------------------------------------------------------------------
# rates seen in the outputs, and the distribution of whole views


def _rate_ok(hits: int, n: int, p: float) -> bool:
    return stats.binomtest(hits, n, p).pvalue > KS_ALPHA


def test_application_rates_seen_in_the_pixels():
    n = 4000
    image = torch.zeros(1, 3, 28, 28, dtype=torch.uint8)
    image[:, 0, :, :14] = 200  # red left half, blue right half: flips and grey are visible
    image[:, 2, :, 14:] = 90
    batch = image.expand(n, -1, -1, -1).contiguous()
    base = {"crop_size": 28, "rrc": {"enabled": False}}
    cases = {
        "flip": ({"horizontal_flip": {"prob": 0.5}}, 0.5, lambda v: v[:, 0, 14, 2] < v[:, 0, 14, 25]),
        "grayscale": ({"grayscale": {"prob": 0.2}}, 0.2, lambda v: (v[:, 0] - v[:, 2]).abs().amax((1, 2)) < 1e-6),
        "solarization": ({"solarization": {"prob": 0.2}}, 0.2, lambda v: v[:, 0, 14, 2] < 100 / 255),
        "jitter": ({"color_jitter": {"prob": 0.8, "brightness": 0.4}}, 0.8, lambda v: (v[:, 0, 14, 2] - 200 / 255).abs() > 1e-6),
    }  # fmt: skip
    for name, (extra, prob, seen) in cases.items():
        aug = A.BatchAugment([{**base, **extra, "mean": (0, 0, 0), "std": (1, 1, 1)}], seed=3)
        view = aug(batch)[0]
        hits = int(seen(view).sum())
        assert _rate_ok(hits, n, prob), (name, hits / n)
        assert not _rate_ok(hits, n, prob + 0.05), (name, "the rate check would not see a wrong probability")


def _summaries(views: torch.Tensor) -> dict[str, np.ndarray]:
    return {
        "mean": views.mean((1, 2, 3)).numpy(),
        "std": views.std((1, 2, 3)).numpy(),
        "red_minus_blue": (views[:, 0] - views[:, 2]).mean((1, 2)).numpy(),
        "left_minus_right": (views[..., :14] - views[..., 14:]).mean((1, 2, 3)).numpy(),
        "edges": (views[..., 1:] - views[..., :-1]).abs().mean((1, 2, 3)).numpy(),  # fewer when zoomed in
    }


def _solo_compose(view: dict) -> T.Compose:
    """solo-learn's build_transform_pipeline for this view, spelt with torchvision transforms."""
    jitter = view["color_jitter"]
    return T.Compose([
        T.RandomResizedCrop(view["crop_size"], scale=(view["rrc"]["crop_min_scale"], view["rrc"]["crop_max_scale"]),
                            interpolation=InterpolationMode.BICUBIC),
        T.RandomApply([T.ColorJitter(jitter["brightness"], jitter["contrast"], jitter["saturation"], jitter["hue"])],
                      p=jitter["prob"]),
        T.RandomGrayscale(p=view["grayscale"]["prob"]),
        T.RandomApply([ImageOps.solarize], p=view["solarization"]["prob"]),
        T.RandomHorizontalFlip(p=view["horizontal_flip"]["prob"]),
        T.ToTensor(),
        T.Normalize(IMAGENET_MEAN, IMAGENET_STD),
    ])  # fmt: skip


_DIST_N = 2500


@pytest.fixture(scope="module")
def solo_view_summaries() -> dict[str, np.ndarray]:
    """Summaries of views of one image drawn by solo-learn's per-image pipeline (seeded)."""
    torch.manual_seed(0)
    compose, pil = _solo_compose(SOLO_VIEW), _to_pil(_images(3, seed=2)[2])
    return _summaries(torch.stack([compose(pil) for _ in range(_DIST_N)]))


@pytest.mark.parametrize(
    "change,should_match",
    [
        pytest.param({}, True, id="same-settings"),
        pytest.param({"solarization": {"prob": 0.0}}, False, id="solarization-off"),
        pytest.param({"rrc": {"enabled": True, "crop_min_scale": 0.08, "crop_max_scale": 1.0}}, False, id="scale-range-wrong"),
        pytest.param({"horizontal_flip": {"prob": 0.0}}, False, id="flip-off"),
        pytest.param({"grayscale": {"prob": 0.0}}, False, id="grayscale-off"),
    ],
)  # fmt: skip
def test_views_have_the_distribution_of_solo_learns_per_image_pipeline(solo_view_summaries, change, should_match):
    """KS on per-view summaries (mean, contrast, colour, left/right balance, edge density): the
    same settings pass, and each listed mistake is caught at the same sample size."""
    image = _images(3, seed=2)[2]
    ours = A.BatchAugment([{**SOLO_VIEW, **change}], seed=0)(image.expand(_DIST_N, -1, -1, -1).contiguous())[0]
    a, b = _summaries(ours), solo_view_summaries
    pvalues = {k: stats.ks_2samp(a[k], b[k]).pvalue for k in a}
    assert (min(pvalues.values()) > KS_ALPHA) == should_match, pvalues


# ---------------------------------------------------------------------------------------------
# the pipeline object


def test_views_come_in_solo_learns_order_and_shapes():
    aug = A.BatchAugment([{"crop_size": 20, "num_crops": 2}, {"crop_size": 12, "num_crops": 3}], seed=0)
    views = aug(_images(5))
    assert [tuple(v.shape) for v in views] == [(5, 3, 20, 20)] * 2 + [(5, 3, 12, 12)] * 3
    assert all(v.dtype == torch.float32 for v in views)


def test_shorter_side_resize_when_rrc_is_off():
    aug = A.BatchAugment([{"crop_size": 14, "rrc": {"enabled": False}}], seed=0)
    images = torch.randint(0, 256, (2, 3, 28, 40), dtype=torch.uint8)
    view = aug(images)[0]
    ref = T.Resize(14, interpolation=InterpolationMode.BICUBIC)(_to_pil(images[0]))
    assert view.shape[-2:] == (14, 20) == (ref.size[1], ref.size[0])


def test_seeded_reproducible_per_epoch_and_independent_per_image():
    images = _images(1).expand(16, -1, -1, -1).contiguous()  # the same image 16 times
    aug = A.BatchAugment([SOLO_VIEW, SOLO_VIEW], seed=5)
    aug.set_epoch(2)
    first = aug(images)
    aug.set_epoch(2)
    again = aug(images)
    aug.set_epoch(3)
    other = aug(images)
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[0], first[1])  # the two views differ
    flat = first[0].flatten(1)
    assert torch.unique(flat, dim=0).shape[0] == 16  # each copy got its own parameters
    assert torch.equal(A.BatchAugment([SOLO_VIEW], seed=5)(images)[0], A.BatchAugment([SOLO_VIEW], seed=5)(images)[0])


def test_reads_omegaconf_nodes_like_dicts():
    omegaconf = pytest.importorskip("omegaconf")
    node = omegaconf.OmegaConf.create([SOLO_VIEW])
    assert A.pipeline_settings(node[0]) == A.pipeline_settings(SOLO_VIEW)
    assert A.pipeline_settings(SOLO_VIEW).solarization_prob == 0.2


@pytest.mark.parametrize(
    "bad,message",
    [
        ({"crop_size": 28, "rrc": {"crop_min_scale": 0.0}}, "crop_min_scale"),
        ({"crop_size": 28, "rrc": {"crop_min_scale": 0.5, "crop_max_scale": 0.4}}, "crop_max_scale"),
        ({"crop_size": 28, "solarization": {"prob": 1.5}}, "solarization_prob"),
        ({"crop_size": 28, "color_jitter": {"hue": 0.7}}, "hue"),
        ({"num_crops": 2}, "crop_size"),
    ],
)
def test_bad_settings_are_input_errors(bad, message):
    with pytest.raises(InputError, match=message):
        A.pipeline_settings(bad)


def test_rejects_non_uint8_batches():
    with pytest.raises(InputError, match="uint8"):
        A.BatchAugment([SOLO_VIEW])(torch.zeros(2, 3, 28, 28))

"""Image transforms for evaluation, shared by the solo-learn launchers and the benchmark.

Kept free of solo-learn so that evaluation code can use it without the adapter.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "eval_transform", "classifier_train_transform"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def eval_transform(crop_size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD):
    """Shorter side to ``crop_size / 0.875``, centre crop, normalise: solo-learn's 256 → 224 rule
    for any crop size (identical to it at 224).

    Example:
        >>> eval_transform(28).transforms[0].size
        32
    """
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.Resize(int(round(crop_size / 0.875))),
            transforms.CenterCrop(crop_size),
            transforms.ToTensor(),
            transforms.Normalize(mean=mean, std=std),
        ]
    )


def classifier_train_transform(
    crop_size: int, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD, min_scale: float = 0.08
):
    """Random resized crop (scale in [min_scale, 1]) + horizontal flip + normalise, for training a
    classifier on top of a backbone (linear probe, fine-tuning)."""
    from torchvision import transforms

    return transforms.Compose(
        [
            transforms.RandomResizedCrop(crop_size, scale=(min_scale, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(mean=mean, std=std),
        ]
    )

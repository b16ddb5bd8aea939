"""Data loaders of the three flows, built with solo-learn's dataset code, checked first.

* Before any loader is built, :func:`check_data_paths` checks the folders a config names
  (existence, images, class folders) and fails with one line naming the key and the folder.
* Images are decoded by a loader that names the file it cannot decode (instead of a PIL trace
  from inside a DataLoader worker).
* The pretraining loader is an :class:`~sfrik_plugin.data.epoch_loader.EpochSeededLoader`: each
  epoch's order and augmentations depend on (seed, epoch) only, so a resumed run repeats exactly
  what an uninterrupted one would have done. With ``data.fast_augment=true`` it is instead the
  in-memory loader of :mod:`sfrik_plugin.data.fast_pretrain` (images decoded once into a uint8
  tensor, augmentations drawn from the same distributions but applied to whole batches in the main
  process): many times faster for small images on a CPU, same (seed, epoch) reproducibility.
* Custom and ImageNet validation images are resized for the pretraining crop size (solo-learn
  would resize them to 224 px whatever the crop).
* Every loader pins host memory only when there is a CUDA device to copy to: solo-learn's own
  loaders always pin, which on a CPU-only machine earns torch's ``pin_memory`` warning and nothing
  else, so the loaders are built here (:func:`image_loader`) around solo-learn's datasets.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..console import InputError, get_logger
from ..data.epoch_loader import EpochSeededLoader
from ..data.image_folder import check_image_folder, install_checked_loader
from ..data.transforms import IMAGENET_MEAN, IMAGENET_STD, eval_transform

__all__ = [
    "cifar_like",
    "mean_std",
    "check_data_paths",
    "pretrain_train_loader",
    "pretrain_val_loader",
    "classification_loaders",
    "pin_memory",
    "image_loader",
]

log = get_logger(__name__)

_FOLDER_DATASETS = ("custom", "imagenet", "imagenet100")


def cifar_like(dataset: str) -> bool:
    """Datasets solo-learn reads through torchvision's own classes (and downloads)."""
    return dataset in ("cifar10", "cifar100", "stl10")


def mean_std(dataset: str, aug: Any) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Normalisation of a dataset: ImageNet's for ImageNet, else the augmentation's own."""
    if dataset in ("imagenet", "imagenet100") or aug is None:
        return IMAGENET_MEAN, IMAGENET_STD
    return tuple(aug.get("mean", IMAGENET_MEAN)), tuple(aug.get("std", IMAGENET_STD))


def pin_memory() -> bool:
    """Whether loaders pin host memory: only with a CUDA device to copy the batches to."""
    import torch

    return torch.cuda.is_available()


def image_loader(dataset: Any, batch_size: int, num_workers: int, *, train: bool) -> Any:
    """A DataLoader of a labelled dataset: for training shuffled, the last partial batch dropped
    (solo-learn's choice for its training loaders); otherwise every image, in order.

    Example:
        >>> import torch
        >>> images = torch.utils.data.TensorDataset(torch.zeros(5, 3, 4, 4), torch.arange(5))
        >>> [len(y) for _, y in image_loader(images, 2, 0, train=False)], len(image_loader(images, 2, 0, train=True))
        ([2, 2, 1], 2)
    """
    import torch

    return torch.utils.data.DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=train,
        num_workers=num_workers,
        pin_memory=pin_memory(),
        drop_last=train,
    )


def check_data_paths(data: Any, *, train_labelled: bool, min_classes: int = 2) -> None:
    """One-line errors for missing/empty folders, folders without classes, classes without images."""
    if data.dataset not in _FOLDER_DATASETS or data.get("format", "image_folder") != "image_folder":
        return
    check_image_folder(data.train_path, role="data.train_path", labelled=train_labelled, min_classes=min_classes)
    if data.get("val_path") is not None:
        check_image_folder(data.val_path, role="data.val_path", labelled=True, min_classes=min_classes)


def _checked(dataset: Any) -> Any:
    try:
        install_checked_loader(dataset)
    except TypeError:  # solo-learn's flat unlabelled reader opens files itself
        pass
    return dataset


def fast_train_loader(cfg: Any) -> Any:
    """The in-memory batched-augmentation loader (``data.fast_augment=true``) for an ImageFolder."""
    from ..data.fast_pretrain import fast_pretrain_loader

    data = cfg.data
    if data.dataset not in _FOLDER_DATASETS or data.get("format", "image_folder") != "image_folder":
        raise InputError(
            f"data.fast_augment=true reads ImageFolder trees (datasets {list(_FOLDER_DATASETS)} with format "
            f"image_folder), not data.dataset={data.dataset} / data.format={data.get('format')}; drop the override"
        )
    if data.get("no_labels", False):
        raise InputError("data.fast_augment=true needs class folders; it does not read data.no_labels=true folders")
    if float(data.get("fraction", -1) or -1) not in (-1.0, 1.0):
        raise InputError(
            f"data.fast_augment=true uses the whole folder; data.fraction={data.fraction} is not supported"
        )
    return fast_pretrain_loader(
        data.train_path,
        cfg.augmentations,
        cfg.optimizer.batch_size,
        seed=cfg.seed,
        cache=data.get("fast_augment_cache"),
    )


def pretrain_train_loader(cfg: Any, epoch_source: Callable[[], int] | None = None) -> Any:
    """solo-learn's multi-crop pretraining dataset in an epoch-seeded loader (drop_last, shuffled),
    or the in-memory batched-augmentation loader with ``data.fast_augment=true``."""
    if cfg.data.get("fast_augment", False):
        return fast_train_loader(cfg)
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
        prepare_datasets,
    )

    pipelines = [
        NCropAugmentation(build_transform_pipeline(cfg.data.dataset, aug), aug.num_crops) for aug in cfg.augmentations
    ]
    transform = FullTransformPipeline(pipelines)
    if cfg.get("debug_augmentations"):
        log.info("transforms:\n%s", transform)
    dataset = prepare_datasets(
        cfg.data.dataset,
        transform,
        train_data_path=cfg.data.train_path,
        data_format=cfg.data.format,
        no_labels=cfg.data.no_labels,
        data_fraction=cfg.data.fraction,
    )
    return EpochSeededLoader(
        _checked(dataset),
        batch_size=cfg.optimizer.batch_size,
        shuffle=True,
        num_workers=cfg.data.num_workers,
        pin_memory=pin_memory(),
        drop_last=True,
        seed=cfg.seed,
        epoch_source=epoch_source,
    )


def pretrain_val_loader(cfg: Any) -> Any:
    """The online-evaluation loader (None without labelled validation data)."""
    from solo.data.classification_dataloader import prepare_data, prepare_datasets

    dataset = cfg.data.dataset
    if cfg.data.val_path is None and dataset in _FOLDER_DATASETS:
        return None
    if dataset == "custom" and cfg.data.no_labels:
        return None
    data_format = "image_folder" if cfg.data.format == "dali" else cfg.data.format
    if cifar_like(dataset):
        _, val_loader = prepare_data(
            dataset,
            train_data_path=cfg.data.train_path,
            val_data_path=cfg.data.val_path,
            data_format=data_format,
            batch_size=cfg.optimizer.batch_size,
            num_workers=cfg.data.num_workers,
        )  # solo-learn's own (pinned) loader is never iterated: its dataset goes into ours
        return image_loader(val_loader.dataset, cfg.optimizer.batch_size, cfg.data.num_workers, train=False)
    aug = cfg.augmentations[0]
    transform = eval_transform(int(aug.crop_size), *mean_std(dataset, aug))
    _, val_dataset = prepare_datasets(
        dataset,
        transform,
        transform,
        train_data_path=cfg.data.train_path,
        val_data_path=cfg.data.val_path,
        data_format=data_format,
    )
    return image_loader(_checked(val_dataset), cfg.optimizer.batch_size, cfg.data.num_workers, train=False)


def classification_loaders(cfg: Any, train_transform: Any = None, val_transform: Any = None) -> tuple[Any, Any]:
    """Train and validation loaders of a labelled dataset (linear evaluation)."""
    from solo.data.classification_dataloader import prepare_data, prepare_datasets

    batch_size, workers = cfg.optimizer.batch_size, cfg.data.num_workers
    data_format = "image_folder" if cfg.data.format == "dali" else cfg.data.format
    if cifar_like(cfg.data.dataset):
        # solo-learn's transforms (and auto_augment) on its datasets; its pinned loaders are never iterated
        solo_train, solo_val = prepare_data(
            cfg.data.dataset,
            train_data_path=cfg.data.train_path,
            val_data_path=cfg.data.val_path,
            data_format=data_format,
            batch_size=cfg.optimizer.batch_size,
            num_workers=cfg.data.num_workers,
            auto_augment=cfg.get("auto_augment", False),
        )
        train_dataset, val_dataset = solo_train.dataset, solo_val.dataset
        return image_loader(train_dataset, batch_size, workers, train=True), image_loader(
            val_dataset, batch_size, workers, train=False
        )
    train_dataset, val_dataset = prepare_datasets(
        cfg.data.dataset,
        train_transform,
        val_transform,
        train_data_path=cfg.data.train_path,
        val_data_path=cfg.data.val_path,
        data_format=data_format,
        data_fraction=cfg.data.fraction,
    )
    return (
        image_loader(_checked(train_dataset), batch_size, workers, train=True),
        image_loader(_checked(val_dataset), batch_size, workers, train=False),
    )

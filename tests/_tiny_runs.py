"""The launchers' arguments for the tests' tiny runs, written once: the adapter tests and the
packaging test start ``sfrik-pretrain`` / ``sfrik-linear`` on the generated tiny image folders
(``tests/adapter/conftest.py``'s ``tiny_data``) with these, plus what each test is about."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path


def tiny_pretrain_args(
    data: Mapping[str, object], run_dir: Path, config: str = "custom/sfrik", extra: Sequence[str] = ()
) -> list[str]:
    """One epoch of two batches (one validation batch) of 16-px crops, checkpoints in
    ``run_dir/ckpt``, no automatic resume; ``extra`` overrides come last (they win)."""
    return [
        "--config-name",
        config,
        f"data.train_path={data['train']}",
        f"data.val_path={data['val']}",
        "augmentations.0.crop_size=16",
        "augmentations.1.crop_size=16",
        f"checkpoint.dir={Path(run_dir) / 'ckpt'}",
        "max_epochs=1",
        "++limit_train_batches=2",
        "++limit_val_batches=1",
        "auto_resume.enabled=False",
        *extra,
    ]


def tiny_linear_args(
    data: Mapping[str, object], run_dir: Path, weights: object, extra: Sequence[str] = ()
) -> list[str]:
    """One epoch of offline linear evaluation of ``weights`` on the CPU in float32, batches of 8,
    checkpoints in ``run_dir/ckpt``, no automatic resume, no progress bar or sanity check."""
    return [
        "--config-name",
        "custom",
        f"pretrained_feature_extractor={weights}",
        f"data.train_path={data['train']}",
        f"data.val_path={data['val']}",
        "data.augmentations.crop_size=16",
        "data.num_workers=0",
        "optimizer.batch_size=8",
        f"checkpoint.dir={Path(run_dir) / 'ckpt'}",
        "max_epochs=1",
        "auto_resume.enabled=False",
        "accelerator=cpu",
        "devices=1",
        "precision=32",
        "++enable_progress_bar=False",
        "++num_sanity_val_steps=0",
        *extra,
    ]

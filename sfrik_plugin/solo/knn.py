"""Offline weighted kNN on the frozen backbone and/or projector features of a pretraining run.

The run's ``args.json`` (written next to its checkpoints) rebuilds the model; the checkpoint is
read with the project's trust policy; solo-learn's ``WeightedKNNClassifier`` votes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..console import InputError, get_logger
from ..data.transforms import eval_transform
from ..files.checkpoints import load_checkpoint
from ..files.records import write_json
from .loaders import check_data_paths, cifar_like, image_loader, mean_std

__all__ = ["find_pretrain_checkpoint", "run_knn"]

log = get_logger(__name__)


def find_pretrain_checkpoint(cfg: Any) -> tuple[Path, Path]:
    """``(checkpoint, args.json)`` from ``pretrained_feature_extractor`` or, in
    ``pretrained_checkpoint_dir``, the checkpoint of the highest epoch.

    Example:
        >>> import tempfile
        >>> from omegaconf import OmegaConf
        >>> run = Path(tempfile.mkdtemp())
        >>> for name in ("sfrik-ep=0.ckpt", "sfrik-ep=9.ckpt", "sfrik-ep=10.ckpt", "args.json"):
        ...     (run / name).touch()
        >>> ckpt, args = find_pretrain_checkpoint(OmegaConf.create({"pretrained_checkpoint_dir": str(run)}))
        >>> ckpt.name, args.name
        ('sfrik-ep=10.ckpt', 'args.json')
    """
    from .checkpointing import checkpoint_epoch

    ckpt = cfg.get("pretrained_feature_extractor")
    folder = cfg.get("pretrained_checkpoint_dir")
    if ckpt not in (None, "None"):
        path = Path(str(ckpt))
        folder_path = path.parent
    elif folder not in (None, "None"):
        folder_path = Path(str(folder))
        ckpts = sorted(folder_path.glob("*.ckpt"), key=lambda p: (checkpoint_epoch(p), p.stat().st_mtime))
        ckpts = [p for p in ckpts if not p.name.startswith(".")]
        if not ckpts:
            raise InputError(f"pretrained_checkpoint_dir={folder_path} holds no .ckpt file")
        path = ckpts[-1]
    else:
        raise InputError("set pretrained_checkpoint_dir (a pretraining run folder) or pretrained_feature_extractor")
    args = folder_path / "args.json"
    if not path.is_file() or not args.is_file():
        raise InputError(f"the kNN needs {path} and the args.json solo-learn writes next to it ({args})")
    return path, args


def run_knn(cfg: Any) -> dict[str, Any]:
    """Weighted kNN accuracy for every (feature type, k, distance, temperature) asked for;
    returns ``{"results": [{"feature_type", "k", "distance_fx", "T", "acc1", "acc5"}, ...]}``."""
    import torch
    from omegaconf import OmegaConf
    from solo.data.classification_dataloader import prepare_datasets, prepare_transforms
    from solo.methods import METHODS
    from solo.utils.knn import WeightedKNNClassifier

    from . import register
    from .known_keys import check_config_keys

    register()
    OmegaConf.set_struct(cfg, False)
    check_config_keys("knn", cfg)  # a typo is an error, not a default
    ckpt, args_path = find_pretrain_checkpoint(cfg)
    method_cfg = OmegaConf.create(json.loads(args_path.read_text()))
    OmegaConf.set_struct(method_cfg, False)
    if method_cfg.method not in METHODS:
        raise InputError(f"{args_path} names method {method_cfg.method!r}, which is not registered")
    # the file is read (and refused if untrusted) before the model it describes is built
    state = load_checkpoint(ckpt, trust_pickle=bool(cfg.get("trust_pickle", False)))
    if not isinstance(state, dict) or "state_dict" not in state:
        raise InputError(f"{ckpt} is not a solo-learn checkpoint (no state_dict)")
    model = METHODS[method_cfg.method](method_cfg)
    missing, _ = model.load_state_dict(state["state_dict"], strict=False)
    needed = [k for k in missing if k.startswith(("backbone.", "projector."))]
    if needed:
        raise InputError(f"{ckpt} lacks weights the kNN needs, e.g. {needed[:5]}")
    device = torch.device(cfg.get("device") or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device).eval()

    data = method_cfg.data.copy()
    data.dataset = cfg.data.get("dataset") or method_cfg.data.dataset
    data.train_path = cfg.data.train_path or method_cfg.data.train_path
    data.val_path = cfg.data.val_path or method_cfg.data.val_path
    data.format = cfg.data.get("format") or "image_folder"
    check_data_paths(data, train_labelled=True)
    if cifar_like(data.dataset):
        _, transform = prepare_transforms(data.dataset)
    else:
        aug = method_cfg.augmentations[0] if "augmentations" in method_cfg else None
        crop = int(cfg.data.get("crop_size") or (aug.crop_size if aug is not None else 224))
        transform = eval_transform(crop, *mean_std(data.dataset, aug))
    train_ds, val_ds = prepare_datasets(
        data.dataset,
        T_train=transform,
        T_val=transform,
        train_data_path=data.train_path,
        val_data_path=data.val_path,
        data_format=data.format,
    )
    workers = cfg.data.get("num_workers", 0)
    train_loader = image_loader(train_ds, cfg.batch_size, workers, train=False)  # every neighbour, in order
    val_loader = image_loader(val_ds, cfg.batch_size, workers, train=False)

    @torch.no_grad()
    def features(loader: Any) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        feats, projs, labels = [], [], []
        for images, targets in loader:
            out = model(images.to(device))
            feats.append(out["feats"].float().cpu())
            projs.append(out["z"].float().cpu())
            labels.append(targets)
        return {"backbone": torch.cat(feats), "projector": torch.cat(projs)}, torch.cat(labels)

    train_feats, train_targets = features(train_loader)
    val_feats, val_targets = features(val_loader)
    results = []
    for feature_type in cfg.feature_type:
        for k in cfg.k:
            for distance_fx in cfg.distance_function:
                for temperature in cfg.temperature if distance_fx == "cosine" else [None]:
                    knn = WeightedKNNClassifier(
                        k=int(k), T=temperature if temperature is not None else 0.07, distance_fx=distance_fx
                    )
                    knn(
                        train_features=train_feats[feature_type],
                        train_targets=train_targets,
                        test_features=val_feats[feature_type],
                        test_targets=val_targets,
                    )
                    acc1, acc5 = knn.compute()
                    results.append(
                        dict(
                            feature_type=feature_type,
                            k=int(k),
                            distance_fx=distance_fx,
                            T=temperature,
                            acc1=acc1,
                            acc5=acc5,
                        )
                    )
                    log.info(
                        "kNN %-9s k=%-4d %-9s T=%s: acc@1=%.2f acc@5=%.2f",
                        feature_type,
                        int(k),
                        distance_fx,
                        temperature,
                        acc1,
                        acc5,
                    )
    if cfg.get("output"):
        write_json(cfg.output, results)
    return {"results": results}

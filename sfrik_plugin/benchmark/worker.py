"""One stage of one benchmark run, in its own process: ``python -m sfrik_plugin.benchmark.worker RUN_DIR {train,test}``.

``train``: pretrain through the adapter (or build the untrained backbone for the random-init baseline),
save ``backbone.pt`` and ``pretrain.json``, evaluate on the validation split (``eval_val.json``), and
write ``done.json``. ``test``: evaluate ``backbone.pt`` on the test split (linear probe, kNN,
semi-supervised fine-tuning) into ``eval_test.json``. Everything the stage needs is in ``spec.json``.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

from .runner import RANDOM_INIT, latest_checkpoint, read_json, write_json


def peak_memory_mb() -> float:
    """Peak resident memory (MiB) of this process and of its finished children (data-loader workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, children) / 1024.0  # Linux reports KiB


def _compose(spec: dict[str, Any], run_dir: Path):
    from sfrik_plugin.solo.config import compose_config

    cfg = compose_config("pretrain", spec["config"], list(spec["overrides"]))
    cfg.seed = int(spec["seed"])
    cfg.data.train_path = spec["data"]["train"]
    cfg.data.val_path = None
    cfg.checkpoint.enabled = True
    cfg.checkpoint.dir = str(run_dir / "ckpt")
    cfg.checkpoint.frequency = 1
    cfg.auto_resume.enabled = False
    ckpt = latest_checkpoint(run_dir)
    cfg.resume_from_checkpoint = str(ckpt) if ckpt is not None else None
    return cfg, ckpt


def _attempts_wall_time(attempts: list, run_dir: Path) -> float:
    """Seconds spent in pretraining attempts; an interrupted attempt counts until its last checkpoint."""
    total = 0.0
    for a in attempts:
        end = a.get("end")
        if end is None:
            saved = [p.stat().st_mtime for p in (run_dir / "ckpt").rglob("*.ckpt")]
            saved = [t for t in saved if t >= a["start"]]
            end = max(saved) if saved else a["start"]
        total += max(0.0, end - a["start"])
    return total


def train(run_dir: Path, spec: dict[str, Any]) -> None:
    import torch

    from .backbones import make_backbone, register_backbones

    if spec["method"] == RANDOM_INIT:
        torch.manual_seed(int(spec["seed"]))
        backbone = make_backbone(spec["backbone"]["name"], spec["backbone"].get("kwargs"))
        torch.save(backbone.state_dict(), run_dir / "backbone.pt")
        write_json(run_dir / "pretrain.json", {"wall_time_s": 0.0, "peak_memory_mb": peak_memory_mb(), "epochs": 0})
    elif read_json(run_dir / "pretrain.json") is None or not (run_dir / "backbone.pt").is_file():
        import sfrik_plugin.solo  # noqa: F401  (registers SFRIK)
        from sfrik_plugin.solo.cli import run_pretrain

        register_backbones()
        cfg, resumed = _compose(spec, run_dir)
        attempts = read_json(run_dir / "attempts.json") or []
        attempts.append({"start": time.time(), "end": None, "resumed_from": str(resumed) if resumed else None})
        write_json(run_dir / "attempts.json", attempts)
        if resumed:
            print(f"[benchmark] resuming from {resumed}", flush=True)
        result = run_pretrain(cfg)
        attempts[-1]["end"] = time.time()
        write_json(run_dir / "attempts.json", attempts)
        backbone = result["model"].backbone
        torch.save({k: v.detach().cpu() for k, v in backbone.state_dict().items()}, run_dir / "backbone.pt")
        metrics = {k: v for k, v in result["metrics"].items() if k.startswith("train_")}
        write_json(
            run_dir / "pretrain.json",
            {
                "wall_time_s": _attempts_wall_time(attempts, run_dir),
                "attempts": len(attempts),
                "peak_memory_mb": peak_memory_mb(),
                "epochs": int(cfg.max_epochs),
                "checkpoint": result["checkpoint"],
                "metrics": metrics,
            },
        )
    write_json(run_dir / "eval_val.json", evaluate(run_dir, spec, "val", semi=False))
    write_json(run_dir / "done.json", {"finished": time.strftime("%Y-%m-%d %H:%M:%S")})


def _load_backbone(run_dir: Path, spec: dict[str, Any]):
    import torch

    from .backbones import make_backbone

    backbone = make_backbone(spec["backbone"]["name"], spec["backbone"].get("kwargs"))
    backbone.load_state_dict(torch.load(run_dir / "backbone.pt", map_location="cpu"))
    return backbone.eval()


def evaluate(run_dir: Path, spec: dict[str, Any], split: str, semi: bool) -> dict[str, Any]:
    from . import evaluate as ev

    ecfg = spec["evaluation"]
    crop = int(spec["crop_size"])
    backbone = _load_backbone(run_dir, spec)
    T = ev.eval_transform(crop)
    train_ds = ev.image_folder(spec["data"]["train"], T)
    eval_ds = ev.image_folder(spec["data"][split], T)
    if train_ds.classes != eval_ds.classes:
        raise ValueError(f"train and {split} folders have different classes")
    nw = int(ecfg.get("num_workers", 0))
    start = time.time()
    xtr, ytr = ev.extract_features(backbone, train_ds, num_workers=nw)
    xev, yev = ev.extract_features(backbone, eval_ds, num_workers=nw)
    lin = ecfg.get("linear", {})
    knn = ecfg.get("knn", {})
    out = {
        "split": split,
        "n_train": len(train_ds),
        "n_eval": len(eval_ds),
        "feature_dim": int(xtr.shape[1]),
        "linear": ev.linear_probe(
            xtr,
            ytr,
            xev,
            yev,
            weight_decay=float(lin.get("weight_decay", 1e-4)),
            max_iter=int(lin.get("max_iter", 300)),
            num_classes=len(train_ds.classes),
        ),
        "knn": ev.knn_classify(xtr, ytr, xev, yev, k=int(knn.get("k", 20)), T=float(knn.get("T", 0.07))),
    }
    if semi and ecfg.get("semi_supervised"):
        s = ecfg["semi_supervised"]
        aug = ev.image_folder(spec["data"]["train"], ev.train_transform(crop, min_scale=float(s.get("min_scale", 0.5))))
        out["semi"] = {}
        for frac in s.get("fractions", [0.01, 0.1]):
            out["semi"][str(frac)] = ev.semi_supervised(
                backbone,
                aug,
                eval_ds,
                float(frac),
                num_classes=len(train_ds.classes),
                epochs=int(s.get("epochs", 20)),
                batch_size=int(s.get("batch_size", 64)),
                lr_backbone=float(s.get("lr_backbone", 0.01)),
                lr_head=float(s.get("lr_head", 0.1)),
                weight_decay=float(s.get("weight_decay", 5e-4)),
                seed=int(spec["seed"]),
                num_workers=nw,
            )
    out["eval_time_s"] = time.time() - start
    out["peak_memory_mb"] = peak_memory_mb()
    return out


def main(argv=None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if len(argv) != 2 or argv[1] not in ("train", "test"):
        sys.exit("usage: python -m sfrik_plugin.benchmark.worker RUN_DIR {train,test}")
    run_dir, stage = Path(argv[0]), argv[1]
    spec = read_json(run_dir / "spec.json")
    if spec is None:
        sys.exit(f"{run_dir}/spec.json is missing")
    import torch

    threads = os.environ.get("SFRIK_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    if stage == "train":
        train(run_dir, spec)
    else:
        if not (run_dir / "backbone.pt").is_file():
            sys.exit(f"{run_dir}: train stage first")
        write_json(run_dir / "eval_test.json", evaluate(run_dir, spec, "test", semi=True))


if __name__ == "__main__":
    main()

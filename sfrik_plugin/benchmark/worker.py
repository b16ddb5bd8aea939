"""Stages of one benchmark run, in their own process: ``python -m sfrik_plugin.benchmark.worker RUN_DIR STAGE...``.

* ``train``: pretrain through the adapter (:func:`sfrik_plugin.solo.pretrain.run_pretrain`), or build
  the untrained backbone of the random-init baseline; save ``backbone.pt`` and ``pretrain.json``
  (wall time over all attempts, steps, images seen, images/s, peak resident memory of this
  process, the machine's highest 1-minute load average seen at the start or end of an attempt);
  evaluate on the validation split (``eval_val.json``); write ``done.json``.
* ``test``: linear probe and kNN of ``backbone.pt`` on the test split (``eval_test.json``).
* ``semi``: semi-supervised fine-tuning on the label fractions, test split (``eval_semi.json``).

Everything a stage needs is in ``spec.json``. The worker prints progress (its output goes to
``<stage>.log`` in the run folder).

Example::

    python -m sfrik_plugin.benchmark.worker out/runs/sfrik/sim_coeff=4000.0/seed0 train
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..console import get_logger
from ..files.checkpoints import load_checkpoint, save_checkpoint
from ..files.records import read_json, write_json
from ..interrupts import WATCH
from .plan import RANDOM_INIT
from .stages import pretraining_complete

__all__ = ["peak_rss_mb", "train", "evaluate", "semi_supervised", "main"]

log = get_logger(__name__)


def peak_rss_mb() -> float:
    """Peak resident memory of this process (MiB): its high-water mark, data-loader workers excluded."""
    from ..profiler.measure import process_memory_bytes

    return process_memory_bytes()["peak_rss"] / 2**20


def _load() -> float | None:
    """The 1-minute load average of the machine (None where the OS does not report it)."""
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _compose(spec: dict[str, Any], run_dir: Path) -> tuple[Any, Path | None]:
    from ..solo.config import compose_config
    from .stages import latest_checkpoint

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


def _attempts_wall_time(attempts: Sequence[dict[str, Any]], run_dir: Path) -> float:
    """Seconds spent in pretraining attempts; an interrupted attempt counts until its last checkpoint
    (the work after it was lost and done again by the next attempt).

    Only checkpoints written before the next attempt started belong to an interrupted attempt: a
    later one is the next attempt's, and counting it would add the time the run stood still (a
    sweep killed by a reboot and resumed 15 minutes later once reported 1222 s for a 194 s run).

    Example:
        >>> _attempts_wall_time([{"start": 0.0, "end": 5.0}, {"start": 100.0, "end": 130.0}], Path("/nonexistent"))
        35.0
    """
    saved_all = sorted(p.stat().st_mtime for p in (run_dir / "ckpt").rglob("*.ckpt"))
    total = 0.0
    for index, attempt in enumerate(attempts):
        start, end = attempt["start"], attempt.get("end")
        if end is None:
            following = [a["start"] for a in attempts[index + 1 :]]
            limit = following[0] if following else float("inf")
            saved = [t for t in saved_all if start <= t < limit]
            end = saved[-1] if saved else start
        total += max(0.0, end - start)
    return total


def _pretrain(run_dir: Path, spec: dict[str, Any]) -> None:
    import sfrik_plugin.solo  # noqa: F401  (registers SFRIK with solo-learn)

    from ..solo.pretrain import run_pretrain
    from .backbones import register_backbones

    register_backbones()
    cfg, resumed = _compose(spec, run_dir)
    attempts = read_json(run_dir / "attempts.json") or []
    # the machine's load during the run: times measured on a shared machine mean little without it
    attempts.append(
        {"start": time.time(), "end": None, "resumed_from": str(resumed) if resumed else None, "load_start": _load()}
    )
    write_json(run_dir / "attempts.json", attempts)
    if resumed:
        log.info("resuming from %s", resumed)
    result = run_pretrain(cfg)  # Ctrl-C / SIGTERM: Interrupted propagates, nothing below is written
    trainer = result["trainer"]
    steps, planned = int(trainer.global_step), int(trainer.estimated_stepping_batches)
    if steps < planned:  # never record an unfinished pretraining as a result
        raise RuntimeError(f"{run_dir}: the pretraining stopped at step {steps} of {planned}")
    attempts[-1]["end"] = time.time()
    attempts[-1]["load_end"] = _load()
    attempts[-1]["peak_rss_mb"] = peak_rss_mb()
    write_json(run_dir / "attempts.json", attempts)
    backbone = result["model"].backbone
    save_checkpoint({k: v.detach().cpu() for k, v in backbone.state_dict().items()}, run_dir / "backbone.pt")
    batch = int(cfg.optimizer.batch_size)
    wall = _attempts_wall_time(attempts, run_dir)
    write_json(
        run_dir / "pretrain.json",
        {
            "wall_time_s": wall,
            "attempts": len(attempts),
            "peak_memory_mb": max(a.get("peak_rss_mb") or 0.0 for a in attempts),
            "epochs": int(cfg.max_epochs),
            "max_steps": spec.get("steps"),
            "steps": steps,
            "planned_steps": planned,  # stages.pretraining_complete checks steps against it
            "batch_size": batch,
            "images_seen": steps * batch,  # each image gives two views
            "images_per_s": steps * batch / wall if wall > 0 else None,
            "load_avg_1min": max(a.get(k) or 0.0 for a in attempts for k in ("load_start", "load_end")),
            "checkpoint": result["checkpoint"],
            "metrics": {k: v for k, v in result["metrics"].items() if k.startswith("train_")},
        },
    )


def train(run_dir: Path, spec: dict[str, Any]) -> None:
    """The ``train`` stage (module docstring); a finished pretraining is not redone."""
    import torch

    from .backbones import make_backbone

    if spec["method"] == RANDOM_INIT:
        torch.manual_seed(int(spec["seed"]))
        backbone = make_backbone(spec["backbone"]["name"], spec["backbone"].get("kwargs"))
        save_checkpoint(backbone.state_dict(), run_dir / "backbone.pt")
        write_json(
            run_dir / "pretrain.json",
            {"wall_time_s": 0.0, "peak_memory_mb": peak_rss_mb(), "steps": 0, "planned_steps": 0},
        )
    elif not pretraining_complete(run_dir) or not (run_dir / "backbone.pt").is_file():
        _pretrain(run_dir, spec)
    WATCH.raise_if_pending(f"after the pretraining of {run_dir} (kept: backbone.pt, pretrain.json)")
    write_json(run_dir / "eval_val.json", evaluate(run_dir, spec, "val"))
    write_json(run_dir / "done.json", {"finished": time.strftime("%Y-%m-%d %H:%M:%S")})


def _load_backbone(run_dir: Path, spec: dict[str, Any]) -> Any:
    from .backbones import make_backbone

    backbone = make_backbone(spec["backbone"]["name"], spec["backbone"].get("kwargs"))
    backbone.load_state_dict(load_checkpoint(run_dir / "backbone.pt"))
    return backbone.eval()


def _datasets(spec: dict[str, Any], split: str) -> tuple[Any, Any]:
    from . import evaluate as ev

    transform = ev.eval_transform(int(spec["crop_size"]))
    train_ds = ev.image_folder(spec["data"]["train"], transform)
    eval_ds = ev.image_folder(spec["data"][split], transform)
    if train_ds.classes != eval_ds.classes:
        raise ValueError(
            f"the train and {split} folders have different classes: {train_ds.classes} vs {eval_ds.classes}"
        )
    return train_ds, eval_ds


def evaluate(run_dir: Path, spec: dict[str, Any], split: str) -> dict[str, Any]:
    """Linear probe and weighted kNN of the frozen backbone, trained on the train split, on ``split``."""
    from . import evaluate as ev

    ecfg = spec["evaluation"]
    backbone = _load_backbone(run_dir, spec)
    train_ds, eval_ds = _datasets(spec, split)
    workers = int(ecfg.get("num_workers", 0))
    start = time.time()
    xtr, ytr = ev.extract_features(backbone, train_ds, num_workers=workers)
    xev, yev = ev.extract_features(backbone, eval_ds, num_workers=workers)
    lin, knn = ecfg.get("linear") or {}, ecfg.get("knn") or {}
    return {
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
        "eval_time_s": time.time() - start,
        "peak_memory_mb": peak_rss_mb(),
    }


def semi_supervised(run_dir: Path, spec: dict[str, Any]) -> dict[str, Any]:
    """Fine-tuning of the backbone + a linear head on each label fraction; accuracy on the test split."""
    from . import evaluate as ev

    settings = spec["evaluation"].get("semi_supervised") or {}
    crop = int(spec["crop_size"])
    backbone = _load_backbone(run_dir, spec)
    _, test_ds = _datasets(spec, "test")
    augmented = ev.image_folder(
        spec["data"]["train"], ev.train_transform(crop, min_scale=float(settings.get("min_scale", 0.5)))
    )
    out: dict[str, Any] = {}
    start = time.time()
    for fraction in settings.get("fractions", [0.01, 0.1]):
        out[str(fraction)] = ev.semi_supervised(
            backbone,
            augmented,
            test_ds,
            float(fraction),
            num_classes=len(test_ds.classes),
            epochs=int(settings.get("epochs", 20)),
            batch_size=int(settings.get("batch_size", 64)),
            lr_backbone=float(settings.get("lr_backbone", 0.01)),
            lr_head=float(settings.get("lr_head", 0.1)),
            weight_decay=float(settings.get("weight_decay", 5e-4)),
            seed=int(spec["seed"]),
            num_workers=int(spec["evaluation"].get("num_workers", 0)),
        )
    return {"semi": out, "eval_time_s": time.time() - start, "peak_memory_mb": peak_rss_mb()}


def main(argv: Sequence[str] | None = None) -> None:
    from ..console import exit_on_input_error, quiet_upstream_warnings, setup_console
    from ..interrupts import exit_on_interrupt, watching_interrupts

    args = list(sys.argv[1:] if argv is None else argv)
    stages = args[1:]
    if len(args) < 2 or any(stage not in ("train", "test", "semi") for stage in stages):
        sys.exit("usage: python -m sfrik_plugin.benchmark.worker RUN_DIR {train,test,semi} [...]")
    setup_console()
    quiet_upstream_warnings()
    run_dir = Path(args[0])
    spec = read_json(run_dir / "spec.json")
    if spec is None:
        sys.exit(f"{run_dir}/spec.json is missing")
    import torch

    threads = os.environ.get("SFRIK_BENCH_THREADS")
    if threads:
        torch.set_num_threads(int(threads))
    # Ctrl-C / SIGTERM: stop at a safe point, one line, exit 130 / 143; finished stages keep their markers
    with exit_on_interrupt("benchmark worker"), watching_interrupts(), exit_on_input_error("benchmark worker"):
        _run_stages(run_dir, spec, stages)


def _run_stages(run_dir: Path, spec: dict[str, Any], stages: Sequence[str]) -> None:
    for stage in stages:
        WATCH.raise_if_pending(f"before stage {stage} of {run_dir}")
        print(f"[benchmark] {run_dir}: stage {stage}", flush=True)
        if stage == "train":
            train(run_dir, spec)
            continue
        if not (run_dir / "backbone.pt").is_file():
            sys.exit(f"{run_dir}: run the train stage first (no backbone.pt)")
        if stage == "test":
            write_json(run_dir / "eval_test.json", evaluate(run_dir, spec, "test"))
        else:
            write_json(run_dir / "eval_semi.json", semi_supervised(run_dir, spec))


if __name__ == "__main__":
    main()

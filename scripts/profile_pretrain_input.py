#!/usr/bin/env python
"""Where a CPU pretraining step spends its time, and solo-learn's input pipeline against the in-memory one.

The setting is the benchmark's (``sfrik_plugin/benchmark/configs/fashion_mnist.yaml``): small_cnn of
width 16, 28 px crops, batch 64, projector 1024-1024-1024, solo-learn's asymmetric augmentations with
crop_min_scale 0.2 and no blur, one DataLoader worker. Fashion-MNIST (the first ``--per-class``
images of each class of the idx files) is written as a PNG ImageFolder into a temporary folder, and:

* "solo" is solo-learn's own pipeline as the launchers build it (``build_transform_pipeline``,
  ``NCropAugmentation``, ``FullTransformPipeline``, ``prepare_datasets``, ``prepare_dataloader``);
* "new" decodes the folder once (``load_image_folder``) and feeds ``FastPretrainLoader``
  (batched augmentation in the main process).

Parts timed: PNG decoding, solo's per-image transforms, collation, each loader alone, the batched
augmentation, three batched crop kernels, the bare model step (forward + loss, backward, LARS) and
Lightning's overhead on top of it; then whole ``trainer.fit`` runs, alternating solo and new
(A B A B ...). Prints a table and writes ``profile_pretrain_input.{csv,json}`` into ``--out``.

  python scripts/profile_pretrain_input.py                       # ~1-2 minutes on 2 cores
  python scripts/profile_pretrain_input.py --rounds 8 --steps 20 --method vicreg --threads 2
  python scripts/profile_pretrain_input.py --per-class 6000                  # the full 60k training set
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

BENCHMARK_CONFIG = Path(__file__).resolve().parents[1] / "sfrik_plugin" / "benchmark" / "configs" / "fashion_mnist.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", default="sfrik", choices=["sfrik", "vicreg", "barlow"])
    parser.add_argument("--per-class", type=int, default=300, help="training images per class (6000: all 60k)")
    parser.add_argument("--steps", type=int, default=12, help="training steps per trainer.fit run")
    parser.add_argument("--rounds", type=int, default=5, help="solo/new pairs of trainer.fit runs (interleaved)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=None, help="torch threads of the main process")
    parser.add_argument("--folder", type=Path, default=None, help="reuse this ImageFolder instead of writing one")
    parser.add_argument("--config", type=Path, default=BENCHMARK_CONFIG, help="benchmark yaml giving the setting")
    parser.add_argument("--out", type=Path, default=Path("bench-results/profile-pretrain-input"))
    return parser


def median_seconds(fn: Callable[[], Any], repeats: int, warmup: int = 1) -> float:
    """Median wall time of ``repeats`` calls after ``warmup`` untimed ones (the profiler's clock)."""
    from sfrik_plugin.profiler.measure import summarize, time_call

    for _ in range(warmup):
        fn()
    return summarize([time_call(fn) for _ in range(repeats)])["median"]


def write_folder(root: Path, per_class: int) -> int:
    from sfrik_plugin.data.fashion_mnist import FASHION_MNIST_CLASSES, load_fashion_mnist, write_image_folder

    images, labels = load_fashion_mnist("train")
    chosen = [i for c in range(10) for i in (labels == c).nonzero()[0][:per_class]]
    return write_image_folder(root, images, labels, FASHION_MNIST_CLASSES, sorted(chosen))


def compose(method: str, folder: Path, batch_size: int, config: Path):
    import yaml
    from solo.args.pretrain import parse_cfg

    import sfrik_plugin.solo  # noqa: F401  (registers "sfrik")
    from sfrik_plugin.benchmark.backbones import register_backbones
    from sfrik_plugin.contenders.overrides import solo_overrides
    from sfrik_plugin.solo.config import compose_config
    from sfrik_plugin.solo.launch import parse_with_devices

    register_backbones()
    # the benchmark's setting, translated as its runner translates it
    overrides = solo_overrides(yaml.safe_load(config.read_text())) + [
        f"optimizer.batch_size={batch_size}",
        "max_epochs=1",
    ]
    cfg = compose_config("pretrain", f"custom/{method}", overrides)
    cfg.data.train_path, cfg.data.val_path = str(folder), None
    return parse_with_devices(cfg, parse_cfg), overrides


def solo_loader(cfg):
    from solo.data.pretrain_dataloader import (
        FullTransformPipeline,
        NCropAugmentation,
        build_transform_pipeline,
        prepare_dataloader,
        prepare_datasets,
    )

    transform = FullTransformPipeline(
        [NCropAugmentation(build_transform_pipeline(cfg.data.dataset, a), a.num_crops) for a in cfg.augmentations]
    )
    dataset = prepare_datasets(
        cfg.data.dataset, transform, train_data_path=cfg.data.train_path, data_format="image_folder"
    )
    loader = prepare_dataloader(dataset, batch_size=cfg.optimizer.batch_size, num_workers=cfg.data.num_workers)
    return loader, dataset, transform


def loader_rate(loader, batches: int, batch_size: int) -> tuple[float, float]:
    """(seconds to the first batch, images/s over the next ``batches``) of a fresh pass."""
    start = time.perf_counter()
    iterator = iter(loader)
    next(iterator)
    first = time.perf_counter() - start
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return first, batches * batch_size / (time.perf_counter() - start)


def fit_rate(model, loader, steps: int, batch_size: int) -> tuple[float, float]:
    """(wall seconds of ``trainer.fit``, images/s from the first step's start to the last step's end)."""
    from lightning.pytorch import Trainer
    from lightning.pytorch.callbacks import Callback

    marks: dict[str, float] = {}

    class Clock(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            marks.setdefault("first", time.perf_counter())

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            marks["last"] = time.perf_counter()

    trainer = Trainer(
        accelerator="cpu", devices=1, max_epochs=1, limit_train_batches=steps, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, callbacks=[Clock()],
    )  # fmt: skip
    start = time.perf_counter()
    trainer.fit(model, loader)
    wall = time.perf_counter() - start
    return wall, steps * batch_size / (marks["last"] - marks["first"])


class _Repeat:
    """The same batch ``times`` times: a loader that costs nothing (a plain list would be taken by
    Lightning for a list of loaders)."""

    def __init__(self, batch: Any, times: int) -> None:
        self.batch, self.times = batch, times

    def __len__(self) -> int:
        return self.times

    def __iter__(self):
        return iter([self.batch] * self.times)


def crop_kernels(images, batch_size: int) -> dict[str, float]:
    """Seconds per batch of three ways to crop + resize a batch to 28 px (same random boxes)."""
    import torch
    import torch.nn.functional as F

    from sfrik_plugin.data.batch_geometry import crop_resize, sample_crop_boxes

    g = torch.Generator().manual_seed(0)
    batch = images[:batch_size]
    u = torch.rand(batch_size, 22, generator=g, dtype=torch.float64)
    top, left, h, w = sample_crop_boxes(u[:, :10], u[:, 10:20], u[:, 20:22], 28, 28, (0.2, 1.0))

    def grid() -> torch.Tensor:
        # affine grid of each box in [-1, 1] coordinates, bilinear
        theta = torch.zeros(batch_size, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = w / 28.0, h / 28.0
        theta[:, 0, 2] = (2 * left + w) / 28.0 - 1
        theta[:, 1, 2] = (2 * top + h) / 28.0 - 1
        coords = F.affine_grid(theta, [batch_size, 3, 28, 28], align_corners=False)
        return F.grid_sample(batch.float(), coords, mode="bilinear", align_corners=False)

    def loop() -> torch.Tensor:
        return torch.cat([
            F.interpolate(batch[i : i + 1, :, int(t) : int(t + hh), int(x) : int(x + ww)].float(), size=(28, 28),
                          mode="bicubic", align_corners=False, antialias=True)
            for i, (t, x, hh, ww) in enumerate(zip(top, left, h, w))
        ])  # fmt: skip

    return {
        "matmul, Pillow bicubic (used)": median_seconds(lambda: crop_resize(batch, top, left, h, w, (28, 28)), 30),
        "grid_sample bilinear": median_seconds(grid, 30),
        "per-image interpolate bicubic": median_seconds(loop, 10),
    }


class Table:
    """Rows ``part, path, value, unit, note, load`` (the 1-minute load average when measured), printed as they come."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def record(self, part: str, path: str, value: float, unit: str, note: str = "") -> None:
        load = round(os.getloadavg()[0], 2)
        self.rows.append(
            {"part": part, "path": path, "value": round(value, 3), "unit": unit, "note": note, "load": load}
        )
        print(f"  {part:<44} {path:<5} {value:>10.2f} {unit:<9} load {load:<5} {note}", flush=True)


def input_parts(table: Table, dataset, transform, folder: Path, cfg, batch_size: int):
    """Decode, per-image transforms and collation of solo's path; decode-once, batched augmentation,
    gather and crop kernels of the new one. Returns the new loader and seconds per decoded PNG."""
    import torch
    from PIL import Image
    from torch.utils.data import default_collate

    from sfrik_plugin.data.fast_pretrain import FastPretrainLoader
    from sfrik_plugin.data.tensor_images import fashion_mnist_images, load_image_folder

    files = [p for p, _ in dataset.samples]
    sample = files[:: max(1, len(files) // 500)][:500]
    decode = median_seconds(lambda: [Image.open(p).convert("RGB") for p in sample], 3) / len(sample)
    table.record("PNG decode (open + RGB)", "solo", decode * 1e6, "us/image")
    pil = [Image.open(p).convert("RGB") for p in sample[:200]]
    per_image = median_seconds(lambda: [transform(x) for x in pil], 3) / len(pil)
    table.record("per-image transforms, 2 views", "solo", per_image * 1e6, "us/image")
    items = [dataset[i] for i in range(batch_size)]
    collate = median_seconds(lambda: default_collate(items), 20)
    table.record("collate one batch", "solo", collate * 1e3, "ms/batch")
    table.record("sum: decode + transforms + collate", "solo", 1 / (decode + per_image + collate / batch_size),
                 "images/s", "one worker, nothing else running")  # fmt: skip

    start = time.perf_counter()
    data = load_image_folder(folder)
    table.record("decode the folder once", "new", time.perf_counter() - start, "s", f"{len(data)} PNG images")
    start = time.perf_counter()
    full = fashion_mnist_images("train")
    table.record("load all 60k from the idx files", "new", time.perf_counter() - start, "s", f"{len(full)} images")
    loader = FastPretrainLoader(data, cfg.augmentations, batch_size, seed=0)
    index = torch.randperm(len(data))[:batch_size]
    augment = median_seconds(lambda: loader.batch(index), 20)
    table.record("gather + batched augmentation, 2 views", "new", augment * 1e3, "ms/batch",
                 f"{batch_size / augment:.0f} images/s, {loader.threads or torch.get_num_threads()} thread(s)")  # fmt: skip
    threads = torch.get_num_threads()
    torch.set_num_threads(loader.threads or threads)  # as the loader augments
    try:
        for name, seconds in crop_kernels(data.images, batch_size).items():
            table.record(
                f"crop+resize: {name}", "new", seconds * 1e3, "ms/batch", f"{torch.get_num_threads()} thread(s)"
            )
    finally:
        torch.set_num_threads(threads)
    return loader, decode


def model_parts(table: Table, model, batch, steps: int, rounds: int, batch_size: int) -> None:
    """Forward + loss, backward and LARS step without Lightning, alternated with Lightning fits on the
    same ready batch (so that a change of load hits both)."""
    scheduler, model.scheduler = model.scheduler, "none"
    optimizer = model.configure_optimizers()  # solo-learn's own LARS with the config's arguments
    model.scheduler = scheduler
    parts: dict[str, list[float]] = {"forward + loss": [], "backward": [], "LARS step": []}
    bare: list[float] = []
    fitted: list[float] = []
    for _ in range(rounds):
        model.train()
        # no trainer runs these steps: logging has nowhere to go (and fails after a fit)
        model.log = model.log_dict = lambda *args, **kwargs: None
        for step in range(steps + 1):
            t0 = time.perf_counter()
            loss = model.training_step(batch, 0)
            loss = loss["loss"] if isinstance(loss, dict) else loss
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            if step:  # the first step of a round warms up
                for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2)):
                    parts[key].append(dt)
        del model.log, model.log_dict  # the class's methods again, for Lightning
        bare.append(sum(statistics.median(v[-steps:]) for v in parts.values()))
        fitted.append(batch_size / fit_rate(model, _Repeat(batch, steps), steps, batch_size)[1])
    for key, values in parts.items():
        table.record(f"model: {key}", "both", statistics.median(values) * 1e3, "ms/step")
    whole = statistics.median(bare)
    table.record(
        "model: whole step, no Lightning", "both", whole * 1e3, "ms/step", f"{batch_size / whole:.0f} images/s"
    )
    table.record("Lightning fit on one ready batch", "both", statistics.median(fitted) * 1e3, "ms/step",
                 f"{batch_size / statistics.median(fitted):.0f} images/s")  # fmt: skip
    overhead = statistics.median([f - b for f, b in zip(fitted, bare)])
    table.record("Lightning overhead (paired)", "both", overhead * 1e3, "ms/step")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # the DataLoader worker's library warnings
    warnings.filterwarnings("ignore")
    import logging

    import torch
    from lightning.pytorch import seed_everything
    from solo.methods import METHODS

    from sfrik_plugin.files.records import write_csv, write_json
    from sfrik_plugin.profiler.measure import describe_machine

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if args.threads:
        torch.set_num_threads(args.threads)
    command = "python scripts/profile_pretrain_input.py " + " ".join(sys.argv[1:] if argv is None else argv)
    load_before = os.getloadavg()
    machine = describe_machine("cpu")
    print(f"machine: {machine}\nload average (1, 5, 15 min) at start: {load_before}", flush=True)
    table = Table()

    with tempfile.TemporaryDirectory(prefix="fm-folder-") as tmp:
        folder = args.folder or Path(tmp) / "train"
        if args.folder is None:
            start = time.perf_counter()
            n = write_folder(folder, args.per_class)
            print(f"wrote {n} PNG images to {folder} in {time.perf_counter() - start:.1f} s", flush=True)
        cfg, overrides = compose(args.method, folder, args.batch_size, args.config)
        B = int(cfg.optimizer.batch_size)
        loader_a, dataset, transform = solo_loader(cfg)
        images = len(dataset)
        if images < 2 * B:  # the first batch of a pass is start-up and solo drops a partial last one
            build_parser().error(
                f"{images} training images are fewer than two batches of --batch-size {B} (the first one "
                f"of a pass is not timed); "
                f"raise --per-class (10 classes) or give a larger --folder"
            )
        print(f"{images} images, batch {B}, {len(loader_a)} steps per epoch, method {args.method}\n", flush=True)

        print("input parts", flush=True)
        loader_b, decode = input_parts(table, dataset, transform, folder, cfg, B)

        print("\nloaders alone, alternating (a fresh pass; its first batch includes worker start-up)", flush=True)
        count = min(len(loader_a) - 1, 2 * args.steps)
        for path, loader in (("solo", loader_a), ("new", loader_b)) * 2:
            first, rate = loader_rate(loader, count, B)
            table.record("loader: time to first batch", path, first * 1e3, "ms")
            table.record("loader: throughput", path, rate, "images/s")

        print("\nmodel step on one fixed augmented batch, without and with Lightning (alternating)", flush=True)
        seed_everything(0)
        model = METHODS[cfg.method](cfg)
        model_parts(table, model, next(iter(loader_b)), args.steps, 3, B)

        print(f"\ntrainer.fit, {args.steps} steps per run, alternating solo / new", flush=True)
        rates: dict[str, list[float]] = {"solo": [], "new": []}
        for _ in range(args.rounds):
            for path, loader in (("solo", loader_a), ("new", loader_b)):
                wall, rate = fit_rate(model, loader, args.steps, B)
                rates[path].append(rate)
                table.record("trainer.fit: images/s", path, rate, "images/s", f"wall {wall:.1f} s")

    load_after = os.getloadavg()
    summary: dict[str, Any] = {"paired_speedups": [n / s for s, n in zip(rates["solo"], rates["new"])]}
    summary["speedup_median_of_pairs"] = statistics.median(summary["paired_speedups"])
    print("\nsummary (median over rounds)", flush=True)
    for path in ("solo", "new"):
        rate = statistics.median(rates[path])
        summary[path] = {"images_per_s_median": rate, "images_per_s_runs": rates[path],
                         f"epoch_s_{images}_images": images / rate, "epoch_s_60000_images": 60000 / rate}  # fmt: skip
        print(f"  {path:<5} {rate:8.0f} images/s   epoch of {images}: {images / rate:6.1f} s   "
              f"epoch of 60000: {60000 / rate:7.1f} s", flush=True)  # fmt: skip
    summary["new"]["decode_60000_pngs_once_s_estimate"] = decode * 60000
    print(f"  speed-up, median of the {args.rounds} pairs: {summary['speedup_median_of_pairs']:.2f}x "
          f"(pairs: {', '.join(f'{x:.2f}' for x in summary['paired_speedups'])})")  # fmt: skip
    print(f"  load average at start {load_before}, at end {load_after}")

    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "profile_pretrain_input.csv", table.rows)
    write_json(
        args.out / "profile_pretrain_input.json",
        {
            "command": command,
            "machine": machine,
            "load_average_start": load_before,
            "load_average_end": load_after,
            "settings": {"config": str(args.config), "method": args.method, "images": images, "batch_size": B, "steps": args.steps,
                         "rounds": args.rounds, "overrides": overrides, "num_workers": int(cfg.data.num_workers)},
            "rows": table.rows,
            "summary": summary,
        },
    )  # fmt: skip
    print(f"wrote {args.out}/profile_pretrain_input.{{csv,json}}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

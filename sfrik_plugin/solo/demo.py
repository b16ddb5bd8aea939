"""A few-minute CPU demo on real images: Fashion-MNIST -> SFRIK pretraining -> linear evaluation.

    sfrik-demo                      # or: python -m sfrik_plugin.solo.demo
    sfrik-demo --workdir /tmp/demo --epochs 2 --threads 2

1. writes a class-balanced Fashion-MNIST subset as a solo-learn ``custom`` ImageFolder dataset,
   ``<workdir>/data/{train,val}``, from ``--data DIR`` (idx files or an ImageFolder), else the Debian
   package dataset-fashion-mnist, else a checksum-verified download cached for next time;
2. pretrains SFRIK (ResNet-18, small projector) with the shipped ``custom/sfrik`` config and
   solo-learn's online linear classifier, saving a checkpoint;
3. evaluates the checkpoint offline with the linear launcher (frozen backbone).

Every step is the same code the ``sfrik-pretrain`` / ``sfrik-linear`` launchers run; the
equivalent command lines are printed. wandb stays off; progress is printed once per epoch.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from ..console import exit_on_input_error, get_logger, quiet_upstream_warnings, setup_console
from ..files.records import write_json

log = get_logger(__name__)


def pretrain_overrides(data: dict, ckpt_dir: Path, epochs: int, batch_size: int) -> list[str]:
    """The demo's changes to the shipped ``custom/sfrik`` config (28 px grey images, 2 CPU cores)."""
    crop = 28
    aug = []
    for i in (0, 1):
        aug += [
            f"augmentations.{i}.crop_size={crop}",
            f"augmentations.{i}.rrc.crop_min_scale=0.3",
            f"augmentations.{i}.gaussian_blur.prob=0.0",  # blur destroys 28 px images
        ]
    return [
        "name=sfrik-fashion-mnist-demo",
        f"data.train_path={data['train']}",
        f"data.val_path={data['val']}",
        "data.num_workers=1",
        *aug,
        # small projector, same lambda = mmd_coeff * q / sim_coeff as the paper's (8192, 4000)
        "method_kwargs.proj_hidden_dim=1024",
        "method_kwargs.proj_output_dim=1024",
        "method_kwargs.sim_coeff=500.0",
        f"optimizer.batch_size={batch_size}",
        "optimizer.lr=0.3",
        "optimizer.classifier_lr=1.0",
        # solo-learn's short-schedule LARS (the paper's eta=0.001 suits 100+ epochs, not 3)
        "optimizer.kwargs.eta=0.02",
        "++optimizer.kwargs.clip_lr=True",
        "scheduler.warmup_epochs=0",
        f"max_epochs={epochs}",
        f"checkpoint.dir={ckpt_dir}",
        "auto_resume.enabled=False",
        "accelerator=cpu",
        "devices=1",
        "strategy=auto",
        "precision=32",
        "wandb=off",
        "++enable_progress_bar=True",
        "++num_sanity_val_steps=0",
        "++performance.disable_channel_last=True",
    ]


def linear_overrides(data: dict, ckpt: str, ckpt_dir: Path, epochs: int, batch_size: int) -> list[str]:
    return [
        "name=sfrik-fashion-mnist-demo-linear",
        f"pretrained_feature_extractor={ckpt}",
        f"data.train_path={data['train']}",
        f"data.val_path={data['val']}",
        "data.num_workers=1",
        "data.augmentations.crop_size=28",
        "data.augmentations.crop_min_scale=0.5",
        f"optimizer.batch_size={batch_size}",
        "optimizer.lr=0.1",
        f"scheduler.lr_decay_steps=[{max(1, epochs - 1)}]",
        f"max_epochs={epochs}",
        f"checkpoint.dir={ckpt_dir}",
        "auto_resume.enabled=False",
        "accelerator=cpu",
        "devices=1",
        "strategy=auto",
        "precision=32",
        "wandb=off",
        "++enable_progress_bar=False",
        "++num_sanity_val_steps=0",
        "++performance.disable_channel_last=True",
    ]


def _show(command: str, config: str, overrides: list[str]) -> None:
    quoted = " ".join(f"'{o}'" if "[" in o else o for o in overrides)
    print(f"\n[sfrik-demo] equivalent command:\n  {command} --config-name {config} {quoted}\n", flush=True)


def run_demo(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(
        prog="sfrik-demo", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", default="sfrik-demo", help="where data, checkpoints and results go")
    parser.add_argument(
        "--data",
        default=None,
        help="Fashion-MNIST: a folder with the four idx files or an ImageFolder (train/ and val/ or test/); "
        "default: the Debian package dataset-fashion-mnist, else a checksum-verified cached download",
    )
    parser.add_argument("--train-per-class", type=int, default=100, help="training images per class")
    parser.add_argument("--val-per-class", type=int, default=50, help="validation images per class")
    parser.add_argument("--epochs", type=int, default=2, help="pretraining epochs")
    parser.add_argument("--linear-epochs", type=int, default=3, help="offline linear evaluation epochs")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads for torch")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from ..data.fashion_mnist import prepare_fashion_mnist
    from ..data.fashion_mnist_sources import fashion_mnist_source
    from . import register
    from .config import compose_config
    from .linear import run_linear
    from .pretrain import run_pretrain

    register()
    start = time.time()
    work = Path(args.workdir).resolve()
    source = fashion_mnist_source(args.data)
    log.info("1/3 preparing Fashion-MNIST (%s) in %s", source.describe(), work / "data")
    prepared = prepare_fashion_mnist(
        work / "data", train_per_class=args.train_per_class, val_per_class=args.val_per_class, source=source
    )
    data = {k: str(v) for k, v in prepared.items()}

    log.info("2/3 pretraining SFRIK for %d epoch(s) with online linear evaluation", args.epochs)
    over = pretrain_overrides(data, work / "checkpoints", args.epochs, args.batch_size)
    _show("sfrik-pretrain", "custom/sfrik", over)
    pre = run_pretrain(compose_config("pretrain", "custom/sfrik", over))
    t_pre = time.time() - start

    log.info("3/3 offline linear evaluation of %s", pre["checkpoint"])
    over = linear_overrides(data, pre["checkpoint"], work / "checkpoints", args.linear_epochs, 64)
    _show("sfrik-linear", "custom", over)
    lin = run_linear(compose_config("linear", "custom", over))
    total = time.time() - start

    summary = {
        "checkpoint": pre["checkpoint"],
        "data": source.describe(),
        "pretrain_epochs": args.epochs,
        "train_images": 10 * args.train_per_class,
        "val_images": 10 * args.val_per_class,
        "online_linear_val_acc1": pre["metrics"].get("val_acc1"),
        "offline_linear_val_acc1": lin["metrics"].get("val_acc1"),
        "chance_acc1": 10.0,
        "pretrain_seconds": round(t_pre, 1),
        "total_seconds": round(total, 1),
        "threads": args.threads,
    }
    write_json(work / "demo_results.json", summary)
    print("\n[sfrik-demo] results (top-1 % on the 10-class validation subset; chance = 10 %):")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    print(
        f"[sfrik-demo] linear top-1: {summary['offline_linear_val_acc1']:.1f} % offline, "
        f"{summary['online_linear_val_acc1']:.1f} % online (chance 10 %), in {total:.0f} s",
        flush=True,
    )
    return summary


def main(argv: list[str] | None = None) -> int:
    """Console entry point (``sfrik-demo``): exit status 0 on success, 2 with one line on bad input.

    (A console script hands ``main``'s return value to ``sys.exit``; a dict there would print it
    to stderr and exit with status 1 — so the summary comes from :func:`run_demo`.)
    """
    quiet_upstream_warnings()
    setup_console()
    from ..interrupts import exit_on_interrupt, watching_interrupts

    def describe(error: Any) -> str:  # the demo does not auto-resume: its two minutes start over
        return f"{error.detail or 'stopped before training'}; run sfrik-demo again to start over"

    # Ctrl-C / SIGTERM: one line and exit 130 / 143, never a traceback or status 0
    with exit_on_interrupt("sfrik-demo", describe), watching_interrupts():
        with exit_on_input_error("sfrik-demo"):
            run_demo(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())

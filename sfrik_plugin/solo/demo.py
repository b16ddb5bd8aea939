"""A few-minute CPU demo on real images: Fashion-MNIST -> SFRIK pretraining -> linear evaluation.

    sfrik-demo                      # or: python -m sfrik_plugin.solo.demo
    sfrik-demo --workdir /tmp/demo --epochs 2 --threads 2

1. writes a class-balanced Fashion-MNIST subset as a solo-learn ``custom`` ImageFolder dataset,
   ``<workdir>/data/{train,val}``, from ``--data DIR`` (idx files or an ImageFolder), else the Debian
   package dataset-fashion-mnist, else a checksum-verified download cached for next time;
2. pretrains SFRIK (ResNet-18, small projector) with the shipped ``custom/sfrik`` config and
   solo-learn's online linear classifier, saving a checkpoint;
3. evaluates the checkpoint offline with the linear launcher (frozen backbone);
4. evaluates the untrained backbone (the same architecture and seed, before any step) with the
   same linear protocol on the same images, and prints both and what pretraining added.

Every step is the same code the ``sfrik-pretrain`` / ``sfrik-linear`` launchers run; the
equivalent command lines are printed and kept in ``<workdir>/demo_results.json`` (``commands``).
wandb stays off; progress is printed once per epoch.
"""

from __future__ import annotations

import argparse
import shlex
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


def linear_overrides(
    data: dict, ckpt: str, ckpt_dir: Path, epochs: int, batch_size: int, name: str = "sfrik-fashion-mnist-demo-linear"
) -> list[str]:
    """The demo's changes to the shipped ``custom`` linear config (the same for both backbones)."""
    return [
        f"name={name}",
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


def command_line(command: str, config: str, overrides: list[str]) -> str:
    """The shell command line of a launcher step, quoted so that a shell gives the launcher
    exactly ``--config-name config`` and ``overrides``.

    Example:
        >>> command_line("sfrik-linear", "custom", ["max_epochs=3", "scheduler.lr_decay_steps=[2]"])
        "sfrik-linear --config-name custom max_epochs=3 'scheduler.lr_decay_steps=[2]'"
        >>> shlex.split(_)[3:]
        ['max_epochs=3', 'scheduler.lr_decay_steps=[2]']
    """
    return shlex.join([command, "--config-name", config, *overrides])


def _show(command: str, config: str, overrides: list[str]) -> str:
    line = command_line(command, config, overrides)
    print(f"\n[sfrik-demo] equivalent command:\n  {line}\n", flush=True)
    return line


def save_untrained_backbone(cfg: Any, path: Path) -> str:
    """Writes the backbone pretraining starts from (``cfg``'s architecture, initialised under
    ``cfg.seed`` as :func:`.pretrain.run_pretrain` does, no step taken) as a checkpoint that
    ``pretrained_feature_extractor`` reads; returns its path.

    Example:
        >>> import tempfile, torch
        >>> from omegaconf import OmegaConf
        >>> cfg = OmegaConf.create({"seed": 5, "backbone": {"name": "resnet18"}, "data": {"dataset": "custom"}})
        >>> path = save_untrained_backbone(cfg, Path(tempfile.mkdtemp()) / "untrained.ckpt")
        >>> state = torch.load(path, weights_only=True)["state_dict"]
        >>> len(state) > 100 and all(k.startswith("backbone.") for k in state)
        True
    """
    import torch
    from lightning.pytorch import seed_everything
    from solo.utils.misc import omegaconf_select

    from ..files.atomic import atomic_write
    from .backbones import build_backbone

    seed_everything(int(omegaconf_select(cfg, "seed", 5)))  # solo's parse_cfg default
    backbone = build_backbone(cfg, "sfrik")
    state = {f"backbone.{k}": v.detach().clone() for k, v in backbone.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        torch.save({"state_dict": state}, handle)
    return str(path)


def gain_line(trained: float, untrained: float) -> str:
    """The demo's last line: what pretraining added over the untrained backbone.

    Example:
        >>> gain_line(70.4, 52.2)
        'offline linear top-1 70.4 % after pretraining, 52.2 % untrained: +18.2 points'
    """
    return (
        f"offline linear top-1 {trained:.1f} % after pretraining, {untrained:.1f} % untrained: "
        f"{trained - untrained:+.1f} points"
    )


def _result_line(summary: dict[str, Any]) -> str:
    trained, untrained = summary["offline_linear_val_acc1"], summary["untrained_offline_linear_val_acc1"]
    if trained is None or untrained is None:  # too few images for one batch of the linear evaluation
        return f"no offline linear accuracy (after pretraining: {trained}, untrained: {untrained})"
    online = summary["online_linear_val_acc1"]
    online_text = f"{online:.1f} %" if online is not None else "none"
    return f"{gain_line(trained, untrained)} (online {online_text}, chance 10 %)"


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

    commands: dict[str, str] = {}
    log.info("2/4 pretraining SFRIK for %d epoch(s) with online linear evaluation", args.epochs)
    over = pretrain_overrides(data, work / "checkpoints", args.epochs, args.batch_size)
    commands["pretrain"] = _show("sfrik-pretrain", "custom/sfrik", over)
    pretrain_cfg = compose_config("pretrain", "custom/sfrik", over)
    untrained = save_untrained_backbone(pretrain_cfg, work / "checkpoints" / "untrained-backbone.ckpt")
    pre = run_pretrain(pretrain_cfg)
    t_pre = time.time() - start

    log.info("3/4 offline linear evaluation of %s", pre["checkpoint"])
    over = linear_overrides(data, pre["checkpoint"], work / "checkpoints", args.linear_epochs, 64)
    commands["linear"] = _show("sfrik-linear", "custom", over)
    lin = run_linear(compose_config("linear", "custom", over))

    log.info("4/4 the same linear evaluation of the untrained backbone %s", untrained)
    name = "sfrik-fashion-mnist-demo-linear-untrained"
    over = linear_overrides(data, untrained, work / "checkpoints", args.linear_epochs, 64, name=name)
    commands["linear_untrained"] = _show("sfrik-linear", "custom", over)
    base = run_linear(compose_config("linear", "custom", over))
    total = time.time() - start

    summary = {
        "checkpoint": pre["checkpoint"],
        "data": source.describe(),
        "pretrain_epochs": args.epochs,
        "train_images": 10 * args.train_per_class,
        "val_images": 10 * args.val_per_class,
        "online_linear_val_acc1": pre["metrics"].get("val_acc1"),
        "offline_linear_val_acc1": lin["metrics"].get("val_acc1"),
        "untrained_offline_linear_val_acc1": base["metrics"].get("val_acc1"),
        "pretraining_gain_points": None,
        "chance_acc1": 10.0,
        "pretrain_seconds": round(t_pre, 1),
        "total_seconds": round(total, 1),
        "threads": args.threads,
        # what the demo ran, as launcher command lines (the untrained checkpoint is the demo's:
        # save_untrained_backbone); a shell gives each launcher exactly these overrides
        "commands": commands,
        "untrained_checkpoint": untrained,
    }
    trained_acc, untrained_acc = summary["offline_linear_val_acc1"], summary["untrained_offline_linear_val_acc1"]
    if trained_acc is not None and untrained_acc is not None:
        summary["pretraining_gain_points"] = round(trained_acc - untrained_acc, 2)
    write_json(work / "demo_results.json", summary)
    print("\n[sfrik-demo] results (top-1 % on the 10-class validation subset; chance = 10 %):")
    for key, value in summary.items():
        if key != "commands":
            print(f"  {key}: {value}")
    print(f"[sfrik-demo] {_result_line(summary)}; in {total:.0f} s", flush=True)
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

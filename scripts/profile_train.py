#!/usr/bin/env python
"""Whole training steps of SFRIK, VICReg and Barlow Twins through the solo-learn adapter, per q.

One step = backbone + projector on two views, the method's loss, backward and the optimiser step
(LARS, as in the packaged configs), run by a Lightning Trainer on the methods built from the
adapter's packaged solo-learn configs (``<dataset>/{sfrik,vicreg,barlow}``) with the same
backbone, the same projector widths (hidden x 2, then q) and the same batch of synthetic images.
Every (method, q) runs in a fresh child process; a configuration predicted not to fit in memory
is reported instead of being run. Reports images/s (each image = 2 views), peak memory (CPU:
peak resident set of the process; GPU: max_memory_allocated) and SFRIK's gain over VICReg.

  python scripts/profile_train.py       # CPU: ResNet-18 (CIFAR stem), 16x16 images, batch 64, q in {512, 2048, 8192, 16384}
  # GPU, the paper's ImageNet sizes (ResNet-50, 224 px, 256 images per GPU = 2048 on 8 GPUs,
  # projector 8192-8192-q, mixed precision):
  python scripts/profile_train.py --device cuda --backbone resnet50 --image-size 224 --batch-size 256 \\
      --hidden 8192 --dims 8192 16384 32768 --max-repeats 20 --config-seconds 120 --out bench-results/train-gpu

Needs the maintained solo-learn (see README, "Installing solo-learn").
"""

from __future__ import annotations

import argparse
import os
import sys


def build_parser() -> argparse.ArgumentParser:
    from sfrik_plugin.contenders import TRAIN_METHODS
    from sfrik_plugin.contenders.memory import BACKBONES
    from sfrik_plugin.profiler.options import add_run_control_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dims", nargs="+", default=["512", "2048", "8192", "16384"], help="embedding dims q")
    parser.add_argument("--methods", nargs="+", default=list(TRAIN_METHODS), choices=list(TRAIN_METHODS))
    parser.add_argument(
        "--hidden", type=int, default=2048, help="projector hidden width (2 hidden layers, all methods)"
    )
    parser.add_argument("--batch-size", type=int, default=64, help="images per step (each gives 2 views)")
    parser.add_argument("--image-size", type=int, default=16, help="default 16 px keeps the CPU grid under 10 minutes")
    parser.add_argument("--backbone", default="resnet18", choices=list(BACKBONES))
    parser.add_argument("--precision", default=None, help="Lightning precision (default: 32 on CPU, 16-mixed on GPU)")
    add_run_control_arguments(
        parser, out="bench-results/profile-train", config_seconds=25.0, max_repeats=3, unit="steps"
    )
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")  # the workers' library warnings go nowhere useful
    from sfrik_plugin.console import quiet_upstream_warnings

    quiet_upstream_warnings()  # solo-learn's import-time deprecation noise, here in the parent
    import torch

    from sfrik_plugin import contenders as C
    from sfrik_plugin import profiler as P
    from sfrik_plugin.files.records import write_csv, write_json, write_text_atomic

    try:
        dims = P.parse_int_list(args.dims, minimum=2, name="dimension q")
    except ValueError as error:
        parser.error(str(error))
    for name in ("warmup", "min_repeats", "max_repeats", "rounds", "batch_size", "image_size", "hidden"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_repeats < args.min_repeats:
        parser.error("--max-repeats must be >= --min-repeats")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for but CUDA is not available")
    import sfrik_plugin.solo  # noqa: F401  (fails here, with install instructions, without solo-learn)

    if args.threads is None:
        args.threads = 1 if device.type == "cpu" else 0
    budget, budget_text = C.memory_budget(device, args.memory_budget)
    machine = P.describe_machine(device)
    machine["worker_threads"] = args.threads or machine["torch_threads"]
    command = "python scripts/profile_train.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"machine: {machine}", flush=True)
    print(f"memory budget per configuration: {budget_text}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "workers.log"
    log.write_text("")
    config_dataset = "cifar10" if args.image_size <= 64 else "imagenet"

    context = P.isolation_context(
        ["torch", "lightning.pytorch", "solo.methods", "sfrik_plugin.solo", "sfrik_plugin.profiler"]
    )

    def predict(method, point):
        return C.predict_train_bytes(method, args.batch_size, point[0], args.hidden, args.backbone, args.image_size)

    def spec(method, point):
        spec = dict(
            method=method,
            q=point[0],
            hidden=args.hidden,
            batch_size=args.batch_size,
            image_size=args.image_size,
            backbone=args.backbone,
            device=str(device),
            warmup=args.warmup,
            min_repeats=args.min_repeats,
            max_repeats=args.max_repeats,
            config_seconds=args.config_seconds,
            threads=args.threads or None,
            seed=0,
            config_dataset=config_dataset,
            log=str(log),
            address_space_limit=budget + 1024 * C.MIB if device.type == "cpu" else None,
        )
        if args.precision is not None:
            spec["precision"] = args.precision
        return spec

    cells = P.run_grid(
        [(q,) for q in dims],
        args.methods,
        args.rounds,
        budget=budget,
        predict=predict,
        spec=spec,
        worker=P.train_worker,
        line=lambda cell, result: _line(cell.name, cell.point[0], result, args.batch_size),
        timeout=args.timeout,
        context=context,
        description="training configurations",
    )

    rows = []
    for cell in cells:
        base = {
            "method": cell.name,
            "q": cell.point[0],
            "hidden": args.hidden,
            "batch_size": args.batch_size,
            "image_size": args.image_size,
            "backbone": args.backbone,
            "device": str(device),
            "predicted_mib": round(cell.predicted / C.MIB, 1),
        }
        row = P.result_row(base, cell.result)
        row["images_per_s"] = args.batch_size / row["median_s"] if row.get("median_s") else None
        row["parameters"] = cell.result.get("parameters")
        rows.append(row)
    summary = P.train_summary(rows)
    where = machine["gpu"] or machine["cpu"]
    title = (
        f"{where}, {machine['worker_threads']} thread(s), torch {machine['torch']}; {args.backbone}, "
        f"{args.image_size}px, batch {args.batch_size}, projector {args.hidden}-{args.hidden}-q"
    )
    write_csv(args.out / "profile_train.csv", rows)
    write_json(
        args.out / "profile_train.json",
        {"machine": machine, "command": command, "memory_budget": budget_text, "summary": summary, "rows": rows},
    )
    text = render_markdown(rows, summary, machine, command, budget_text, title)
    write_text_atomic(args.out / "profile_train.md", text + "\n")
    print(text)
    png = P.plot_train(rows, summary, args.out / "profile_train.png", title=title)
    print(
        f"wrote {args.out}/profile_train.{{csv,json,md}}" + (f" and {png}" if png else " (no PNG: matplotlib missing)")
    )
    return 0


def _line(method, q, result, batch_size) -> str:
    from sfrik_plugin.contenders import format_bytes

    if result["status"] != "ok":
        return f"  {method:7s} q={q:<6d} {result['status']}: {result.get('reason', '')}"
    import statistics

    samples = result["samples"]
    median = statistics.median(samples)
    return (
        f"  {method:7s} q={q:<6d} step {median:.3f} s over {len(samples)} ({batch_size / median:.1f} images/s), "
        f"peak {format_bytes(result.get('peak_bytes'))}"
    )


def render_markdown(rows, summary, machine, command, budget_text, title) -> str:
    from sfrik_plugin.profiler.plots import markdown_table

    table = markdown_table(
        [dict(r, state="ok" if r["status"] == "ok" else f"{r['status']}: {r['reason']}") for r in rows],
        [
            ("q", "q", "d"),
            ("method", "method", "s"),
            ("median_s", "step (s)", ".3f"),
            ("spread", "(max−min)/median", ".2f"),
            ("repeats", "steps", "d"),
            ("images_per_s", "images/s", ".1f"),
            ("peak_mib", "peak (MiB)", ".0f"),
            ("state", "status", "s"),
        ],
    )
    gains = markdown_table(
        summary["per_q"],
        [
            ("q", "q", "d"),
            (
                "speedup_percent",
                "SFRIK faster than VICReg",
                lambda v: "VICReg does not run" if v == float("inf") else f"{v:+.1f} %",
            ),
            ("memory_saving_percent", "SFRIK memory saving", lambda v: f"{v:+.1f} %"),
        ],
    )
    crossover = summary["crossover_q"]
    if not summary["per_q"]:
        verdict = "No q with both SFRIK and VICReg results."
    elif crossover is not None:
        verdict = f"SFRIK is faster than VICReg from q = {crossover} on (and at every larger measured q)."
    else:
        verdict = "SFRIK is not faster than VICReg at the largest measured q."
    return "\n\n".join(
        [
            f"{title}. Memory budget: {budget_text}. Memory: {'max_memory_allocated' if machine['gpu'] else 'peak resident set of the worker process'}."
            f"\nCommand: `{command}`",
            table,
            gains,
            verdict,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())

"""``sfrik-benchmark``: SFRIK vs VICReg vs Barlow Twins (+ random init) through solo-learn, with the
paper's protocol (tuning on a validation split carved from the training set, test split once), and
the q-sweep: accuracy per unit of compute as q grows.

    sfrik-benchmark --quick                          # Fashion-MNIST, one seed, no tuning: about 2 minutes
    sfrik-benchmark --out bench-runs/full            # tuned table, 3 seeds
    sfrik-benchmark --sweep --out bench-runs/sweep   # the table + the q-sweep (equal epochs, equal time)
    sfrik-benchmark --config my.yaml --set data.train_root=/data/train --set data.test_root=/data/test

``--set key=value`` changes the benchmark config (OmegaConf dot-list, e.g. ``--set sweep.qs=[256,4096]``
or ``--set projector.q=2048``); ``--override`` appends a solo-learn (hydra) override for every
method. Re-running a command resumes it: finished stages are skipped, an interrupted pretraining
continues from its last checkpoint. ``--report-only`` rebuilds the tables from what has finished.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from ..console import InputError, get_logger, quiet_upstream_warnings, setup_console
from ..interrupts import Interrupted, exit_on_interrupt, watching_interrupts

__all__ = ["RESERVED_OVERRIDES", "build_parser", "check_overrides", "describe_plan", "main"]

log = get_logger(__name__)

#: solo-learn keys the benchmark sets itself from its config (the memory check must know them)
RESERVED_OVERRIDES = {
    "method_kwargs.proj_output_dim": "--set projector.q=...",
    "method_kwargs.proj_hidden_dim": "--set projector.hidden=...",
    "optimizer.batch_size": "--set batch_size=...",
    "max_epochs": "--set epochs=...",
    "max_steps": "the sweep's equal-time budget (--set sweep.equal_time.budget=...)",
    "backbone.name": "--set backbone.name=...",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sfrik-benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", default=None, help="benchmark yaml, or a packaged one by name (default: fashion_mnist)"
    )
    parser.add_argument(
        "--quick", action="store_true", help="merge the config's quick: block (one seed, no tuning, no semi-supervised)"
    )
    parser.add_argument("--sweep", action="store_true", help="also run the q-sweep of the config's sweep: block")
    parser.add_argument("--out", default=None, help="output folder (default: ./sfrik-bench/{quick,full,sweep})")
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: torch's choice)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a benchmark-config value (OmegaConf dot-list), e.g. --set data.train_per_class=100",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="HYDRA_OVERRIDE",
        help="append a solo-learn override for every method, e.g. --override optimizer.lr=0.6",
    )
    parser.add_argument(
        "--memory-budget",
        default=None,
        metavar="BYTES",
        help="memory one run may use, e.g. 16GiB (default: the config's, else min(0.5 x available, 8 GiB) on CPU)",
    )
    parser.add_argument(
        "--report-only", action="store_true", help="only rebuild the tables and plots from the finished runs"
    )
    return parser


def check_overrides(overrides: Sequence[str]) -> None:
    """Refuses ``--override`` of the keys the benchmark derives from its own config."""
    for item in overrides:
        key = item.partition("=")[0].lstrip("+~")
        if key in RESERVED_OVERRIDES:
            raise InputError(
                f"--override {item}: the benchmark sets {key} from its config; use {RESERVED_OVERRIDES[key]}"
            )


def describe_plan(cfg: dict, sweep: bool) -> list[str]:
    """What a command will run, in a few lines (printed before it starts).

    Example:
        >>> describe_plan({"methods": {"sfrik": {"grid": [{}, {}]}}, "seeds": [0, 1, 2], "tune_seeds": [0, 1],
        ...                "epochs": 3, "data": {"train_per_class": 300}}, sweep=False)[0]
        'tuning: sfrik 2 settings x seeds [0, 1] (+ up to 2 extensions per method), 300 images/class, 3 epochs'
    """
    from .plan import method_grid, tune_seeds

    grids = ", ".join(f"{m} {len(method_grid(cfg, m))} settings" for m in cfg["methods"])
    extensions = (cfg.get("tuning") or {}).get("max_extensions", 2)
    lines = [
        f"tuning: {grids} x seeds {tune_seeds(cfg)} (+ up to {extensions} extensions per method), "
        f"{cfg['data']['train_per_class']} images/class, {cfg['epochs']} epochs",
        f"final: random init + the chosen settings x seeds {cfg['seeds']} on the test split",
    ]
    if sweep:
        s = cfg["sweep"]
        lines.append(
            f"sweep: q = {s['qs']} x {len(cfg['methods'])} methods, seed {s.get('seed', cfg['seeds'][0])}, equal epochs; "
            f"then equal time (budget: {(s.get('equal_time') or {}).get('budget')})"
        )
    return lines


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)  # first: --help needs no solo-learn import

    from ..console import exit_on_input_error

    setup_console()
    quiet_upstream_warnings()
    # Ctrl-C (the terminal's whole process group) or SIGTERM: the running worker stops at a safe
    # point, finished stages keep their markers, and one line says so; exit 130 / 143
    with exit_on_interrupt("sfrik-benchmark", _describe_interrupt), watching_interrupts():
        with exit_on_input_error("sfrik-benchmark"):
            _main(args, list(sys.argv[1:] if argv is None else argv))


def _describe_interrupt(error: Interrupted) -> str:
    """Example:
    >>> import signal
    >>> _describe_interrupt(Interrupted(signal.SIGTERM, "during stage train of runs/x"))
    'stopped during stage train of runs/x; finished stages and the last complete checkpoint are kept: run the same command again to resume'
    """
    where = f"stopped {error.detail}" if error.detail else "stopped"
    return f"{where}; finished stages and the last complete checkpoint are kept: run the same command again to resume"


def _main(args: argparse.Namespace, argv: list[str]) -> None:
    from .config import load_config
    from .report import write_report
    from .runner import Benchmark
    from .sweep_report import write_sweep_report

    check_overrides(args.override)
    cfg = load_config(args.config, quick=args.quick, overrides=args.set)
    cfg["common_overrides"] = list(cfg.get("common_overrides") or []) + list(args.override)
    if args.sweep and not cfg.get("sweep"):
        raise InputError(
            f"--sweep: the config {cfg['_source']} has no sweep: block (add one, or --set sweep.qs=[256,1024])"
        )
    if args.threads is not None:
        if args.threads < 1:
            raise InputError(f"--threads {args.threads}: use a positive number of threads")
        os.environ["SFRIK_BENCH_THREADS"] = str(args.threads)
    kind = "quick" if args.quick else ("sweep" if args.sweep else "full")
    out = Path(args.out or Path("sfrik-bench") / kind).resolve()
    out.mkdir(parents=True, exist_ok=True)
    command = ["sfrik-benchmark", *argv]
    bench = Benchmark(cfg, out, memory_budget=args.memory_budget)
    print(f"[{time.strftime('%H:%M:%S')}] {shlex.join(command)}  ->  {out}", flush=True)
    print(f"  memory budget per run: {bench.budget[1]}", flush=True)
    for line in describe_plan(cfg, args.sweep):
        print(f"  {line}", flush=True)
    start = time.time()
    if args.report_only:
        reports = {"main": write_report(out, cfg)}
        if args.sweep:
            reports["sweep"] = write_sweep_report(out, cfg, budget_rule=bench.budget[1])
    else:
        reports = bench.run(sweep=args.sweep, command=command)
    for report in reports.values():
        print()
        print(report["markdown"])
        print(f"\nwritten: {', '.join(report['files'])}")
    print(f"\n[{time.strftime('%H:%M:%S')}] done in {time.time() - start:.0f} s: {shlex.join(command)}", flush=True)


if __name__ == "__main__":
    main()

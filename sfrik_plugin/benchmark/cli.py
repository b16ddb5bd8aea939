"""``sfrik-benchmark``: SFRIK vs VICReg vs Barlow Twins (+ random init) through solo-learn, with the
paper's protocol (grid search on a validation split carved from the training set, test split once).

    sfrik-benchmark --quick                      # Fashion-MNIST, under 20 minutes on a 2-core CPU
    sfrik-benchmark --out /work/bench-runs/full  # the default benchmark (about two hours)
    sfrik-benchmark --config my.yaml --out DIR   # your own ImageFolder data / grids / backbone

Re-running a command resumes it: finished runs are skipped, an interrupted pretraining continues
from its last checkpoint. ``--report-only`` rebuilds the table from whatever has finished.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Sequence
from pathlib import Path


def apply_set(cfg: dict, item: str) -> None:
    """``a.b.c=value`` (value parsed as yaml) into the nested config dict."""
    import yaml

    key, sep, value = item.partition("=")
    if not sep or not key:
        raise SystemExit(f"--set wants KEY=VALUE, got {item!r}")
    node = cfg
    parts = key.split(".")
    for part in parts[:-1]:
        node = node.setdefault(part, {})
    node[parts[-1]] = yaml.safe_load(value)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="sfrik-benchmark", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", default=None, help="benchmark yaml (default: the packaged fashion_mnist.yaml)")
    parser.add_argument(
        "--quick", action="store_true", help="merge the config's quick: block (smaller, fewer seeds, no grid)"
    )
    parser.add_argument(
        "--out", default=None, help="output folder (default: ./sfrik-bench/quick or ./sfrik-bench/full)"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker (default: torch's choice)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change a benchmark-config value (dotted key, yaml value), e.g. --set data.train_root=/data/train",
    )
    parser.add_argument(
        "--override",
        action="append",
        default=[],
        metavar="HYDRA_OVERRIDE",
        help="append a solo-learn override shared by every method, e.g. --override method_kwargs.proj_output_dim=4096",
    )
    parser.add_argument("--report-only", action="store_true", help="only aggregate the finished runs into the table")
    args = parser.parse_args(argv)

    import signal

    from .runner import Benchmark, load_config

    def _stop(signum, frame):  # `kill PID` stops the current worker too; re-running resumes
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, _stop)

    cfg = load_config(args.config, quick=args.quick)
    for item in args.set:
        apply_set(cfg, item)
    cfg["common_overrides"] = list(cfg.get("common_overrides", [])) + list(args.override)
    out = Path(args.out or Path("sfrik-bench") / ("quick" if args.quick else "full")).resolve()
    out.mkdir(parents=True, exist_ok=True)
    if args.threads:
        os.environ["SFRIK_BENCH_THREADS"] = str(args.threads)

    def log(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)

    bench = Benchmark(cfg, out, log=log)
    if args.report_only:
        from .report import report_from_folder

        report = report_from_folder(out, cfg)
    else:
        log(f"benchmark {'(quick) ' if args.quick else ''}-> {out}")
        report = bench.run()
    print()
    print(report["markdown"])
    print(f"\nwritten: {report['files']}")


if __name__ == "__main__":
    main()

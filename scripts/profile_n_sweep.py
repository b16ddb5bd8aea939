#!/usr/bin/env python
"""The cost in N: SFRIK (gram, blocked, sharded per rank) against LeJEPA's SIGReg (M slices).

Forward + backward of each loss over a grid of batch sizes N at each q, every configuration in a
fresh child process (the loss profiler's worker: exact tensor-allocation peak replayed from
torch's profiler, a crash is a row). SFRIK's sharded path runs in --world-size gloo processes
(one group for all its configurations), each rank timing its own rows; it runs where the Gram
path was measured. A configuration predicted not to fit the memory budget (the contenders'
memory models × 1.5) is reported as "does not fit (predicted …)"; one predicted (from the same
method at smaller N) to need more than --max-call-seconds per call as skipped.

Writes CSV, JSON (machine, load, command, rows, crossovers), a markdown table and a PNG with
time and memory against N (log–log) and the crossover N* where SIGReg becomes cheaper than
SFRIK's Gram path: predicted from the flop model (sfrik_plugin.profiler.n_sweep) and measured
(interpolated between the sweep's sizes).

  python scripts/profile_n_sweep.py                         # CPU default grid: N = 64…2048, q = 1024, 8192 (~7 min here)
  python scripts/profile_n_sweep.py --sizes 64:8192 --dims 1024 8192 --slices 256 1024 4096 \\
      --device cuda --max-call-seconds 0 --out bench-results/n_sweep-gpu
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

DEFAULT_SIZES = ["64:2048"]
DEFAULT_DIMS = ["1024", "8192"]
DEFAULT_SLICES = ["256", "1024", "4096"]


def build_parser() -> argparse.ArgumentParser:
    from sfrik_plugin.profiler.n_sweep import SFRIK_PATHS
    from sfrik_plugin.profiler.options import add_run_control_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=DEFAULT_SIZES, help="global batch sizes N (64:8192 doubles)")
    parser.add_argument("--dims", nargs="+", default=DEFAULT_DIMS, help="embedding dimensions q")
    parser.add_argument("--slices", nargs="+", default=DEFAULT_SLICES, help="SIGReg's slice counts M")
    parser.add_argument("--paths", nargs="+", default=list(SFRIK_PATHS), choices=list(SFRIK_PATHS))
    parser.add_argument("--block-size", type=int, default=512, help="rows per block of SFRIK's blocked path")
    parser.add_argument("--world-size", type=int, default=2, help="gloo processes of the sharded path")
    parser.add_argument(
        "--max-call-seconds",
        type=float,
        default=8.0,
        help="skip a configuration predicted (from smaller N) to need more per call; 0 = never skip",
    )
    add_run_control_arguments(parser, out="bench-results/n_sweep", config_seconds=3.0, max_repeats=10)
    parser.add_argument("--plot", type=str, default=None, help="PNG path (default: <out>/n_sweep.png)")
    parser.add_argument(
        "--from-json",
        type=Path,
        nargs="+",
        default=None,
        help="redo the tables, crossovers and plot from saved n_sweep.json files (several: their rows together)",
    )
    return parser


def _extrapolated(done: dict, method: str, q: int, n: int, exponent: float) -> float | None:
    from sfrik_plugin.profiler.analysis import extrapolate_seconds

    return extrapolate_seconds(done.get((method, q), {}), n, min_slope=exponent)


def run_single_process(cells, args, device, budget, log, done) -> list[dict]:
    from sfrik_plugin.contenders import MIB
    from sfrik_plugin.profiler.analysis import result_row
    from sfrik_plugin.profiler.isolation import isolation_context, run_isolated
    from sfrik_plugin.profiler.workers import loss_worker

    context = isolation_context(["torch", "sfrik_plugin.contenders", "lightly.loss"])
    rows = []
    for cell in cells:
        base = cell.base_row()
        exponent = 1.0 if cell.slices is not None else 2.0
        guess = _extrapolated(done, cell.method, cell.q, cell.n, exponent)
        if not cell.fits:
            rows.append({**base, "status": "skipped", "reason": cell.verdict})
        elif args.max_call_seconds and guess is not None and guess > args.max_call_seconds:
            reason = f"skipped: predicted {guess:.0f} s per call > --max-call-seconds {args.max_call_seconds:g}"
            rows.append({**base, "status": "skipped", "reason": reason})
        else:
            spec = dict(
                contender=cell.contender,
                n=cell.n,
                q=cell.q,
                device=str(device),
                warmup=args.warmup,
                min_repeats=args.min_repeats,
                max_repeats=args.max_repeats,
                config_seconds=args.config_seconds,
                threads=args.threads or None,
                block_size=cell.block_size,
                address_space_limit=budget + 512 * MIB if device.type == "cpu" else None,
                log=str(log),
            )
            row = result_row(base, run_isolated(loss_worker, spec, timeout=args.timeout, context=context))
            rows.append(row)
            if row["status"] == "ok":
                done.setdefault((cell.method, cell.q), {})[cell.n] = row["median_s"]
        r = rows[-1]
        shown = f"{r['median_s']:.4f} s, {r['peak_mib']:.1f} MiB" if r["status"] == "ok" else r["reason"]
        print(f"  {cell.method:14s} N={cell.n:5d} q={cell.q:5d}: {shown}", flush=True)
    return rows


def run_sharded(cells, args, done, log) -> tuple[list[dict], list[dict]]:
    from sfrik_plugin.profiler.analysis import result_row
    from sfrik_plugin.profiler.rank_profile import profile_sharded

    rows, runnable = [], []
    for cell in cells:
        if not cell.fits:
            rows.append({**cell.base_row(), "status": "skipped", "reason": cell.verdict})
        elif cell.n not in done.get(("sfrik-gram", cell.q), {}):
            reason = "skipped: runs where the Gram path was measured"
            rows.append({**cell.base_row(), "status": "skipped", "reason": reason})
        else:
            runnable.append(cell)
    per_rank = []
    if runnable:
        repeats = max(args.min_repeats, min(args.max_repeats, 3))
        print(f"sharded: {len(runnable)} configurations in {args.world_size} gloo processes ...", flush=True)
        results = profile_sharded(
            [(c.n, c.q) for c in runnable], args.world_size, repeats, args.threads or 1, args.timeout, log=str(log)
        )
        for cell in runnable:
            ranks = [r for r in results if r["N"] == cell.n and r["q"] == cell.q]
            per_rank += [{**result_row(cell.base_row(), r), "rank": r["rank"], "loss": r.get("loss")} for r in ranks]
            ok = [r for r in per_rank[-len(ranks) :] if r["status"] == "ok"]
            if len(ok) == len(ranks):  # the step takes as long as its slowest rank
                slowest = max(ok, key=lambda r: r["median_s"])
                rows.append({**slowest, "peak_mib": max(r["peak_mib"] for r in ok), "rank": "max over ranks"})
            else:
                rows.append({**cell.base_row(), "status": ranks[0]["status"], "reason": ranks[0].get("reason", "")})
            r = rows[-1]
            shown = f"{r['median_s']:.4f} s, {r['peak_mib']:.1f} MiB" if r["status"] == "ok" else r["reason"]
            print(f"  sfrik-sharded  N={cell.n:5d} q={cell.q:5d}: {shown} (per rank)", flush=True)
    return rows, per_rank


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import torch

    from sfrik_plugin import contenders as C
    from sfrik_plugin.profiler.measure import describe_machine
    from sfrik_plugin.profiler.n_sweep import sweep_cells
    from sfrik_plugin.profiler.options import parse_int_list

    try:
        sizes = parse_int_list(args.sizes, minimum=2, name="batch size")
        dims = parse_int_list(args.dims, minimum=2, name="dimension")
        slices = parse_int_list(args.slices, minimum=1, name="slice count")
    except ValueError as error:
        parser.error(str(error))
    if args.world_size < 2:
        parser.error(f"--world-size must be >= 2, got {args.world_size}")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if args.threads is None:
        args.threads = 1 if device.type == "cpu" else 0
    budget, budget_text = C.memory_budget(device, args.memory_budget)
    machine = describe_machine(device)
    machine["worker_threads"] = args.threads or machine["torch_threads"]
    machine["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    given = sys.argv[1:] if argv is None else argv
    command = "python scripts/profile_n_sweep.py " + " ".join(shlex.quote(a) for a in given)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.from_json:
        saved = [json.loads(path.read_text()) for path in args.from_json]
        machine = dict(saved[0]["machine"])
        machine["load_average_start"] = saved[0]["machine"]["load_average_start"]
        machine["load_average_end"] = saved[-1]["machine"]["load_average_end"]
        return report(
            [row for part in saved for row in part["rows"]],
            [row for part in saved for row in part["sharded_per_rank"]],
            machine,
            " && ".join(part["command"] for part in saved),
            saved[0]["memory_budget"],
            args,
        )
    log = args.out / "workers.log"
    log.write_text("")
    print(f"memory budget per configuration: {budget_text}; load {machine['load_average_start']}", flush=True)

    cells = sweep_cells(sizes, dims, slices, budget, args.paths, args.block_size, args.world_size)
    done: dict = {}
    single = [c for c in cells if c.method != "sfrik-sharded"]
    rows = run_single_process(single, args, device, budget, log, done)
    per_rank: list[dict] = []
    if "sharded" in args.paths:
        if device.type != "cpu":
            print("sharded: gloo processes on CPU only; on GPU use the per-rank flop model", flush=True)
        else:
            sharded_rows, per_rank = run_sharded([c for c in cells if c.method == "sfrik-sharded"], args, done, log)
            rows += sharded_rows
    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    return report(rows, per_rank, machine, command, budget_text, args)


def report(rows, per_rank, machine, command, budget_text, args) -> int:
    from sfrik_plugin.files.records import write_csv, write_json, write_text_atomic
    from sfrik_plugin.profiler.n_sweep import crossovers
    from sfrik_plugin.profiler.n_sweep_report import crossover_table, n_sweep_table, plot_n_sweep

    found = crossovers(rows)
    write_csv(args.out / "n_sweep.csv", rows)
    write_json(
        args.out / "n_sweep.json",
        {
            "machine": machine,
            "command": command,
            "memory_budget": budget_text,
            "rows": rows,
            "sharded_per_rank": per_rank,
            "crossovers": found,
        },
    )
    where = machine["gpu"] or machine["cpu"]
    text = "\n\n".join(
        [
            f"Machine: {where}; {machine['cpu_count']} CPUs, {machine['worker_threads']} torch thread(s) per worker, "
            f"torch {machine['torch']}; load average {machine['load_average_start']} -> "
            f"{machine['load_average_end']}. Memory budget: {budget_text}.\nCommand: `{command}`",
            "Seconds per forward + backward (median):\n\n" + n_sweep_table(rows, "median_s", "{:.3g}", args.world_size),
            "Peak MiB above the inputs:\n\n" + n_sweep_table(rows, "peak_mib", "{:.1f}", args.world_size),
            "Crossover (SIGReg cheaper than SFRIK's Gram path above N*):\n\n" + crossover_table(found),
        ]
    )
    write_text_atomic(args.out / "n_sweep.md", text + "\n")
    title = f"{where}, {machine['worker_threads']} thread(s), torch {machine['torch']}"
    plot = plot_n_sweep(rows, found, args.plot or args.out / "n_sweep.png", title, args.world_size)
    print(text)
    print(f"wrote {args.out}/n_sweep.csv, .json, .md" + (f" and {plot}" if plot else " (no matplotlib: no plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

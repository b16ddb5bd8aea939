#!/usr/bin/env python
"""Time and peak memory of SFRIK's loss against solo-learn's VICReg and Barlow Twins losses.

Forward + backward of each contender over a grid of batch sizes N and embedding dimensions q,
every configuration in a fresh child process (clean memory peak; a crash is a reported row):

  sfrik-gram     SFRIK, one Gram matrix per view            O(N² q) time, O(N²) extra memory
  sfrik-blocked  SFRIK, row blocks recomputed in backward    O(N² q), O(block · N)
  sfrik-feature  SFRIK with L = 2 in feature space           O(N q²), O(q²)
  vicreg         solo.losses.vicreg.vicreg_loss_func         O(N q²), O(q²)
  barlow         solo.losses.barlow.barlow_loss_func         O(N q²), O(q²)

(the registry of sfrik_plugin.contenders: a baseline registered there is one more choice here).

Warm-up, then repeats (as many as fit in --config-seconds, 2 to 25), median and spread; one
torch thread per worker on CPU by default (--threads).
CPU: wall time, the profiler's tensor-allocation peak (measured on the warm-up call) and the peak
resident memory above the inputs; GPU: CUDA events and max_memory_allocated.
A configuration whose predicted memory exceeds the budget is reported as not fitting instead of
being run; one predicted (from smaller q) to take longer than --max-call-seconds per call is
reported as skipped. Writes CSV, JSON (with the machine), a markdown table and a PNG.

  python scripts/profile_loss.py                                   # CPU default grid, < 10 min
  python scripts/profile_loss.py --sizes 256 --dims 1k:32k --max-repeats 50
  # GPU, the paper's sizes (global batch 2048, q up to 32768):
  python scripts/profile_loss.py --device cuda --sizes 256 2048 --dims 1k:32k --config-seconds 60 \\
      --max-call-seconds 0 --out bench-results/loss-gpu
"""

from __future__ import annotations

import argparse
import os
import sys
import warnings

DEFAULT_SIZES = ["256"]
DEFAULT_DIMS = ["1024:32768"]


def build_parser() -> argparse.ArgumentParser:
    from sfrik_plugin.contenders import CONTENDERS
    from sfrik_plugin.profiler.options import add_run_control_arguments

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--sizes", nargs="+", default=DEFAULT_SIZES, help="batch sizes N (e.g. 256 2048, 2^11, 256:2048)"
    )
    parser.add_argument(
        "--dims", nargs="+", default=DEFAULT_DIMS, help="embedding dims q (default 1024:32768 = 1024..32768 doubling)"
    )
    parser.add_argument("--contenders", nargs="+", default=list(CONTENDERS), choices=list(CONTENDERS))
    parser.add_argument("--dtype", default="float32", help="dtype of the embeddings (float32, bf16, fp16)")
    parser.add_argument("--repeats", type=int, default=None, help="exactly this many measured calls (sets min = max)")
    parser.add_argument(
        "--max-call-seconds",
        type=float,
        default=40.0,
        help="skip a configuration predicted (from smaller q) to need more per call; 0 = never skip",
    )
    add_run_control_arguments(parser, out="bench-results/profile-loss", config_seconds=10.0, max_repeats=25)
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
        sizes = P.parse_int_list(args.sizes, minimum=2, name="batch size N")
        dims = P.parse_int_list(args.dims, minimum=2, name="dimension q")
        dtype = P.parse_dtype(args.dtype)
    except ValueError as error:
        parser.error(str(error))
    if args.repeats is not None:
        args.min_repeats = args.max_repeats = args.repeats
    for name in ("warmup", "min_repeats", "max_repeats", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.max_repeats < args.min_repeats:
        parser.error("--max-repeats must be >= --min-repeats")
    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda asked for but CUDA is not available")
    needs_solo = [c for c in args.contenders if C.CONTENDERS[c].needs_solo]
    if needs_solo:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import solo.losses  # noqa: F401
        except Exception as error:  # solo-learn missing: profile SFRIK alone, say so
            print(f"solo-learn is not importable ({error}); skipping {needs_solo}", file=sys.stderr)
            args.contenders = [c for c in args.contenders if c not in needs_solo]
            needs_solo = []
    if args.threads is None:
        args.threads = 1 if device.type == "cpu" else 0
    budget, budget_text = C.memory_budget(device, args.memory_budget)
    machine = P.describe_machine(device)
    machine["worker_threads"] = args.threads or machine["torch_threads"]
    command = "python scripts/profile_loss.py " + " ".join(sys.argv[1:] if argv is None else argv)
    print(f"machine: {machine}", flush=True)
    print(f"memory budget per configuration: {budget_text}", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    log = args.out / "workers.log"
    log.write_text("")

    context = P.isolation_context(["torch", "sfrik_plugin.profiler", *(["solo.losses"] if needs_solo else [])])
    dtype_name = str(dtype).removeprefix("torch.")

    def predict(contender, point):
        return C.predict_loss_total_bytes(contender, point[0], point[1], dtype)

    def too_slow(contender, point, medians):
        n, q = point
        measured = {key[2]: median for key, median in medians.items() if key[:2] == (contender, n)}
        guess = P.extrapolate_seconds(measured, q, C.CONTENDERS[contender].q_exponent)
        if args.max_call_seconds > 0 and guess is not None and guess > args.max_call_seconds:
            return f"predicted {guess:.0f} s per call > --max-call-seconds {args.max_call_seconds:g}"
        return None

    def spec(contender, point):
        return dict(
            contender=contender,
            n=point[0],
            q=point[1],
            dtype=dtype_name,
            device=str(device),
            warmup=args.warmup,
            min_repeats=args.min_repeats,
            max_repeats=args.max_repeats,
            config_seconds=args.config_seconds,
            threads=args.threads or None,
            seed=0,
            address_space_limit=budget + 512 * C.MIB if device.type == "cpu" else None,
            log=str(log),
        )

    cells = P.run_grid(
        [(n, q) for n in sizes for q in dims],
        args.contenders,
        args.rounds,
        budget=budget,
        predict=predict,
        spec=spec,
        worker=P.loss_worker,
        skip=too_slow,
        line=_line,
        timeout=args.timeout,
        context=context,
        description="loss configurations",
    )

    rows = []
    for cell in cells:
        n, q = cell.point
        base = {
            "contender": cell.name,
            "N": n,
            "q": q,
            "device": str(device),
            "dtype": dtype_name,
            "predicted_mib": round(cell.predicted / C.MIB, 1),
        }
        rows.append(P.result_row(base, cell.result))
    summary = P.loss_summary(rows)
    title = f"{machine['cpu'] if device.type == 'cpu' else machine['gpu']}, {machine['worker_threads']} thread(s), torch {machine['torch']}"
    write_csv(args.out / "profile_loss.csv", rows)
    write_json(
        args.out / "profile_loss.json",
        {
            "machine": machine,
            "command": command,
            "memory_budget": budget_text,
            "memory_budget_bytes": budget,
            "contenders": {c: C.CONTENDERS[c].description for c in args.contenders},
            "summary": summary,
            "rows": rows,
        },
    )
    text = render_markdown(rows, summary, machine, command, budget_text)
    write_text_atomic(args.out / "profile_loss.md", text + "\n")
    print(text)
    png = P.plot_loss(rows, summary, args.out / "profile_loss.png", title=title)
    print(
        f"wrote {args.out}/profile_loss.{{csv,json,md}}" + (f" and {png}" if png else " (no PNG: matplotlib missing)")
    )
    return 0


def _line(cell, result) -> str:
    from sfrik_plugin.contenders import format_bytes

    contender, (n, q), predicted = cell.name, cell.point, cell.predicted
    if result["status"] != "ok":
        return f"  {contender:14s} N={n:<5d} q={q:<6d} {result['status']}: {result.get('reason', '')}"
    import statistics

    samples = result["samples"]
    return (
        f"  {contender:14s} N={n:<5d} q={q:<6d} median {statistics.median(samples):.4f} s over {len(samples)}, "
        f"peak {format_bytes(result.get('peak_bytes'))} (predicted {format_bytes(predicted)} with inputs)"
    )


def render_markdown(rows, summary, machine, command, budget_text) -> str:
    from sfrik_plugin.contenders import CONTENDERS
    from sfrik_plugin.profiler.plots import markdown_table, style_and_label

    def status(row):
        return "ok" if row["status"] == "ok" else f"{row['status']}: {row['reason']}"

    table = markdown_table(
        [dict(r, label=style_and_label(r["contender"], CONTENDERS)[1], state=status(r)) for r in rows],
        [
            ("N", "N", "d"),
            ("q", "q", "d"),
            ("label", "loss", "s"),
            ("median_s", "median (s)", ".4f"),
            ("spread", "(max−min)/median", ".2f"),
            ("repeats", "repeats", "d"),
            ("peak_mib", "peak (MiB)", ".1f"),
            ("rss_peak_mib", "RSS peak (MiB)", ".1f"),
            ("process_peak_rss_mib", "process RSS (MiB)", ".0f"),
            ("predicted_mib", "predicted (MiB)", ".1f"),
            ("state", "status", "s"),
        ],
    )
    slope_rows = []
    for contender, per_n in summary["slopes"].items():
        for n, fit in per_n.items():
            slope_rows.append(
                {
                    "loss": style_and_label(contender, CONTENDERS)[1],
                    "N": int(n),
                    "time": fit.get("time", {}).get("slope"),
                    "r2": fit.get("time", {}).get("r2"),
                    "memory": fit.get("memory", {}).get("slope"),
                    "range": f"{fit['q_range'][0]}–{fit['q_range'][1]}",
                }
            )
    slopes = markdown_table(
        slope_rows,
        [
            ("loss", "loss", "s"),
            ("N", "N", "d"),
            ("range", "q range", "s"),
            ("time", "time slope", ".2f"),
            ("r2", "R²", ".3f"),
            ("memory", "memory slope", ".2f"),
        ],
    )
    ratio_rows = [
        dict(e, state=e["baseline_status"] if e["baseline_status"] != "ok" else "ok") for e in summary["ratios"]
    ]
    ratios = markdown_table(
        ratio_rows,
        [
            ("N", "N", "d"),
            ("q", "q", "d"),
            ("time_ratio", "VICReg / SFRIK time", ".1f"),
            ("memory_ratio", "VICReg / SFRIK memory", ".1f"),
            ("state", "VICReg", "s"),
        ],
    )
    where = machine["gpu"] or machine["cpu"]
    return "\n\n".join(
        [
            f"Machine: {where}; {machine['cpu_count']} CPUs, {machine['worker_threads']} torch thread(s) per worker, "
            f"torch {machine['torch']}, {machine['device']}. Memory budget: {budget_text}.\nCommand: `{command}`",
            table,
            "Fitted log–log slopes (time ∝ q^slope):\n\n" + slopes,
            "SFRIK (gram) against solo-learn's VICReg:\n\n" + ratios,
        ]
    )


if __name__ == "__main__":
    sys.exit(main())

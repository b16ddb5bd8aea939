#!/usr/bin/env python
"""Forward + backward time and peak memory of the SFRIK loss against the work it cannot avoid.

For each (N, q), side by side and interleaved repeat by repeat (so machine noise hits every
contender alike):

* ``sfrik``     sfrik_loss_func(z1, z2).loss.backward()  (this package, the fused path)
* ``formula``   sfrik_loss_func(z1, z2, method="reference"): the official code's formula as a
                plain autograd composition (normalise, MSE, Gram, φ = Σ b_ℓ P_ℓ, mean)
* ``bare``      the unavoidable products alone: per view one Gram product Z Zᵀ (forward) and
                one N × N by N × q product (backward)
* ``baseline``  with ``--baseline DIR``: sfrik_loss_func of another source tree of this project
                (e.g. ``git worktree add /tmp/before <commit>``), for before/after claims measured
                side by side in one process

Prints a table, writes CSV + JSON (with the machine) and a PNG plot.

    python scripts/bench_loss.py                         # N in {256, 2048}, q in {2048..32768}
    python scripts/bench_loss.py --sizes 256 --dims 8192 --repeats 7
    python scripts/bench_loss.py --sizes 256 --dims 8192 --repeats 21 --baseline /tmp/before
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from sfrik_plugin import sfrik_loss_func
from sfrik_plugin.files.records import write_csv, write_json
from sfrik_plugin.profiler.measure import machine_info, peak_memory_bytes, summarize, time_call


def load_baseline(root: Path) -> Any:
    """``sfrik_loss_func`` of another source tree of this project, imported under its own name."""
    init = root / "sfrik_plugin" / "__init__.py"
    if not init.is_file():
        raise SystemExit(f"--baseline {root}: no sfrik_plugin/__init__.py there (a checkout of this project?)")
    spec = importlib.util.spec_from_file_location(
        "sfrik_plugin_baseline", init, submodule_search_locations=[str(init.parent)]
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module.sfrik_loss_func


def contenders(n, q, device, baseline=None):
    generator = torch.Generator(device="cpu").manual_seed(0)
    z1 = torch.randn(n, q, generator=generator).to(device).requires_grad_()
    z2 = torch.randn(n, q, generator=generator).to(device).requires_grad_()
    square = torch.randn(n, n, generator=generator).to(device)

    def sfrik():
        z1.grad = z2.grad = None
        sfrik_loss_func(z1, z2).loss.backward()

    def formula():
        z1.grad = z2.grad = None
        sfrik_loss_func(z1, z2, method="reference").loss.backward()

    def before():
        z1.grad = z2.grad = None
        baseline(z1, z2).loss.backward()

    def bare():
        with torch.no_grad():
            for z in (z1, z2):
                z @ z.T
                square @ z

    calls = {"bare": bare, "sfrik": sfrik, "formula": formula}
    if baseline is not None:
        calls["baseline"] = before
    return calls


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 2048], help="batch sizes N")
    parser.add_argument("--dims", type=int, nargs="+", default=[2048, 8192, 16384, 32768], help="embedding dims q")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="torch CPU threads (0: torch's default; 1 is steadier on a loaded machine)",
    )
    parser.add_argument("--baseline", type=Path, default=None, help="another source tree of this project to time too")
    parser.add_argument("--out", type=Path, default=Path("bench-results/loss"))
    args = parser.parse_args(argv)
    for name, values in (("--sizes", args.sizes), ("--dims", args.dims)):
        if any(v < 2 for v in values):
            parser.error(f"{name} values must be >= 2, got {values}")
    if args.repeats < 1:
        parser.error(f"--repeats must be >= 1, got {args.repeats}")

    if args.threads < 0:
        parser.error(f"--threads must be >= 0, got {args.threads}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    baseline = load_baseline(args.baseline) if args.baseline is not None else None
    machine = machine_info(device)
    print("machine:", json.dumps(machine))
    print("command:", " ".join([Path(sys.argv[0]).name] + (argv if argv is not None else sys.argv[1:])))
    rows = []
    grid = [(n, q) for n in args.sizes for q in args.dims]
    for n, q in tqdm(grid, desc="configurations", file=sys.stderr):
        calls = contenders(n, q, device, baseline)
        for call in calls.values():
            for _ in range(args.warmup):
                call()
        samples = {name: [] for name in calls}
        for _ in tqdm(range(args.repeats), desc=f"N={n} q={q}", leave=False, file=sys.stderr):
            for name, call in calls.items():  # interleaved: noise hits all alike
                samples[name].append(time_call(call, device))
        memory = {name: peak_memory_bytes(call, device) for name, call in calls.items()}
        bare = summarize(samples["bare"])["median"]
        bare_min = summarize(samples["bare"])["min"]
        for name in calls:
            stats = summarize(samples[name])
            rows.append(
                {
                    "N": n,
                    "q": q,
                    "contender": name,
                    "median_s": stats["median"],
                    "min_s": stats["min"],
                    "max_s": stats["max"],
                    "repeats": stats["repeats"],
                    "ratio_to_bare": stats["median"] / bare,
                    # the fastest repeats are the least disturbed by other load on a shared machine
                    "min_ratio_to_bare": stats["min"] / bare_min,
                    "peak_mib": memory[name] / 2**20,
                }
            )
        del calls

    write_csv(args.out / "bench_loss.csv", rows)
    write_json(
        args.out / "bench_loss.json", {"machine": machine, "argv": sys.argv[1:] if argv is None else argv, "rows": rows}
    )

    table = [
        "| N | q | bare (s) | sfrik (s) | sfrik / bare (median; min) | formula (s) | formula / bare (median; min) | sfrik MiB | formula MiB |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n, q in grid:
        by = {r["contender"]: r for r in rows if r["N"] == n and r["q"] == q}
        table.append(
            f"| {n} | {q} | {by['bare']['median_s']:.4f} | {by['sfrik']['median_s']:.4f} | "
            f"{by['sfrik']['ratio_to_bare']:.2f}; {by['sfrik']['min_ratio_to_bare']:.2f} | {by['formula']['median_s']:.4f} | "
            f"{by['formula']['ratio_to_bare']:.2f}; {by['formula']['min_ratio_to_bare']:.2f} | "
            f"{by['sfrik']['peak_mib']:.0f} | {by['formula']['peak_mib']:.0f} |"
        )
    if baseline is not None:
        table += ["", "| N | q | sfrik / baseline (median; min) | sfrik MiB | baseline MiB |", "|---|---|---|---|---|"]
        for n, q in grid:
            by = {r["contender"]: r for r in rows if r["N"] == n and r["q"] == q}
            ratio = by["sfrik"]["median_s"] / by["baseline"]["median_s"]
            fastest = by["sfrik"]["min_s"] / by["baseline"]["min_s"]
            table.append(
                f"| {n} | {q} | {ratio:.3f}; {fastest:.3f} | {by['sfrik']['peak_mib']:.0f} | {by['baseline']['peak_mib']:.0f} |"
            )
    text = "\n".join(table)
    (args.out / "bench_loss.md").write_text(text + "\n")
    print(text)
    _plot(rows, grid, args.out / "bench_loss.png")
    print(f"wrote {args.out}/bench_loss.{{csv,json,md,png}}")


def _plot(rows, grid, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install 'sfrik-plugin[dev]')")
        return
    sizes = sorted({n for n, _ in grid})
    figure, axes = plt.subplots(1, len(sizes), figsize=(5 * len(sizes), 4), squeeze=False)
    for axis, n in zip(axes[0], sizes):
        for name, style in (("bare", "k--"), ("sfrik", "o-"), ("formula", "s-"), ("baseline", "^:")):
            points = sorted((r["q"], r["median_s"]) for r in rows if r["N"] == n and r["contender"] == name)
            if not points:
                continue
            axis.plot([p[0] for p in points], [p[1] for p in points], style, label=name)
        axis.set(xscale="log", yscale="log", xlabel="q", ylabel="forward + backward (s)", title=f"N = {n}")
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)


if __name__ == "__main__":
    main()

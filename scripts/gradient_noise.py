#!/usr/bin/env python
"""Gradient noise, measured: SIGReg's gradient over slice draws against SFRIK's deterministic one.

At one fixed batch (default N = 256, q = 1024, two views) and for each slice count M, the
gradient of SIGReg (the regulariser alone, w.r.t. both views' embeddings) is computed for
--draws slice draws; the figure is its relative deviation, std over draws / norm of the mean
gradient (sfrik_plugin.profiler.noise). Two batches: ``anisotropic`` (scales 0.1 to 3, far from
SIGReg's isotropic Gaussian target) and ``gaussian`` (the target itself). The expected gradient
(the denominator, the same for every M) is pooled over all draws of all M. The LeJEPA loss
(λ = 0.05: 5 % SIGReg, 95 % the deterministic invariance) is given too.
SFRIK's MMD gradient is computed repeatedly: its deviation is zero.

Time: forward + backward of the LeJEPA loss with M slices, and of SFRIK's loss (Gram path), at
the same N and q, each in a fresh process (the loss profiler's worker; --no-timing skips it).

  python scripts/gradient_noise.py                     # N = 256, q = 1024, M = 16 … 4096 (< 10 min here)
  python scripts/gradient_noise.py --slices 16:16384 --draws 64 --device cuda
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

THRESHOLDS = (0.10, 0.01)


def build_parser() -> argparse.ArgumentParser:
    from sfrik_plugin.profiler.noise import BATCH_KINDS

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="batch size N")
    parser.add_argument("--q", type=int, default=1024, help="embedding dimension q")
    parser.add_argument("--slices", nargs="+", default=["16:4096"], help="slice counts M (16:4096 doubles)")
    parser.add_argument("--draws", type=int, default=24, help="slice draws per M")
    parser.add_argument("--batches", nargs="+", default=list(BATCH_KINDS), choices=list(BATCH_KINDS))
    parser.add_argument("--seed", type=int, default=0, help="seed of the batch")
    parser.add_argument("--no-timing", action="store_true", help="skip the timing of each M and of SFRIK")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (this process and the timing workers)")
    parser.add_argument("--config-seconds", type=float, default=3.0, help="timed calls per M: as many as fit")
    parser.add_argument("--max-repeats", type=int, default=10)
    parser.add_argument("--out", type=Path, default=Path("bench-results/gradient_noise"))
    parser.add_argument("--plot", type=str, default=None, help="PNG path (default: <out>/gradient_noise.png)")
    return parser


def measure_noise(args, slices) -> tuple[list[dict], dict]:
    """ρ per M and batch. The expected gradient (the denominator) is the same for every M: it is
    pooled over all draws of all M, each weighted by its slice count (the mean over every slice
    drawn), far less noisy than one M's draws; each M's own bias-corrected estimate is kept too."""
    import torch

    from sfrik_plugin.contenders.sigreg import LEJEPA_DEFAULTS, build_sigreg, lejepa_loss
    from sfrik_plugin.profiler.noise import noise_batch, relative_gradient_deviation, sfrik_gradients, sigreg_gradients

    lam = float(LEJEPA_DEFAULTS["lambda"])
    batches = {kind: noise_batch(args.n, args.q, kind, args.seed) for kind in args.batches}
    rows: list[dict] = [{"M": m, "draws": args.draws} for m in slices]
    for kind, (z1, z2) in batches.items():
        pooled, weight = None, 0
        for row in rows:
            m = row["M"]
            grads = sigreg_gradients(z1, z2, m, args.draws, first_step=m * args.draws)
            stats = relative_gradient_deviation(grads)
            row[f"sigreg_{kind}_std"] = stats["std"]
            row[f"sigreg_{kind}_own_draws"] = stats["relative"]
            total = m * grads.double().sum(0)
            pooled = total if pooled is None else pooled + total
            weight += m * args.draws
            print(f"  {kind} M={m:6d}: std {stats['std']:.4g}, own-draws relative {stats['relative']:.4f}", flush=True)
        assert pooled is not None
        mean = pooled / weight
        views = [v.detach().clone().requires_grad_() for v in (z1, z2)]
        invariance = lejepa_loss(views, build_sigreg(num_slices=1), lambda_=0.0).invariance
        fixed = torch.cat([g.reshape(-1) for g in torch.autograd.grad(invariance, views)]).double()
        lejepa_norm = float((lam * mean + (1 - lam) * fixed).norm())
        for row in rows:
            row[f"sigreg_{kind}"] = row[f"sigreg_{kind}_std"] / float(mean.norm())
            row[f"sigreg_{kind}_mean_norm"] = float(mean.norm())
            row[f"lejepa_{kind}"] = lam * row[f"sigreg_{kind}_std"] / lejepa_norm
    for row in rows:
        shown = ", ".join(f"{k} {row[f'sigreg_{k}']:.4f}" for k in batches)
        print(f"  M={row['M']:6d}: relative deviation (pooled mean) {shown}", flush=True)
    sfrik = {
        kind: relative_gradient_deviation(sfrik_gradients(z1, z2, repeats=3))["relative"]
        for kind, (z1, z2) in batches.items()
    }
    return rows, sfrik


def measure_time(args, slices) -> dict:
    from sfrik_plugin.contenders.sigreg import sigreg_contender
    from sfrik_plugin.profiler.analysis import result_row
    from sfrik_plugin.profiler.isolation import isolation_context, run_isolated
    from sfrik_plugin.profiler.workers import loss_worker

    context = isolation_context(["torch", "sfrik_plugin.contenders", "lightly.loss"])
    timed = {}
    for name, contender in [("sfrik", "sfrik-gram")] + [(m, sigreg_contender(m)) for m in slices]:
        spec = dict(
            contender=contender,
            n=args.n,
            q=args.q,
            threads=args.threads,
            max_repeats=args.max_repeats,
            config_seconds=args.config_seconds,
            device=args.device,
            log=str(args.out / "workers.log"),
        )
        row = result_row({}, run_isolated(loss_worker, spec, timeout=600, context=context))
        timed[name] = row
        shown = f"{row['median_s']:.4f} s, {row['peak_mib']:.1f} MiB" if row["status"] == "ok" else row["reason"]
        print(f"  time {'SFRIK gram' if name == 'sfrik' else f'LeJEPA M={name}'}: {shown}", flush=True)
    return timed


def thresholds(rows, timed, kind) -> list[dict]:
    from sfrik_plugin.profiler.noise import slices_below

    found = []
    slices = [r["M"] for r in rows]
    for threshold in THRESHOLDS:
        below = slices_below(slices, [r[f"sigreg_{kind}"] for r in rows], threshold)
        entry = {"batch": kind, "threshold": threshold, **below}
        m = below["measured"]
        if m is not None and timed.get(m, {}).get("median_s"):
            entry["time_s"], entry["time_how"] = timed[m]["median_s"], f"measured at M = {m}"
        else:
            largest = max((k for k in timed if k != "sfrik" and timed[k].get("median_s")), default=None)
            if largest is not None:  # O(N q M): linear in M from the largest measured M
                entry["time_s"] = timed[largest]["median_s"] * below["fitted"] / largest
                entry["time_how"] = f"extrapolated linearly in M from M = {largest}"
        found.append(entry)
    return found


def markdown(rows, sfrik, timed, found, kinds) -> str:
    sfrik_time = (timed.get("sfrik") or {}).get("median_s")
    header = ["M"] + [f"SIGReg, {k} batch" for k in kinds]
    header += ["LeJEPA loss λ=0.05, anisotropic"] if "anisotropic" in kinds else []
    header += ["LeJEPA loss s", "÷ SFRIK time", "peak MiB"] if timed else []
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]

    def timing(row):
        if not row or not row.get("median_s"):
            return ["–", "–", "–"]
        ratio = f"{row['median_s'] / sfrik_time:.2f}" if sfrik_time else "–"
        return [f"{row['median_s']:.4f}", ratio, f"{row['peak_mib']:.1f}"]

    for r in rows:
        cells = [str(r["M"])] + [f"{100 * r[f'sigreg_{k}']:.2f} %" for k in kinds]
        cells += [f"{100 * r['lejepa_anisotropic']:.2f} %"] if "anisotropic" in kinds else []
        cells += timing(timed.get(r["M"])) if timed else []
        lines.append("| " + " | ".join(cells) + " |")
    cells = ["SFRIK (deterministic)"] + [f"{100 * sfrik[k]:.2f} %" for k in kinds]
    cells += [f"{100 * sfrik['anisotropic']:.2f} %"] if "anisotropic" in kinds else []
    cells += timing(timed.get("sfrik")) if timed else []
    lines.append("| " + " | ".join(cells) + " |")
    lines += [
        "",
        "| batch | deviation below | first measured M | fitted M (c/√M) | LeJEPA loss s at that M |",
        "|---|---|---|---|---|",
    ]
    for f in found:
        time = f"{f['time_s']:.3g} ({f['time_how']})" if f.get("time_s") else "–"
        lines.append(
            f"| {f['batch']} | {100 * f['threshold']:g} % | {f['measured'] or 'beyond the grid'} | {f['fitted']:.0f} (c = {f['c']:.3g}) | {time} |"
        )
    return "\n".join(lines)


def plot(rows, timed, kinds, path, title) -> Path | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    from sfrik_plugin.profiler.noise import slices_below

    slices = [r["M"] for r in rows]
    figure, (noise_axis, time_axis) = plt.subplots(1, 2, figsize=(12, 4.6))
    for kind, colour in zip(kinds, ("tab:green", "tab:olive")):
        values = [r[f"sigreg_{kind}"] for r in rows]
        c = slices_below(slices, values, 0.1)["c"]
        noise_axis.plot(slices, values, "X-", color=colour, label=f"SIGReg, {kind} batch")
        noise_axis.plot(slices, [c / m**0.5 for m in slices], ":", color=colour, label=f"{c:.2f} / sqrt(M)")
    if "anisotropic" in kinds:
        noise_axis.plot(
            slices, [r["lejepa_anisotropic"] for r in rows], "o--", color="gray", label="LeJEPA loss λ=0.05"
        )
    for level in THRESHOLDS:
        noise_axis.axhline(level, color="tab:red", linewidth=0.8, linestyle="--")
    noise_axis.set_title("relative gradient deviation over slice draws (SFRIK: 0)", fontsize=9)
    noise_axis.set_ylabel("std over draws / norm of the mean gradient")
    ms = [m for m in slices if timed.get(m, {}).get("median_s")]
    if ms:
        time_axis.plot(ms, [timed[m]["median_s"] for m in ms], "X-", color="tab:green", label="LeJEPA loss (SIGReg M)")
    if timed.get("sfrik", {}).get("median_s"):
        time_axis.axhline(timed["sfrik"]["median_s"], color="tab:blue", label="SFRIK (Gram path)")
    time_axis.set_title("forward + backward, same N and q", fontsize=9)
    time_axis.set_ylabel("seconds")
    for axis in (noise_axis, time_axis):
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("slices M")
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=7)
    figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    import torch

    from sfrik_plugin.files.records import write_csv, write_json, write_text_atomic
    from sfrik_plugin.profiler.measure import describe_machine
    from sfrik_plugin.profiler.options import parse_int_list

    try:
        slices = parse_int_list(args.slices, minimum=1, name="slice count")
    except ValueError as error:
        parser.error(str(error))
    if args.draws < 2:
        parser.error(f"--draws must be >= 2, got {args.draws}")
    args.device = "cpu"
    if args.threads:
        torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = describe_machine("cpu")
    machine["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    command = "python scripts/gradient_noise.py " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv)
    )
    print(f"N = {args.n}, q = {args.q}, {args.draws} draws per M; load {machine['load_average_start']}", flush=True)
    rows, sfrik = measure_noise(args, slices)
    timed = {} if args.no_timing else measure_time(args, slices)
    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    kind = "anisotropic" if "anisotropic" in args.batches else args.batches[0]
    found = [f for k in args.batches for f in thresholds(rows, timed, k)]
    for row in rows:
        timing = timed.get(row["M"]) or {}
        row.update(lejepa_s=timing.get("median_s"), lejepa_peak_mib=timing.get("peak_mib"))
    write_csv(args.out / "gradient_noise.csv", rows)
    write_json(
        args.out / "gradient_noise.json",
        {"machine": machine, "command": command, "rows": rows, "sfrik": sfrik, "timing": timed, "thresholds": found},
    )
    where = f"{machine['cpu']}, {args.threads} thread(s), torch {machine['torch']}"
    text = (
        f"Machine: {where}; load average {machine['load_average_start']} -> {machine['load_average_end']}.\n"
        f"Command: `{command}`\n\n" + markdown(rows, sfrik, timed, found, args.batches)
    )
    write_text_atomic(args.out / "gradient_noise.md", text + "\n")
    title = f"N = {args.n}, q = {args.q}, {args.draws} draws per M, {kind} batch first; {where}"
    image = plot(rows, timed, args.batches, args.plot or args.out / "gradient_noise.png", title)
    print(text)
    print(f"wrote {args.out}/gradient_noise.csv, .json, .md" + (f" and {image}" if image else " (no plot)"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

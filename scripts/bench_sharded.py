#!/usr/bin/env python
"""Per-rank cost of the SFRIK regulariser under DDP: sharded rows vs the replicated N × N Gram.

Starts W gloo processes on this machine (CPU); each holds N/W rows of a global batch of N
embeddings of dimension q and runs forward + backward of the SFRIK loss with
``distributed="sharded"`` and ``distributed="replicated"``, interleaved repeat by repeat.
Reports per-rank median time, the profiler's peak of allocated bytes, and checks that both modes
give the same loss. Writes CSV + JSON (with the machine) next to a printed table.

    python scripts/bench_sharded.py --world-size 2 --batch 2048 --dim 8192
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sfrik_plugin import sfrik_loss_func
from sfrik_plugin.files.records import write_csv, write_json
from sfrik_plugin.profiler.gloo_ranks import gloo_rank
from sfrik_plugin.profiler.measure import machine_info, peak_memory_bytes, summarize, time_call

MODES = ("sharded", "replicated")


def _worker(rank, world_size, batch, dim, repeats, threads, init_file, out_file):
    with gloo_rank(rank, world_size, init_file):
        torch.set_num_threads(threads)
        local = batch // world_size
        generator = torch.Generator().manual_seed(rank)
        z1 = torch.randn(local, dim, generator=generator).requires_grad_()
        z2 = torch.randn(local, dim, generator=generator).requires_grad_()
        losses = {}

        def step(mode):
            z1.grad = z2.grad = None
            loss = sfrik_loss_func(z1, z2, distributed=mode, method="gram").loss
            loss.backward()
            losses[mode] = float(loss.detach())

        # one bound call per mode: a lambda in the loop would see only the loop's last mode
        steps = {mode: functools.partial(step, mode) for mode in MODES}
        for mode in MODES:  # warm-up
            steps[mode]()
        samples: dict[str, list[float]] = {mode: [] for mode in MODES}
        for _ in range(repeats):
            for mode in MODES:
                dist.barrier()
                samples[mode].append(time_call(steps[mode]))
        memory = {}
        for mode in MODES:
            dist.barrier()
            memory[mode] = peak_memory_bytes(steps[mode])
        result = {
            mode: {**summarize(samples[mode]), "peak_bytes": memory[mode], "loss": losses[mode]} for mode in MODES
        }
        with open(f"{out_file}.{rank}", "w") as handle:
            json.dump(result, handle)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world-size", type=int, default=2)
    parser.add_argument("--batch", type=int, default=2048, help="global batch N")
    parser.add_argument("--dim", type=int, default=8192, help="embedding dimension q")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument("--out", type=Path, default=Path("bench-results/sharded"))
    args = parser.parse_args(argv)
    if args.world_size < 2:
        parser.error(f"--world-size must be >= 2, got {args.world_size}")
    if args.batch % args.world_size:
        parser.error(f"--batch ({args.batch}) must be divisible by --world-size ({args.world_size})")

    machine = machine_info()
    machine["torch_threads"] = args.threads
    print("machine:", json.dumps(machine))
    with tempfile.TemporaryDirectory() as scratch:
        out_file = os.path.join(scratch, "result")
        print(
            f"running {args.world_size} gloo processes: N={args.batch}, q={args.dim}, {args.repeats} repeats ...",
            flush=True,
        )
        mp.start_processes(
            _worker,
            args=(
                args.world_size,
                args.batch,
                args.dim,
                args.repeats,
                args.threads,
                os.path.join(scratch, "init"),
                out_file,
            ),
            nprocs=args.world_size,
            join=True,
            start_method="spawn",
        )
        per_rank = [json.load(open(f"{out_file}.{rank}")) for rank in range(args.world_size)]

    rows = []
    for rank, result in enumerate(per_rank):
        for mode in MODES:
            rows.append(
                {
                    "rank": rank,
                    "mode": mode,
                    "world_size": args.world_size,
                    "N": args.batch,
                    "q": args.dim,
                    "median_s": result[mode]["median"],
                    "min_s": result[mode]["min"],
                    "max_s": result[mode]["max"],
                    "peak_mib": result[mode]["peak_bytes"] / 2**20,
                    "loss": result[mode]["loss"],
                }
            )
    write_csv(args.out / "bench_sharded.csv", rows)
    write_json(
        args.out / "bench_sharded.json",
        {"machine": machine, "argv": sys.argv[1:] if argv is None else argv, "rows": rows},
    )

    print("| rank | mode | median s (min–max) | peak MiB | loss |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['rank']} | {r['mode']} | {r['median_s']:.3f} ({r['min_s']:.3f}–{r['max_s']:.3f}) | {r['peak_mib']:.0f} | {r['loss']:.6f} |"
        )
    sharded = [r for r in rows if r["mode"] == "sharded"]
    replicated = [r for r in rows if r["mode"] == "replicated"]
    time_ratio = sum(r["median_s"] for r in replicated) / sum(r["median_s"] for r in sharded)
    memory_ratio = sum(r["peak_mib"] for r in replicated) / sum(r["peak_mib"] for r in sharded)
    agree = max(abs(a["loss"] - b["loss"]) / abs(b["loss"]) for a, b in zip(sharded, replicated))
    print(
        f"replicated / sharded per rank: time {time_ratio:.2f}x, peak memory {memory_ratio:.2f}x; "
        f"losses agree to {agree:.1e} relative"
    )


if __name__ == "__main__":
    main()

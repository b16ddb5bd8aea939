#!/usr/bin/env python
"""SFRIK's kNN gap (issue 18, item 7): why SFRIK trails VICReg on weighted kNN while tying on linear.

Pretrains, with the benchmark's own machinery (``Benchmark.execute`` of its ``Run`` folders: the
same data, recipe, worker and validation evaluation as ``sfrik-benchmark``), SFRIK at every
``--sim-coeffs`` value and VICReg at ``--vicreg`` (its tuned setting), plus the random-init
baseline, at the reference q, for each ``--seeds``; then, on the validation split (probe/kNN
reference set: the train split), for each run:

* the benchmark's figures (``eval_val.json``): linear probe and kNN (k = 20, T = 0.07) top-1;
* kNN on other views of the same features: centred (train mean removed before the L2
  normalisation), standardised (the linear probe's preprocessing), with T = 1 (almost a plain
  majority vote), and on the projector's output (the space the loss shapes; rebuilt from the
  run's solo-learn checkpoint);
* neighbourhoods: the fraction of each validation point's k cosine-nearest training points with
  its label (raw and centred features), the mean cosine similarity of two random images, and the
  norm of the mean of the normalised features (1: all in one direction, 0: centred);
* SFRIK's MMD to uniform at the end of pretraining (``train_sfrik_mmd`` of the run's ``pretrain.json``);
* Wang & Isola's alignment E||u - u'||^2 (u, u' two augmented views of one image, L2-normalised
  backbone features; the augmentation is the probe's random resized crop, scale [0.2, 1], and
  flip) and uniformity log E exp(-2 ||u - v||^2) over pairs of distinct images; also the
  alignment of same-class pairs, and the backbone channels that are zero on every training image.

  python scripts/knn_gap.py --out bench-runs/knn-gap        # seed 0: 13.5 min on 2 cores at load 5
  python scripts/knn_gap.py --out bench-runs/knn-gap-seed1 --seeds 1 --sim-coeffs 4000 64000 --vicreg
  python scripts/knn_gap.py --out /tmp/tiny --set epochs=1 --sim-coeffs 4000    # any benchmark --set

Writes ``knn_gap.csv`` / ``knn_gap.json`` (rows, machine, load, command) and ``knn_gap.md``
(the markdown table, also printed). Re-running resumes: finished pretrainings are reused.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

COLUMNS = [
    ("method", "method"),
    ("setting", "setting"),
    ("seed", "seed"),
    ("linear", "linear"),
    ("knn", "kNN"),
    ("knn_centred", "kNN centred"),
    ("knn_standardised", "kNN std."),
    ("knn_T1", "kNN T=1"),
    ("knn_projector", "kNN proj."),
    ("purity", "k-NN purity"),
    ("purity_centred", "purity centred"),
    ("mean_cos", "mean cos"),
    ("mean_norm", "|mean u|"),
    ("align", "align"),
    ("align_class", "align class"),
    ("uniform", "uniform"),
    ("dead_dims", "dead ch."),
    ("final_mmd", "final MMD"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("bench-results/knn_gap"))
    parser.add_argument("--config", default=None, help="benchmark config (default: fashion_mnist)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], help="benchmark config key=value")
    parser.add_argument("--sim-coeffs", nargs="+", type=float, default=[4000.0, 16000.0, 64000.0, 256000.0])
    parser.add_argument("--vicreg", nargs="*", type=float, default=[25.0], help="VICReg sim_loss_weight values")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--k", type=int, default=None, help="kNN k (default: the config's)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads of this process")
    return parser


def planned_runs(args, cfg) -> list[Any]:
    from sfrik_plugin.benchmark.plan import RANDOM_INIT, Run

    runs = []
    for seed in args.seeds:
        runs.append(Run(args.out, RANDOM_INIT, {}, seed))
        runs += [Run(args.out, "sfrik", {"method_kwargs.sim_coeff": float(v)}, seed) for v in args.sim_coeffs]
        if "vicreg" in cfg["methods"]:
            runs += [Run(args.out, "vicreg", {"method_kwargs.sim_loss_weight": float(v)}, seed) for v in args.vicreg]
    return runs


def rebuild_projector(run_dir: Path):
    """The run's trained projector (Linear/BatchNorm1d/ReLU stack) from its latest solo-learn checkpoint."""
    import torch
    import torch.nn as nn

    from sfrik_plugin.benchmark.stages import latest_checkpoint
    from sfrik_plugin.files.checkpoints import load_checkpoint

    path = latest_checkpoint(run_dir)
    if path is None:
        return None
    state = load_checkpoint(path, trust_pickle=True)
    state = state.get("state_dict", state)
    sub = {k[len("projector.") :]: v for k, v in state.items() if k.startswith("projector.")}
    indices = sorted({int(k.split(".")[0]) for k in sub})
    layers: list[nn.Module] = []
    for i in indices:
        weight = sub[f"{i}.weight"]
        if weight.dim() == 2:
            layers.append(nn.Linear(weight.shape[1], weight.shape[0], bias=f"{i}.bias" in sub))
        else:
            layers += [nn.BatchNorm1d(weight.shape[0]), nn.ReLU()]
    model = nn.Sequential(*layers)
    # the ReLUs sit at the index after each BatchNorm, so the state dict's indices line up
    model.load_state_dict(sub)
    return model.eval().to(torch.float32)


def normalised(x):
    import torch.nn.functional as F

    return F.normalize(x.double(), dim=1)


def purity(train_x, train_y, eval_x, eval_y, k: int) -> float:
    """Mean fraction of the k cosine-nearest training points of each evaluation point that share its label."""
    sims = normalised(eval_x) @ normalised(train_x).T
    idx = sims.topk(k, dim=1).indices
    return float((train_y[idx] == eval_y[:, None]).double().mean())


def alignment_uniformity(u, v, labels) -> dict[str, float]:
    """Wang & Isola (2020) on L2-normalised features: alignment of positive pairs (u[i], v[i]), of
    same-class pairs of u, and uniformity log E exp(-2 |u_i - u_j|^2) over i != j; plus the mean
    cosine of two distinct images and the norm of the mean of u."""
    import torch

    u, v = normalised(u), normalised(v)
    n = u.shape[0]
    sq = (2 - 2 * (u @ u.T)).clamp_min(0)
    off = ~torch.eye(n, dtype=torch.bool)
    same = (labels[:, None] == labels[None, :]) & off
    return {
        "align": float(((u - v) ** 2).sum(1).mean()),
        "align_class": float(sq[same].mean()),
        "uniform": float(torch.log(torch.exp(-2 * sq[off]).mean())),
        "mean_cos": float((u @ u.T)[off].mean()),
        "mean_norm": float(u.mean(0).norm()),
    }


def analyse(run, spec: dict[str, Any], k: int, T: float) -> dict[str, Any]:
    import torch

    from sfrik_plugin.benchmark import evaluate as ev
    from sfrik_plugin.benchmark.backbones import make_backbone
    from sfrik_plugin.files.checkpoints import load_checkpoint
    from sfrik_plugin.files.records import read_json

    crop = int(spec["crop_size"])
    backbone = make_backbone(spec["backbone"]["name"], spec["backbone"].get("kwargs"))
    backbone.load_state_dict(load_checkpoint(run.dir / "backbone.pt"))
    backbone.eval()
    train_ds = ev.image_folder(spec["data"]["train"], ev.eval_transform(crop))
    val_ds = ev.image_folder(spec["data"]["val"], ev.eval_transform(crop))
    xtr, ytr = ev.extract_features(backbone, train_ds, device="cpu")
    xva, yva = ev.extract_features(backbone, val_ds, device="cpu")
    views = []
    for view_seed in (1, 2):  # two augmented views of every validation image, reproducible
        torch.manual_seed(1000 * run.seed + view_seed)
        augmented = ev.image_folder(spec["data"]["val"], ev.train_transform(crop, min_scale=0.2))
        views.append(ev.extract_features(backbone, augmented, device="cpu")[0])

    def knn(a, b, temperature=T):
        return ev.knn_classify(a, ytr, b, yva, k=k, T=temperature)["acc1"]

    mean, std = xtr.mean(0), xtr.std(0).clamp_min(1e-6)
    val = read_json(run.dir / "eval_val.json") or {}
    trained = (read_json(run.dir / "pretrain.json") or {}).get("metrics") or {}
    row: dict[str, Any] = {
        "method": run.method,
        "setting": run.setting_label,
        "seed": run.seed,
        "linear": (val.get("linear") or {}).get("acc1"),
        "knn_benchmark": (val.get("knn") or {}).get("acc1"),
        "knn": knn(xtr, xva),
        "knn_centred": knn(xtr - mean, xva - mean),
        "knn_standardised": knn((xtr - mean) / std, (xva - mean) / std),
        "knn_T1": knn(xtr, xva, 1.0),
        "purity": purity(xtr, ytr, xva, yva, k),
        "purity_centred": purity(xtr - mean, ytr, xva - mean, yva, k),
        "feature_dim": int(xtr.shape[1]),
        "dead_dims": int((xtr.abs().max(0).values == 0).sum()),
        # SFRIK's MMD to the uniform distribution at the end of pretraining (the run's pretrain.json)
        "final_mmd": trained.get("train_sfrik_mmd"),
    }
    row["align"] = alignment_uniformity(views[0], views[1], yva)["align"]
    stats = alignment_uniformity(xva, xva, yva)
    row.update({key: stats[key] for key in ("align_class", "uniform", "mean_cos", "mean_norm")})
    projector = rebuild_projector(run.dir) if run.method != "random_init" else None
    if projector is not None:
        with torch.no_grad():
            ptr, pva = projector(xtr), projector(xva)
        row["knn_projector"] = knn(ptr, pva)
        row["purity_projector"] = purity(ptr, ytr, pva, yva, k)
    return row


def fmt(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| " + " | ".join(title for _, title in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in rows:
        cells = [fmt(row.get(key)) for key, _ in COLUMNS]
        for i, (key, _) in enumerate(COLUMNS):
            if key.startswith(("purity", "mean_cos", "mean_norm")) and isinstance(row.get(key), float):
                cells[i] = f"{row[key]:.3f}"
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from sfrik_plugin.benchmark.config import load_config
    from sfrik_plugin.benchmark.runner import Benchmark
    from sfrik_plugin.files.records import write_csv, write_json
    from sfrik_plugin.profiler.measure import describe_machine

    if args.threads:
        torch.set_num_threads(args.threads)
    seeds = "[" + ",".join(str(s) for s in args.seeds) + "]"
    cfg = load_config(args.config, overrides=[f"seeds={seeds}", f"tune_seeds={seeds}", *args.overrides])
    knn_cfg = (cfg.get("evaluation") or {}).get("knn") or {}
    k, T = int(args.k or knn_cfg.get("k", 20)), float(knn_cfg.get("T", 0.07))
    machine = describe_machine("cpu")
    machine["load_average_start"] = [round(x, 2) for x in os.getloadavg()]
    command = " ".join(shlex.quote(a) for a in [sys.executable, *sys.argv])
    bench = Benchmark(cfg, args.out)
    bench.prepare_data()
    start = time.time()
    rows = []
    for run in planned_runs(args, cfg):
        t0 = time.time()
        bench.execute(run, ("train",))
        trained = time.time() - t0
        rows.append(analyse(run, bench.spec(run), k, T))
        rows[-1]["pretrain_and_eval_s"] = round(trained, 1)
        print(
            f"{run}: linear {fmt(rows[-1]['linear'])}, kNN {fmt(rows[-1]['knn'])} ({time.time() - t0:.0f} s)",
            flush=True,
        )
    machine["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.mkdir(parents=True, exist_ok=True)
    write_csv(args.out / "knn_gap.csv", rows)
    meta = {"machine": machine, "command": command, "k": k, "T": T, "seconds": round(time.time() - start, 1)}
    write_json(args.out / "knn_gap.json", {**meta, "rows": rows})
    table = markdown(rows)
    where = f"{machine.get('cpu')}, torch {machine.get('torch')}"
    text = (
        f"Validation split, k = {k}, T = {T}. Machine: {where}; load average "
        f"{machine['load_average_start']} -> {machine['load_average_end']}; {meta['seconds']} s.\n"
        f"Command: `{command}`\n\n{table}"
    )
    (args.out / "knn_gap.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

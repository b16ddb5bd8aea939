"""Aggregation of finished runs into the results table (markdown + CSV) and a plot.

:func:`aggregate` is pure (records in, rows out): per method, the mean and the sample standard
deviation (ddof = 1; 0 for a single seed) over seeds of every metric, the mean pretraining wall time
and the largest peak memory. :func:`write_report` reads the run folders, writes ``results.md``,
``results.csv``, ``tuning.csv`` and ``results.png`` (if matplotlib is installed).
"""

from __future__ import annotations

import csv
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .runner import RANDOM_INIT, Run, final_runs, read_json, setting_name, tuning_runs

__all__ = [
    "METRICS",
    "mean_std",
    "record_of",
    "aggregate",
    "format_markdown",
    "write_csv",
    "plot",
    "write_report",
    "report_from_folder",
]

#: (record key, column title)
METRICS = (
    ("linear", "linear top-1 (%)"),
    ("knn", "kNN top-1 (%)"),
    ("semi_1", "semi-sup. 1% (%)"),
    ("semi_10", "semi-sup. 10% (%)"),
)


def mean_std(values: Sequence[float]) -> tuple:
    """(mean, sample std with ddof=1, n); the std of one value is 0; empty gives (nan, nan, 0)."""
    values = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(values) / n
    if n == 1:
        return mean, 0.0, 1
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var), n


def record_of(run: Run) -> dict[str, Any] | None:
    """The test-split figures of one finished run, or None if its test stage has not finished."""
    test = read_json(run.dir / "eval_test.json")
    if test is None:
        return None
    pre = read_json(run.dir / "pretrain.json") or {}
    semi = test.get("semi", {})
    rec = {
        "method": run.method,
        "setting": run.name,
        "seed": run.seed,
        "linear": test["linear"]["acc1"],
        "knn": test["knn"]["acc1"],
        "semi_1": semi.get("0.01", {}).get("acc1"),
        "semi_10": semi.get("0.1", {}).get("acc1"),
        "wall_time_s": pre.get("wall_time_s"),
        "peak_memory_mb": max(
            [m for m in (pre.get("peak_memory_mb"), test.get("peak_memory_mb")) if m is not None], default=None
        ),
    }
    return rec


def aggregate(records: Iterable[dict[str, Any]], order: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per method: ``{method, setting, seeds, <metric>_mean, <metric>_std, wall_time_s, peak_memory_mb}``.

    Methods appear in ``order`` (others after, random init last). Records of one method with several
    settings are refused: the table compares one chosen setting per method.
    """
    by_method: dict[str, list[dict[str, Any]]] = {}
    for rec in records:
        by_method.setdefault(rec["method"], []).append(rec)
    names = [m for m in (order or []) if m in by_method]
    names += sorted(m for m in by_method if m not in names and m != RANDOM_INIT)
    if RANDOM_INIT in by_method and RANDOM_INIT not in names:
        names.append(RANDOM_INIT)
    rows = []
    for method in names:
        recs = by_method[method]
        settings = sorted({r["setting"] for r in recs})
        if len(settings) != 1:
            raise ValueError(f"{method}: records of several settings {settings}; aggregate one setting per method")
        row: dict[str, Any] = {"method": method, "setting": settings[0], "seeds": sorted(r["seed"] for r in recs)}
        for key, _ in METRICS:
            mean, std, n = mean_std([r.get(key) for r in recs])
            row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_n"] = mean, std, n
        walls = [r["wall_time_s"] for r in recs if r.get("wall_time_s") is not None]
        row["wall_time_s"] = sum(walls) / len(walls) if walls else math.nan
        mems = [r["peak_memory_mb"] for r in recs if r.get("peak_memory_mb") is not None]
        row["peak_memory_mb"] = max(mems) if mems else math.nan
        rows.append(row)
    return rows


def _pm(mean: float, std: float, n: int) -> str:
    if n == 0 or math.isnan(mean):
        return "–"
    return f"{mean:.2f} ± {std:.2f}"


def format_markdown(rows: Sequence[dict[str, Any]], title: str | None = None) -> str:
    head = ["method", "setting", "seeds"] + [t for _, t in METRICS] + ["pretrain wall time (min)", "peak memory (MiB)"]
    lines = []
    if title:
        lines += [title, ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r["method"], r["setting"], str(len(r["seeds"]))]
        cells += [_pm(r[f"{k}_mean"], r[f"{k}_std"], r[f"{k}_n"]) for k, _ in METRICS]
        wall = r["wall_time_s"]
        cells.append("–" if math.isnan(wall) else f"{wall / 60:.1f}")
        mem = r["peak_memory_mb"]
        cells.append("–" if math.isnan(mem) else f"{mem:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_csv(rows: Sequence[dict[str, Any]], path: os.PathLike) -> None:
    fields = ["method", "setting", "seeds"]
    for k, _ in METRICS:
        fields += [f"{k}_mean", f"{k}_std", f"{k}_n"]
    fields += ["wall_time_s", "peak_memory_mb"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        for r in rows:
            writer.writerow({**{k: r[k] for k in fields if k != "seeds"}, "seeds": " ".join(map(str, r["seeds"]))})


def plot(rows: Sequence[dict[str, Any]], path: os.PathLike, title: str = "") -> Path | None:
    """Grouped bars (mean ± std) of every metric per method; None when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    metrics = [(k, t) for k, t in METRICS if any(r[f"{k}_n"] for r in rows)]
    fig, ax = plt.subplots(figsize=(1.6 + 1.7 * len(metrics), 3.6))
    width = 0.8 / max(1, len(rows))
    for i, r in enumerate(rows):
        xs = [j + (i - (len(rows) - 1) / 2) * width for j in range(len(metrics))]
        ax.bar(
            xs,
            [r[f"{k}_mean"] for k, _ in metrics],
            width,
            yerr=[r[f"{k}_std"] for k, _ in metrics],
            capsize=3,
            label=f"{r['method']} ({len(r['seeds'])} seeds)",
        )
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([t.replace(" (%)", "") for _, t in metrics])
    ax.set_ylabel("test top-1 accuracy (%)")
    lows = [r[f"{k}_mean"] for r in rows for k, _ in metrics if r[f"{k}_n"]]
    if lows:
        ax.set_ylim(max(0.0, min(lows) - 10), min(100.0, max(lows) + 5))
    ax.legend(fontsize=7, loc="lower right")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _tuning_rows(tuning: Sequence[Run], chosen: dict[str, dict[str, Any]] | None) -> list[dict[str, Any]]:
    rows = []
    for run in tuning:
        val = read_json(run.dir / "eval_val.json")
        rows.append(
            {
                "method": run.method,
                "setting": run.name,
                "seed": run.seed,
                "val_linear": None if val is None else val["linear"]["acc1"],
                "val_knn": None if val is None else val["knn"]["acc1"],
                "chosen": bool(chosen) and setting_name(chosen.get(run.method, {"?": 0})) == run.name,
            }
        )
    return rows


def write_report(
    out: os.PathLike, runs: Sequence[Run], chosen=None, tuning: Sequence[Run] = (), cfg=None
) -> dict[str, Any]:
    """Writes results.md/.csv (test split, finished runs only), tuning.csv and results.png under ``out``."""
    out = Path(out)
    records = [r for r in (record_of(run) for run in runs) if r is not None]
    order = list((cfg or {}).get("methods", {})) + [RANDOM_INIT]
    rows = aggregate(records, order=order)
    data = (cfg or {}).get("data", {})
    title = (
        f"Test split, linear probe / kNN (k={((cfg or {}).get('evaluation', {}).get('knn', {}) or {}).get('k', 20)}) "
        f"on frozen features, semi-supervised fine-tuning; mean ± std over seeds. "
        f"Pretraining on {data.get('train_per_class', '?')} images/class, settings chosen on a disjoint validation split "
        f"of {data.get('val_per_class', '?')} images/class."
    )
    md = format_markdown(rows)
    tune_rows = _tuning_rows(tuning, chosen)
    if tune_rows:
        md_t = [
            "",
            f"Hyper-parameter selection (validation split, seed {tune_rows[0]['seed']}):",
            "",
            "| method | setting | val linear (%) | val kNN (%) | chosen |",
            "|---|---|---|---|---|",
        ]
        for t in tune_rows:
            f = lambda v: "–" if v is None else f"{v:.2f}"  # noqa: E731
            md_t.append(
                f"| {t['method']} | {t['setting']} | {f(t['val_linear'])} | {f(t['val_knn'])} | {'✓' if t['chosen'] else ''} |"
            )
        md_full = md + "\n" + "\n".join(md_t)
        with open(out / "tuning.csv", "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(tune_rows[0]))
            w.writeheader()
            w.writerows(tune_rows)
    else:
        md_full = md
    (out / "results.md").write_text(title + "\n\n" + md_full + "\n")
    write_csv(rows, out / "results.csv")
    files = [str(out / "results.md"), str(out / "results.csv")] + ([str(out / "tuning.csv")] if tune_rows else [])
    png = plot(rows, out / "results.png", title="") if rows else None
    if png is not None:
        files.append(str(png))
    return {"rows": rows, "markdown": md_full, "files": files, "tuning": tune_rows}


def report_from_folder(out: os.PathLike, cfg: dict[str, Any]) -> dict[str, Any]:
    """The report of whatever has finished in ``out`` (partial results are fine)."""
    out = Path(out)
    chosen = read_json(out / "chosen.json")
    tuning = tuning_runs(cfg, out)
    runs = final_runs(cfg, out, chosen) if chosen else [Run(out, RANDOM_INIT, {}, s) for s in cfg["seeds"]]
    return write_report(out, runs, chosen=chosen, tuning=tuning, cfg=cfg)

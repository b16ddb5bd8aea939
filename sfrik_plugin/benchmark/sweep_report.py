"""The q-sweep's table (``sweep.md``, ``sweep.csv``) and plots (``sweep.png``), from the run folders.

One row per (mode, method, q): status (``done``, ``does not fit`` with the predicted bytes and the
reason, ``failed``, ``pending``, ``not tuned``), linear / kNN test accuracy, the margin over random
initialisation, pretraining wall time, steps, images/s and peak resident memory. The random-init
baseline (mean over the final seeds) and the spread of a repeated point (the reference q over the
final seeds) come from the main benchmark's final runs. Like :mod:`.report`, everything is derived
from the folder, so a partial sweep gives a partial table and a finished one always the same table.

Example::

    write_sweep_report("bench-runs/sweep", load_config(), budget_rule="min(0.5 x available, 8 GiB)")
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..files.records import read_json, write_csv, write_text_atomic
from .analysis import margin_rows, status_text, sweep_summary
from .plan import RANDOM_INIT, Run, final_runs
from .report import DEFAULT_CLEAR_MARGIN, chosen_settings, mean_std
from .sweep import equal_time_budget, equal_time_run, reference_q, sweep_qs, sweep_run

__all__ = [
    "SWEEP_FIELDS",
    "run_row",
    "sweep_rows",
    "baseline_and_spread",
    "format_sweep_markdown",
    "write_sweep_report",
]

SWEEP_FIELDS = [
    "mode",
    "method",
    "q",
    "setting",
    "seed",
    "status",
    "linear",
    "knn",
    "margin_linear",
    "wall_time_s",
    "budget_s",
    "steps",
    "images_per_s",
    "peak_memory_mb",
    "predicted_memory_mb",
    "load_avg_1min",
    "reason",
]


def run_row(run: Run, mode: str, q: int) -> dict[str, Any]:
    """The row of one sweep run, whatever stage it reached."""
    fit = read_json(run.dir / "fit.json") or {}
    pre = read_json(run.dir / "pretrain.json") or {}
    test = read_json(run.dir / "eval_test.json")
    failed = read_json(run.dir / "failed.json")
    predicted = fit.get("predicted_bytes")
    row: dict[str, Any] = {
        "mode": mode,
        "method": run.method,
        "q": q,
        "setting": run.name,
        "seed": run.seed,
        "predicted_memory_mb": None if predicted is None else predicted / 2**20,
        "reason": "",
    }
    if test is not None:
        row.update(status="done", linear=test["linear"]["acc1"], knn=test["knn"]["acc1"])
        for key in ("wall_time_s", "steps", "images_per_s", "peak_memory_mb", "load_avg_1min"):
            row[key] = pre.get(key)
    elif fit and not fit.get("fits", True):
        row.update(status="does not fit", reason=fit.get("reason", ""))
    elif failed is not None:
        row.update(
            status="failed",
            reason=f"stage {failed.get('stage')} exit code {failed.get('exit_code')}; {failed.get('log')}",
        )
    else:
        row["status"] = "pending"
    return row


def baseline_and_spread(
    cfg: Mapping[str, Any], root: str | os.PathLike
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """``(random init {linear, knn, n}, {method: {linear_std, knn_std, n}})`` from the final runs at the reference q."""
    chosen = chosen_settings(cfg, root)
    by_method: dict[str, list[dict[str, Any]]] = {}
    for run in final_runs(cfg, root, chosen):
        test = read_json(run.dir / "eval_test.json")
        if test is not None:
            by_method.setdefault(run.method, []).append(test)
    base_runs = by_method.pop(RANDOM_INIT, [])
    baseline = {
        "linear": mean_std(t["linear"]["acc1"] for t in base_runs)[0],
        "knn": mean_std(t["knn"]["acc1"] for t in base_runs)[0],
        "n": float(len(base_runs)),
    }
    spread = {}
    for method, tests in by_method.items():
        spread[method] = {
            "linear_std": mean_std(t["linear"]["acc1"] for t in tests)[1],
            "knn_std": mean_std(t["knn"]["acc1"] for t in tests)[1],
            "n": float(len(tests)),
        }
    return baseline, spread


def sweep_rows(cfg: Mapping[str, Any], root: str | os.PathLike) -> list[dict[str, Any]]:
    """Every planned sweep point as a row (equal epochs first, then equal time), in q order."""
    chosen = chosen_settings(cfg, root)
    baseline, _ = baseline_and_spread(cfg, root)
    rows = []
    for q in sweep_qs(cfg):
        for method in cfg["methods"]:
            if chosen.get(method) is None:
                rows.append(
                    {
                        "mode": "equal epochs",
                        "method": method,
                        "q": q,
                        "status": "not tuned",
                        "reason": "tuning unfinished or nothing fitted",
                    }
                )
                continue
            rows.append(run_row(sweep_run(cfg, root, method, chosen[method] or {}, q), "equal epochs", q))
    if ((cfg.get("sweep") or {}).get("equal_time") or {}).get("budget") is not None:
        for q in sweep_qs(cfg):
            rows += _equal_time_rows(cfg, root, chosen, q)
    for row in rows:
        if row.get("status") == "done" and not math.isnan(baseline["linear"]):
            row["margin_linear"] = float(row["linear"]) - baseline["linear"]
    return rows


def _equal_time_rows(
    cfg: Mapping[str, Any], root: str | os.PathLike, chosen: Mapping[str, dict[str, Any] | None], q: int
) -> list[dict[str, Any]]:
    budget_s, how = equal_time_budget(cfg, root, chosen, q)
    rows = []
    for method in cfg["methods"]:
        base: dict[str, Any] = {"mode": "equal time", "method": method, "q": q, "budget_s": budget_s}
        setting = chosen.get(method)
        if setting is None:
            rows.append({**base, "status": "not tuned", "reason": "tuning unfinished or nothing fitted"})
            continue
        epoch_row = run_row(sweep_run(cfg, root, method, setting, q), "equal time", q)
        if epoch_row["status"] in ("does not fit", "failed"):  # the equal-time run cannot do better
            rows.append({**epoch_row, **base})
            continue
        if budget_s is None:
            rows.append({**base, "status": "pending", "reason": how})
            continue
        run, note = equal_time_run(cfg, root, method, setting, q, budget_s)
        if run is None:
            rows.append({**base, "status": "pending", "reason": note})
        else:
            rows.append({**run_row(run, "equal time", q), "budget_s": budget_s})
    return rows


def _cell(value: Any, fmt: str = "{:.2f}") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return fmt.format(value) if isinstance(value, (int, float)) else str(value)


def _seconds(value: Any) -> str:
    if not isinstance(value, (int, float)) or math.isnan(value):
        return "–"
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def format_sweep_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The sweep table in markdown (one line per row; failures and non-fits with their reason)."""
    head = [
        "mode",
        "method",
        "q",
        "status",
        "linear (%)",
        "kNN (%)",
        "vs random init",
        "pretrain (s)",
        "steps",
        "images/s",
        "peak memory (MiB)",
        "predicted (MiB)",
        "load",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        status = r["status"] if r["status"] == "done" else status_text(r)
        cells = [
            r["mode"],
            r["method"],
            str(r["q"]),
            status,
            _cell(r.get("linear")),
            _cell(r.get("knn")),
            _cell(r.get("margin_linear"), "{:+.1f}"),
            _seconds(r.get("wall_time_s")),
            _cell(r.get("steps"), "{:.0f}"),
            _cell(r.get("images_per_s"), "{:.0f}"),
            _cell(r.get("peak_memory_mb"), "{:.0f}"),
            _cell(r.get("predicted_memory_mb"), "{:.0f}"),
            _cell(r.get("load_avg_1min"), "{:.1f}"),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_sweep_report(out: str | os.PathLike, cfg: Mapping[str, Any], budget_rule: str = "") -> dict[str, Any]:
    """Writes sweep.md, sweep.csv and sweep.png under ``out``; returns rows, summary and markdown."""
    from .plots import plot_sweep

    out = Path(out)
    rows = sweep_rows(cfg, out)
    baseline, spread = baseline_and_spread(cfg, out)
    linear_spread = {m: s["linear_std"] for m, s in spread.items() if s["n"] > 1}
    summary = sweep_summary(rows, linear_spread)
    clear = float((cfg.get("report") or {}).get("clear_margin", DEFAULT_CLEAR_MARGIN))
    invocations = read_json(out / "invocations.json") or []
    command = " ".join(invocations[-1]["command"]) if invocations and invocations[-1].get("command") else "?"
    sweep = cfg.get("sweep") or {}
    data = cfg["data"]
    lines = [
        f"q-sweep: {', '.join(cfg['methods'])} at q = {sweep_qs(cfg)}, one seed ({rows[0]['seed'] if rows and 'seed' in rows[0] else '?'}) "
        f"per point; hyper-parameters tuned at q = {reference_q(cfg)} (scaled with q: {sweep.get('scale_with_q') or 'none'}); "
        f"{data['train_per_class']} images/class, {cfg['epochs']} epochs, batch {cfg['batch_size']}, "
        f"projector {cfg['projector']['hidden']}-{cfg['projector']['hidden']}-q, backbone {cfg['backbone']['name']}.",
        "",
        f"Command: `{command}`. Memory budget per run: {budget_rule or '?'}. "
        f"Equal-time budget: {(sweep.get('equal_time') or {}).get('budget')} (seconds, or that method's equal-epoch time at each q).",
        "",
    ]
    if baseline["n"]:
        seeds = f"{baseline['n']:.0f} seed{'s' if baseline['n'] != 1 else ''}"
        lines.append(
            f"Random initialisation (mean of {seeds}): linear {baseline['linear']:.2f}, kNN {baseline['knn']:.2f}."
        )
    repeated = {m: s for m, s in spread.items() if s["n"] > 1}
    if repeated:
        listed = ", ".join(f"{m} ±{s['linear_std']:.2f} (n={s['n']:.0f})" for m, s in repeated.items())
        lines.append(f"Spread of a repeated point (q = {reference_q(cfg)}, linear, std over seeds): {listed}.")
    else:
        lines.append("No repeated point (one seed): differences between methods carry no error bar.")
    lines.append(
        "Times are wall-clock on this machine; the load column is its highest 1-minute load average during the "
        "pretraining (above the number of cores, other work was slowing it down)."
    )
    if not math.isnan(baseline["linear"]):
        weak = margin_rows(rows, baseline["linear"], clear, mode="equal epochs")
        done = [r for r in rows if r.get("status") == "done" and r["mode"] == "equal epochs"]
        if weak:
            listed = ", ".join(f"{r['method']} q={r['q']} ({_cell(r.get('margin_linear'), '{:+.1f}')})" for r in weak)
            lines.append(f"**Not clearly above random initialisation (< {clear:g} points): {listed}.**")
        elif done:
            lines.append(f"Every finished equal-epoch row is at least {clear:g} points above random initialisation.")
    lines += ["", *[f"- {s}" for s in summary], "", format_sweep_markdown(rows)]
    markdown = "\n".join(lines)
    write_text_atomic(out / "sweep.md", markdown + "\n")
    write_csv(out / "sweep.csv", rows, SWEEP_FIELDS)
    files = [out / "sweep.md", out / "sweep.csv"]
    if any(r.get("status") == "done" for r in rows):
        files.append(plot_sweep(rows, baseline, spread, reference_q(cfg), out / "sweep.png"))
    return {"rows": rows, "summary": summary, "markdown": markdown, "files": [str(f) for f in files]}

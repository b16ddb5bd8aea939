"""The main results table (test split, mean ± std over seeds) and the tuning table, from the run folders.

:func:`aggregate` is pure (records in, rows out): per method, the mean and the sample standard
deviation (ddof = 1; 0 for one seed) of every metric, the mean pretraining wall time and the largest
peak memory. :func:`margin_verdict` says whether every method is clearly above random
initialisation — or labels the table a smoke test. :func:`write_report` reads the run folders and
writes ``results.md``, ``results.csv``, ``tuning.csv`` and ``results.png``; it needs nothing but the
folder and the config, so ``--report-only`` and an interrupted benchmark give the same files.

Example:
    >>> rows = aggregate([{"method": "sfrik", "setting": "s", "seed": 0, "linear": 80.0}])
    >>> rows[0]["linear_mean"], rows[0]["linear_std"]
    (80.0, 0.0)
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..files.records import read_json, write_csv, write_text_atomic
from .analysis import METRICS
from .plan import RANDOM_INIT, Run, final_runs, setting_name, tune_seeds
from .tuning import method_state, validation_scores

__all__ = [
    "METRICS",
    "DEFAULT_CLEAR_MARGIN",
    "mean_std",
    "record_of",
    "aggregate",
    "margin_verdict",
    "format_markdown",
    "tuning_rows",
    "chosen_settings",
    "write_report",
]

#: linear-probe points above random initialisation that count as a clear margin
DEFAULT_CLEAR_MARGIN = 2.0


def mean_std(values: Iterable[float | None]) -> tuple[float, float, int]:
    """(mean, sample std with ddof=1, n) of the non-missing values; one value has std 0; none gives (nan, nan, 0).

    Example:
        >>> mean_std([1.0, 2.0, 3.0, None])
        (2.0, 1.0, 3)
    """
    kept = [float(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    n = len(kept)
    if n == 0:
        return math.nan, math.nan, 0
    mean = sum(kept) / n
    if n == 1:
        return mean, 0.0, 1
    return mean, math.sqrt(sum((v - mean) ** 2 for v in kept) / (n - 1)), n


def record_of(run: Run) -> dict[str, Any] | None:
    """The test-split figures of one run, or None if its test stage has not finished."""
    test = read_json(run.dir / "eval_test.json")
    if test is None:
        return None
    pre = read_json(run.dir / "pretrain.json") or {}
    semi = (read_json(run.dir / "eval_semi.json") or {}).get("semi", {})
    memories = [m for m in (pre.get("peak_memory_mb"),) if m is not None]
    return {
        "method": run.method,
        "setting": run.name,
        "seed": run.seed,
        "linear": test["linear"]["acc1"],
        "knn": test["knn"]["acc1"],
        "semi_1": semi.get("0.01", {}).get("acc1"),
        "semi_10": semi.get("0.1", {}).get("acc1"),
        "wall_time_s": pre.get("wall_time_s"),
        "images_per_s": pre.get("images_per_s"),
        "peak_memory_mb": max(memories) if memories else None,
    }


def aggregate(records: Iterable[Mapping[str, Any]], order: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """One row per method: ``{method, setting, seeds, <metric>_mean/_std/_n, wall_time_s, peak_memory_mb}``.

    Methods appear in ``order`` (others after, random init last). Records of one method with several
    settings are refused: the table compares one chosen setting per method.
    """
    by_method: dict[str, list[Mapping[str, Any]]] = {}
    for rec in records:
        by_method.setdefault(rec["method"], []).append(rec)
    names = [m for m in (order or []) if m in by_method and m != RANDOM_INIT]
    names += sorted(m for m in by_method if m not in names and m != RANDOM_INIT)
    if RANDOM_INIT in by_method:
        names.append(RANDOM_INIT)
    rows = []
    for method in names:
        recs = by_method[method]
        settings = sorted({r["setting"] for r in recs})
        if len(settings) != 1:
            raise ValueError(f"{method}: records of several settings {settings}; aggregate one setting per method")
        row: dict[str, Any] = {"method": method, "setting": settings[0], "seeds": sorted(r["seed"] for r in recs)}
        for key, _ in METRICS:
            row[f"{key}_mean"], row[f"{key}_std"], row[f"{key}_n"] = mean_std(r.get(key) for r in recs)
        row["wall_time_s"] = mean_std(r.get("wall_time_s") for r in recs)[0]
        memories = [r["peak_memory_mb"] for r in recs if r.get("peak_memory_mb") is not None]
        row["peak_memory_mb"] = max(memories) if memories else math.nan
        rows.append(row)
    return rows


def margin_verdict(rows: Sequence[Mapping[str, Any]], clear_margin: float = DEFAULT_CLEAR_MARGIN) -> tuple[bool, str]:
    """``(clear, sentence)``: whether every method's mean linear accuracy is at least ``clear_margin``
    points above random initialisation's (no random-init row: cannot tell, not clear).

    Example:
        >>> margin_verdict([{"method": "sfrik", "linear_mean": 80.0}, {"method": "random_init", "linear_mean": 72.0}])
        (True, 'every method is at least 2 points above random initialisation (linear probe): sfrik +8.0')
    """
    base = next((r for r in rows if r["method"] == RANDOM_INIT), None)
    others = [r for r in rows if r["method"] != RANDOM_INIT]
    if base is None or math.isnan(base["linear_mean"]) or not others:
        return (
            False,
            "SMOKE TEST: no random-initialisation baseline to compare with; these numbers show only that it runs",
        )
    margins = {r["method"]: r["linear_mean"] - base["linear_mean"] for r in others}
    listed = ", ".join(f"{m} {d:+.1f}" for m, d in margins.items())
    weak = [m for m, d in margins.items() if not d >= clear_margin]
    if weak:
        return False, (
            f"SMOKE TEST: {', '.join(weak)} not clearly above random initialisation (margin < {clear_margin:g} "
            f"points, linear probe: {listed}); too little pretraining to be evidence of anything"
        )
    return (
        True,
        f"every method is at least {clear_margin:g} points above random initialisation (linear probe): {listed}",
    )


def _pm(mean: float, std: float, n: int) -> str:
    return "–" if n == 0 or math.isnan(mean) else f"{mean:.2f} ± {std:.2f}"


def format_markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The results table in markdown (pretraining wall time in minutes, peak memory in MiB)."""
    head = ["method", "setting", "seeds", *(t for _, t in METRICS), "pretrain wall time (min)", "peak memory (MiB)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        cells = [r["method"], r["setting"], str(len(r["seeds"]))]
        cells += [_pm(r[f"{k}_mean"], r[f"{k}_std"], r[f"{k}_n"]) for k, _ in METRICS]
        cells.append("–" if math.isnan(r["wall_time_s"]) else f"{r['wall_time_s'] / 60:.1f}")
        cells.append("–" if math.isnan(r["peak_memory_mb"]) else f"{r['peak_memory_mb']:.0f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tuning_rows(cfg: Mapping[str, Any], root: str | os.PathLike) -> list[dict[str, Any]]:
    """One row per (method, grid setting): where it came from (grid or extension), the validation
    scores per tuning seed and their mean, whether it was chosen, and the selection's note."""
    rows = []
    seeds = tune_seeds(cfg)
    for method in cfg["methods"]:
        state = method_state(cfg, root, method)
        for point in state.points:
            linear = validation_scores(root, method, point.setting, seeds, "linear")
            knn = validation_scores(root, method, point.setting, seeds, "knn")
            chosen = state.chosen is not None and point.setting == state.chosen
            rows.append(
                {
                    "method": method,
                    "setting": setting_name(point.setting),
                    "origin": point.origin,
                    "seeds": seeds,
                    "val_linear_per_seed": ["" if v is None else f"{v:.2f}" for v in linear],
                    "val_linear": mean_std(linear)[0] if all(v is not None for v in linear) else None,
                    "val_knn": mean_std(knn)[0] if all(v is not None for v in knn) else None,
                    "chosen": chosen,
                    "selection": state.note if chosen or state.pending else "",
                }
            )
    return rows


def chosen_settings(cfg: Mapping[str, Any], root: str | os.PathLike) -> dict[str, dict[str, Any] | None]:
    """The setting each method's finished tuning chose (None while its tuning is unfinished)."""
    return {m: method_state(cfg, root, m).chosen for m in cfg["methods"]}


def _tuning_markdown(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    def fmt(v: float | None) -> str:
        return "–" if v is None else f"{v:.2f}"

    lines = [
        "| method | setting | origin | val linear per seed (%) | mean val linear (%) | mean val kNN (%) | chosen |",
        "|---|---|---|---|---|---|---|",
    ]
    for t in rows:
        mark = f"✓ ({t['selection']})" if t["chosen"] else ""
        per_seed = " / ".join(v or "–" for v in t["val_linear_per_seed"])
        lines.append(
            f"| {t['method']} | {t['setting']} | {t['origin']} | {per_seed} | {fmt(t['val_linear'])} | "
            f"{fmt(t['val_knn'])} | {mark} |"
        )
    return lines


def write_report(out: str | os.PathLike, cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Writes results.md/.csv (finished test runs only), tuning.csv and results.png under ``out``."""
    from .plots import plot_results

    out = Path(out)
    chosen = chosen_settings(cfg, out)
    records = [r for r in (record_of(run) for run in final_runs(cfg, out, chosen)) if r is not None]
    rows = aggregate(records, order=list(cfg["methods"]))
    clear_margin = float((cfg.get("report") or {}).get("clear_margin", DEFAULT_CLEAR_MARGIN))
    _, verdict = margin_verdict(rows, clear_margin)
    data, knn = cfg["data"], (cfg.get("evaluation") or {}).get("knn") or {}
    title = (
        f"Test split: linear probe / kNN (k={knn.get('k', 20)}) on frozen features and semi-supervised fine-tuning, "
        f"mean ± std over seeds. Pretraining on {data['train_per_class']} images/class for {cfg['epochs']} epochs; "
        f"settings chosen on a disjoint validation split of {data['val_per_class']} images/class "
        f"(mean over tuning seeds {tune_seeds(cfg)})."
    )
    if cfg.get("_quick"):
        title = "Quick mode (one seed, settings fixed by the full benchmark's tuning). " + title
    tune = tuning_rows(cfg, out)
    not_chosen = [m for m, s in chosen.items() if s is None]
    lines = [title, "", f"**{verdict}**", "", format_markdown(rows)]
    if not_chosen:
        lines += ["", f"Not in the table (tuning unfinished or nothing fitted in memory): {', '.join(not_chosen)}."]
    lines += ["", "Hyper-parameter selection (validation split):", "", *_tuning_markdown(tune)]
    markdown = "\n".join(lines)
    write_text_atomic(out / "results.md", markdown + "\n")
    fields = ["method", "setting", "seeds"] + [f"{k}_{s}" for k, _ in METRICS for s in ("mean", "std", "n")]
    write_csv(out / "results.csv", rows, fields + ["wall_time_s", "peak_memory_mb"])
    write_csv(out / "tuning.csv", tune)
    files = [out / "results.md", out / "results.csv", out / "tuning.csv"]
    if rows:
        files.append(plot_results(rows, out / "results.png"))
    return {"rows": rows, "tuning": tune, "verdict": verdict, "markdown": markdown, "files": [str(f) for f in files]}

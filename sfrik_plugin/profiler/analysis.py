"""From measured samples to conclusions: rows, power-law slopes, extrapolations, summaries.

Example:
    >>> fit = fit_power_law([1, 2, 4, 8], [3, 12, 48, 192])   # y = 3 x²
    >>> round(fit["slope"], 6)
    2.0
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..contenders.memory import MIB
from .measure import summarize

__all__ = [
    "fit_power_law",
    "extrapolate_seconds",
    "result_row",
    "rows_ok",
    "loss_summary",
    "train_summary",
]


def fit_power_law(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of ``log y = intercept + slope · log x``: ``{slope, intercept, r2, points}``.

    Needs at least two points with distinct x; every value must be positive.

    Example:
        >>> fit = fit_power_law([1, 2, 4, 8], [3, 12, 48, 192])   # y = 3 x²
        >>> round(fit["slope"], 6), round(math.exp(fit["intercept"]), 6), round(fit["r2"], 6)
        (2.0, 3.0, 1.0)
    """
    xs, ys = [float(x) for x in xs], [float(y) for y in ys]
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys differ in length ({len(xs)} vs {len(ys)})")
    if len(xs) < 2:
        raise ValueError(f"a slope needs at least 2 points, got {len(xs)}")
    if any(not (v > 0 and math.isfinite(v)) for v in xs + ys):
        raise ValueError(f"a log-log fit needs finite positive values, got xs={xs} ys={ys}")
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError(f"a slope needs at least 2 distinct x values, got {xs}")
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx
    intercept = my - slope * mx
    residual = sum((b - (intercept + slope * a)) ** 2 for a, b in zip(lx, ly))
    total = sum((b - my) ** 2 for b in ly)
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return {"slope": slope, "intercept": intercept, "r2": r2, "points": len(xs)}


def extrapolate_seconds(measured: Mapping[int, float], q: int, min_slope: float) -> float | None:
    """Predicted seconds per call at ``q`` from calls measured at smaller q.

    Uses the log-log slope of the (up to) three largest measured q, but never less than
    ``min_slope`` (the complexity claim: small sizes are overhead-bound and would under-predict).
    ``None`` without measurements.

    Example:
        >>> round(extrapolate_seconds({1024: 0.5, 2048: 2.0}, 4096, min_slope=1.0), 9)
        8.0
    """
    points = sorted((k, v) for k, v in measured.items() if k < q and v > 0)
    if not points:
        return None
    if len(points) == 1:
        slope = min_slope
    else:
        tail = points[-3:]
        slope = max(min_slope, fit_power_law([p[0] for p in tail], [p[1] for p in tail])["slope"])
    base_q, base_t = points[-1]
    return base_t * (q / base_q) ** slope


def result_row(base: Mapping[str, Any], result: Mapping[str, Any]) -> dict:
    """One CSV row: the configuration, the status, and median/spread of the samples.

    Example:
        >>> row = result_row({"q": 8}, {"status": "ok", "samples": [3.0, 1.0, 2.0], "peak_bytes": 2**21})
        >>> row["median_s"], row["repeats"], row["peak_mib"]
        (2.0, 3, 2.0)
    """
    row = dict(base)
    row["status"] = result.get("status", "failed")
    row["reason"] = result.get("reason", "")
    samples = result.get("samples") or []
    if samples:
        stats = summarize(list(samples))
        row.update(
            median_s=stats["median"],
            min_s=stats["min"],
            max_s=stats["max"],
            spread=(stats["max"] - stats["min"]) / stats["median"] if stats["median"] > 0 else float("nan"),
            repeats=stats["repeats"],
            warmup_s=(result.get("warmup_s") or [float("nan")])[0],
        )
    else:
        row.update(median_s=None, min_s=None, max_s=None, spread=None, repeats=0, warmup_s=None)
    peak = result.get("peak_bytes")
    row["peak_mib"] = peak / MIB if peak is not None else None
    for key in ("rss_peak", "process_peak_rss"):
        value = result.get(f"{key}_bytes")
        row[f"{key}_mib"] = value / MIB if value is not None else None
    return row


def rows_ok(rows: Iterable[Mapping[str, Any]], **match: Any) -> list[Mapping[str, Any]]:
    """The measured rows (status ok, with a median) whose fields equal ``match``.

    Example:
        >>> rows_ok([{"q": 8, "status": "ok", "median_s": 1.0}, {"q": 8, "status": "oom"}], q=8)
        [{'q': 8, 'status': 'ok', 'median_s': 1.0}]
    """
    return [
        r
        for r in rows
        if r.get("status") == "ok" and r.get("median_s") and all(r.get(k) == v for k, v in match.items())
    ]


def loss_summary(rows: Sequence[Mapping[str, Any]], reference: str = "sfrik-gram", baseline: str = "vicreg") -> dict:
    """Slopes of time and memory vs q per (contender, N), and baseline/reference ratios per (N, q).

    Example:
        >>> rows = [dict(contender=c, N=256, q=q, status="ok", median_s=t * q**e, peak_mib=m * q**e)
        ...         for c, t, m, e in (("sfrik-gram", 1e-5, 0.01, 1), ("vicreg", 1e-8, 1e-4, 2))
        ...         for q in (1024, 2048, 4096)]
        >>> s = loss_summary(rows)
        >>> round(s["slopes"]["vicreg"]["256"]["time"]["slope"], 6)
        2.0
    """
    slopes: dict[str, dict[str, dict]] = {}
    for contender in sorted({r["contender"] for r in rows}):
        for n in sorted({r["N"] for r in rows}):
            ok = sorted(rows_ok(rows, contender=contender, N=n), key=lambda r: r["q"])
            entry: dict[str, Any] = {}
            if len({r["q"] for r in ok}) >= 2:
                entry["time"] = fit_power_law([r["q"] for r in ok], [r["median_s"] for r in ok])
                with_memory = [r for r in ok if r.get("peak_mib")]
                if len({r["q"] for r in with_memory}) >= 2:
                    entry["memory"] = fit_power_law([r["q"] for r in with_memory], [r["peak_mib"] for r in with_memory])
                entry["q_range"] = [ok[0]["q"], ok[-1]["q"]]
            if entry:
                slopes.setdefault(contender, {})[str(n)] = entry
    ratios = []
    for n, q in sorted({(r["N"], r["q"]) for r in rows}):
        ref = rows_ok(rows, contender=reference, N=n, q=q)
        base = [r for r in rows if r["contender"] == baseline and r["N"] == n and r["q"] == q]
        if not ref or not base:
            continue
        entry = {"N": n, "q": q, "baseline_status": base[0].get("status"), "baseline_reason": base[0].get("reason", "")}
        if base[0].get("status") == "ok" and base[0].get("median_s"):
            entry["time_ratio"] = base[0]["median_s"] / ref[0]["median_s"]
            if base[0].get("peak_mib") and ref[0].get("peak_mib"):
                entry["memory_ratio"] = base[0]["peak_mib"] / ref[0]["peak_mib"]
        ratios.append(entry)
    return {"reference": reference, "baseline": baseline, "slopes": slopes, "ratios": ratios}


def train_summary(rows: Sequence[Mapping[str, Any]], reference: str = "sfrik", baseline: str = "vicreg") -> dict:
    """Per q: how much faster (time) and leaner (memory) ``reference`` is than ``baseline``, and
    the smallest measured q from which it stays faster (the crossover).

    Example:
        >>> rows = [dict(method=m, q=8, status="ok", median_s=t) for m, t in (("sfrik", 1.0), ("vicreg", 1.5))]
        >>> train_summary(rows)["per_q"][0]["speedup_percent"], train_summary(rows)["crossover_q"]
        (50.0, 8)
    """
    per_q = []
    for q in sorted({r["q"] for r in rows}):
        ref = rows_ok(rows, method=reference, q=q)
        base = [r for r in rows if r["method"] == baseline and r["q"] == q]
        if not ref or not base:
            continue
        entry: dict[str, Any] = {
            "q": q,
            "baseline_status": base[0].get("status"),
            "baseline_reason": base[0].get("reason", ""),
        }
        if base[0].get("status") == "ok" and base[0].get("median_s"):
            entry["speedup_percent"] = 100.0 * (base[0]["median_s"] / ref[0]["median_s"] - 1.0)
            if base[0].get("peak_mib") and ref[0].get("peak_mib"):
                entry["memory_saving_percent"] = 100.0 * (1.0 - ref[0]["peak_mib"] / base[0]["peak_mib"])
        else:
            entry["speedup_percent"] = math.inf  # the baseline does not run at all
        per_q.append(entry)
    crossover = None
    for i, entry in enumerate(per_q):
        if all(e["speedup_percent"] > 0 for e in per_q[i:]):
            crossover = entry["q"]
            break
    return {"reference": reference, "baseline": baseline, "per_q": per_q, "crossover_q": crossover}

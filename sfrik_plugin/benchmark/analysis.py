"""Pure computations on the q-sweep's rows: Pareto fronts and the summary a reader needs at a glance.

A sweep row is a dict with at least ``mode`` ("equal epochs" / "equal time"), ``method``, ``q``,
``status`` ("done", "does not fit", "failed", "pending"), ``linear`` (test top-1 %),
``wall_time_s`` and ``peak_memory_mb``; :mod:`.sweep_report` builds them from the run folders.

* :func:`pareto_front`: of (cost, accuracy) points, those no other point beats on both (no cheaper
  point is at least as accurate, no equally cheap point is more accurate);
* :func:`fronts` applies it per method (or over all methods) for a cost column;
* :func:`margin_rows`: the finished rows that are not clearly above random initialisation;
* :func:`sweep_summary`: one sentence per q (who is best, and at what time and memory relative to
  the focus method; who does not fit), per q at equal time (who is best, and how many steps each
  method's budget bought), and the overall Pareto fronts. A difference smaller than the spread of a
  repeated point is called a tie.

Example:
    >>> pareto_front([(10.0, 80.0), (5.0, 78.0), (20.0, 79.0), (5.0, 70.0)])
    [1, 0]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["METRICS", "pareto_front", "fronts", "margin_rows", "status_text", "sweep_summary"]

#: (record key, column title) of every accuracy the benchmark reports; shared by the tables and the plots
METRICS = (
    ("linear", "linear top-1 (%)"),
    ("knn", "kNN top-1 (%)"),
    ("semi_1", "semi-sup. 1% (%)"),
    ("semi_10", "semi-sup. 10% (%)"),
)


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the non-dominated ``(cost, accuracy)`` points (lower cost and higher accuracy are
    better), by increasing cost. Of identical points the first is kept; NaN points are ignored."""
    valid = [i for i, (c, a) in enumerate(points) if not (math.isnan(c) or math.isnan(a))]
    # cheapest first; at equal cost the most accurate first; then input order
    order = sorted(valid, key=lambda i: (points[i][0], -points[i][1], i))
    front: list[int] = []
    best = -math.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def _number(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def fronts(
    rows: Sequence[Mapping[str, Any]], cost: str, accuracy: str = "linear", per_method: bool = True
) -> dict[str, list[Mapping[str, Any]]]:
    """The Pareto front of the finished rows for the column ``cost``, per method (or ``{"all": ...}``)."""
    done = [r for r in rows if r.get("status") == "done"]
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in done:
        groups.setdefault(row["method"] if per_method else "all", []).append(row)
    out = {}
    for name, group in groups.items():
        points = [(_number(r.get(cost)), _number(r.get(accuracy))) for r in group]
        out[name] = [group[i] for i in pareto_front(points)]
    return out


def margin_rows(
    rows: Sequence[Mapping[str, Any]], baseline: float, clear_margin: float, mode: str | None = None
) -> list[Mapping[str, Any]]:
    """Finished rows (of ``mode``, if given) whose linear accuracy is less than ``clear_margin`` above ``baseline``."""
    return [
        r
        for r in rows
        if r.get("status") == "done"
        and (mode is None or r.get("mode") == mode)
        and not _number(r.get("linear")) - baseline >= clear_margin
    ]


def status_text(row: Mapping[str, Any]) -> str:
    """``status: reason`` without saying the status twice (a verdict reason starts with it)."""
    status, reason = str(row.get("status", "")), str(row.get("reason") or "")
    if not reason:
        return status
    return reason if reason.startswith(status) else f"{status}: {reason}"


def _ratio(a: Any, b: Any) -> str:
    x, y = _number(a), _number(b)
    return "?" if math.isnan(x) or math.isnan(y) or y <= 0 else f"{x / y:.2f}x"


def _compare_at_q(
    group: Sequence[Mapping[str, Any]], spread: Mapping[str, float], focus: str, label: str, equal_time: bool
) -> str | None:
    done = [r for r in group if r.get("status") == "done"]
    missing = [r for r in group if r.get("status") != "done"]
    if not group:
        return None
    q = group[0]["q"]
    parts = []
    if done:
        ranked = sorted(done, key=lambda r: -_number(r["linear"]))
        best, listed = ranked[0], ", ".join(f"{r['method']} {_number(r['linear']):.1f}" for r in ranked)
        if len(ranked) > 1:
            gap = _number(best["linear"]) - _number(ranked[1]["linear"])
            noise = max(spread.get(best["method"], 0.0), spread.get(ranked[1]["method"], 0.0))
            verdict = (
                f"tie within the seed spread ±{noise:.1f}" if gap <= noise else f"{best['method']} best by {gap:.1f}"
            )
            parts.append(f"linear {listed} ({verdict})")
        else:
            parts.append(f"linear {listed}")
        own = next((r for r in done if r["method"] == focus), None)
        if equal_time:  # the times are equal by construction: what differs is how many steps they bought
            parts.append("steps " + ", ".join(f"{r['method']} {_number(r.get('steps')):.0f}" for r in ranked))
        elif own is not None:
            for other in (r for r in done if r["method"] != focus):
                parts.append(
                    f"{focus} takes {_ratio(own.get('wall_time_s'), other.get('wall_time_s'))} the time and "
                    f"{_ratio(own.get('peak_memory_mb'), other.get('peak_memory_mb'))} the memory of {other['method']}"
                )
    for row in missing:
        parts.append(f"{row['method']}: {status_text(row)}")
    return f"q={q} {label}: " + "; ".join(parts)


def sweep_summary(
    rows: Sequence[Mapping[str, Any]], spread: Mapping[str, float] | None = None, focus: str = "sfrik"
) -> list[str]:
    """Sentences for the sweep report: per q at equal epochs, per q at equal time, the Pareto fronts.

    ``spread``: per method, the standard deviation of the linear accuracy of a repeated point (the
    reference q over seeds); differences below it are reported as ties.
    """
    spread = spread or {}
    lines = []
    for mode in ("equal epochs", "equal time"):
        qs = sorted({r["q"] for r in rows if r.get("mode") == mode and r.get("q") is not None})
        for q in qs:
            group = [r for r in rows if r.get("mode") == mode and r.get("q") == q]
            budget = next((r.get("budget_s") for r in group if r.get("budget_s")), None)
            label = mode if budget is None else f"{mode} ({_number(budget):.3g} s each)"
            line = _compare_at_q(group, spread, focus, label, equal_time=mode == "equal time")
            if line:
                lines.append(line)
    for cost, what in (("wall_time_s", "pretraining time"), ("peak_memory_mb", "peak memory")):
        front = fronts(rows, cost, per_method=False).get("all", [])
        if front:
            points = ", ".join(f"{r['method']} q={r['q']} ({r['mode']})" for r in front)
            lines.append(f"Pareto front, accuracy vs {what}, all methods: {points}")
    return lines

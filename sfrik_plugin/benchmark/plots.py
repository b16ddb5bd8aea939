"""The benchmark's figures (matplotlib, Agg backend), drawn in the contenders' registry styles.

* :func:`plot_results`: grouped bars (mean ± std over seeds) of every metric per method;
* :func:`plot_sweep`: three panels — test linear accuracy vs q (equal epochs solid, equal time
  dashed, random init as a grey line, runs that do not fit as crosses on the axis, the spread of a
  repeated point as an error bar at the reference q), and accuracy vs pretraining wall time and vs
  peak memory with each method's Pareto front (:func:`.analysis.fronts`).

Example::

    plot_sweep(rows, baseline, spread, 1024, "bench-runs/sweep/sweep.png")
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..contenders import TRAIN_METHODS, PlotStyle
from .analysis import METRICS, fronts
from .plan import RANDOM_INIT

__all__ = ["style_of", "plot_results", "plot_sweep"]

_FALLBACK = ("tab:purple", "tab:brown", "tab:pink", "tab:olive", "tab:cyan")


def style_of(method: str) -> PlotStyle:
    """The registry's style of a benchmark method (matched by name or solo-learn name), else a fallback colour.

    Example:
        >>> style_of("barlow_twins") == TRAIN_METHODS["barlow"].style
        True
    """
    for entry in TRAIN_METHODS.values():
        if method in (entry.name, entry.solo_method):
            return entry.style
    if method == RANDOM_INIT:
        return PlotStyle("grey", "s", "--")
    return PlotStyle(_FALLBACK[sum(map(ord, method)) % len(_FALLBACK)], "D")


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_results(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Grouped bars (mean ± std) of every metric that has values, one colour per method."""
    plt = _pyplot()
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
            color=style_of(r["method"]).color,
            label=f"{r['method']} ({len(r['seeds'])} seeds)",
        )
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([t.replace(" (%)", "") for _, t in metrics])
    ax.set_ylabel("test top-1 accuracy (%)")
    values = [r[f"{k}_mean"] for r in rows for k, _ in metrics if r[f"{k}_n"]]
    if values:
        ax.set_ylim(max(0.0, min(values) - 10), min(100.0, max(values) + 5))
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def _plain_numbers(minor: bool = False) -> Any:
    """Tick labels as plain numbers (30, 100, 300) instead of powers of ten; minor ticks at 2, 3, 5 only."""
    from matplotlib.ticker import FuncFormatter

    def label(x: float, _pos: int) -> str:
        if minor and f"{x:.0e}"[0] not in "235":
            return ""
        return f"{x:g}"

    return FuncFormatter(label)


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _accuracy_vs_q(
    ax: Any,
    rows: Sequence[Mapping[str, Any]],
    baseline: Mapping[str, float],
    spread: Mapping[str, Mapping[str, float]],
    q_ref: int,
) -> None:
    methods = list(dict.fromkeys(r["method"] for r in rows))
    done = [r for r in rows if r.get("status") == "done"]
    floor = min((_num(r["linear"]) for r in done), default=50.0)
    if not math.isnan(baseline.get("linear", math.nan)):
        floor = min(floor, baseline["linear"])
        ax.axhline(baseline["linear"], color="grey", linestyle=":", label="random init")
    for method in methods:
        style = style_of(method)
        for mode, linestyle in (("equal epochs", style.linestyle), ("equal time", "--")):
            pts = sorted((r["q"], _num(r["linear"])) for r in done if r["method"] == method and r["mode"] == mode)
            if pts:
                label = method if mode == "equal epochs" else f"{method}, equal time"
                ax.plot(
                    *zip(*pts),
                    marker=style.marker,
                    color=style.color,
                    linestyle=linestyle,
                    label=label,
                    alpha=1.0 if mode == "equal epochs" else 0.6,
                )
        misfits = [
            r["q"]
            for r in rows
            if r["method"] == method and r.get("status") == "does not fit" and r["mode"] == "equal epochs"
        ]
        if misfits:  # crosses below the lowest accuracy, one row per method so they do not hide each other
            ax.plot(
                misfits,
                [floor - 1.0 - 0.5 * methods.index(method)] * len(misfits),
                "x",
                color=style.color,
                markersize=9,
                label=f"{method}: does not fit",
            )
        at_ref = [r for r in done if r["method"] == method and r["mode"] == "equal epochs" and r["q"] == q_ref]
        std = (spread.get(method) or {}).get("linear_std", math.nan)
        if at_ref and not math.isnan(std) and (spread.get(method) or {}).get("n", 0) > 1:
            ax.errorbar([q_ref], [_num(at_ref[0]["linear"])], yerr=[std], color=style.color, capsize=4, linewidth=1.5)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("embedding dimension q (log scale)")
    ax.set_ylabel("test linear top-1 (%)")
    ax.set_title("accuracy vs q (error bar: seed spread at the reference q)", fontsize=8)


def _accuracy_vs_cost(ax: Any, rows: Sequence[Mapping[str, Any]], cost: str, label: str) -> None:
    done, seen = [], set()
    for r in rows:  # an equal-time run that *is* the equal-epoch run (same folder) is drawn once
        if (
            r.get("status") == "done"
            and not math.isnan(_num(r.get(cost)))
            and (r["method"], r.get("setting")) not in seen
        ):
            seen.add((r["method"], r.get("setting")))
            done.append(r)
    for method, front in fronts(done, cost).items():
        style = style_of(method)
        mine = [r for r in done if r["method"] == method]
        on_front = {id(r) for r in front}
        # filled: on the method's Pareto front; hollow: beaten by a cheaper, at least as accurate run
        for filled in (False, True):
            pts = [r for r in mine if (id(r) in on_front) == filled]
            ax.scatter(
                [_num(r[cost]) for r in pts],
                [_num(r["linear"]) for r in pts],
                marker=style.marker,
                facecolors=style.color if filled else "none",
                edgecolors=style.color,
                label=f"{method} (filled: Pareto front)" if filled else None,
            )
        for r in mine:
            ax.annotate(
                f"{r['q']}{'*' if r['mode'] == 'equal time' else ''}",
                (_num(r[cost]), _num(r["linear"])),
                fontsize=6,
                xytext=(3, 2),
                textcoords="offset points",
            )
        if len(front) > 1:
            ax.plot(
                [_num(r[cost]) for r in front],
                [_num(r["linear"]) for r in front],
                color=style.color,
                linestyle=style.linestyle,
                drawstyle="steps-post",
            )
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(_plain_numbers())
    ax.xaxis.set_minor_formatter(_plain_numbers(minor=True))
    ax.set_xlabel(label)
    ax.set_ylabel("test linear top-1 (%)")
    ax.set_title("labels: q (* = equal-time run)", fontsize=8)


def plot_sweep(
    rows: Sequence[Mapping[str, Any]],
    baseline: Mapping[str, float],
    spread: Mapping[str, Mapping[str, float]],
    q_ref: int,
    path: str | os.PathLike,
) -> Path:
    """The sweep figure (module docstring) written to ``path``."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    _accuracy_vs_q(axes[0], rows, baseline, spread, q_ref)
    _accuracy_vs_cost(axes[1], rows, "wall_time_s", "pretraining wall time (s, log scale)")
    _accuracy_vs_cost(axes[2], rows, "peak_memory_mb", "peak resident memory of the worker (MiB, log scale)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=6, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)

"""Tables and figures of a profile: markdown tables and PNG plots (matplotlib, imported lazily).

Every contender and method is drawn with the style and label of its registry entry
(:mod:`sfrik_plugin.contenders.registry`), so a newly registered baseline needs nothing here.

Example:
    >>> print(markdown_table([{"q": 8, "t": 0.5}], [("q", "q", "d"), ("t", "time (s)", ".2f")]))
    | q | time (s) |
    |---|---|
    | 8 | 0.50 |
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..contenders.registry import CONTENDERS, TRAIN_METHODS, PlotStyle
from .analysis import rows_ok

__all__ = ["markdown_table", "style_and_label", "plot_loss", "plot_train"]

_UNKNOWN_STYLE = PlotStyle("black", "o", "-")


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, Callable[[Any], str] | str]]
) -> str:
    """A GitHub markdown table: ``columns`` are ``(key, header, format)`` with a format spec
    (``".3f"``) or a function; missing values print as ``–``.

    Example:
        >>> print(markdown_table([{"q": 8, "t": 0.5}], [("q", "q", "d"), ("t", "time (s)", ".2f")]))
        | q | time (s) |
        |---|---|
        | 8 | 0.50 |
    """
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            if callable(fmt):
                cells.append(fmt(value) if value is not None else "–")
            elif value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
                cells.append("–")
            else:
                cells.append(format(value, fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def style_and_label(name: str, registry: Mapping[str, Any] = CONTENDERS) -> tuple[PlotStyle, str]:
    """The plot style and label of a registry entry; black and the bare name for one no longer
    registered (rows read back from an older run).

    Example:
        >>> style_and_label("vicreg")[0].color, style_and_label("gone")
        ('tab:red', (PlotStyle(color='black', marker='o', linestyle='-'), 'gone'))
    """
    entry = registry.get(name)
    return (entry.style, entry.label) if entry is not None else (_UNKNOWN_STYLE, name)


def _in_registry_order(names: set[str], registry: Mapping[str, Any]) -> list[str]:
    return [n for n in registry if n in names] + sorted(n for n in names if n not in registry)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _save(plt, figure, path: str | os.PathLike, title: str) -> Path:
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def _draw_loss_line(time_axis, memory_axis, rows, summary, contender: str, n: int) -> None:
    """One contender at one N: measured time and memory vs q, and × marks for what did not run."""
    style, label = style_and_label(contender)
    ok = sorted(rows_ok(rows, contender=contender, N=n), key=lambda r: r["q"])
    fit = summary["slopes"].get(contender, {}).get(str(n), {})
    line = dict(color=style.color, marker=style.marker, linestyle=style.linestyle)
    for axis, key, kind in ((time_axis, "median_s", "time"), (memory_axis, "peak_mib", "memory")):
        points = [(r["q"], r[key]) for r in ok if r.get(key)]
        if not points:
            continue
        text = label + (f"  slope {fit[kind]['slope']:.2f}" if kind in fit else "")
        axis.plot([p[0] for p in points], [p[1] for p in points], label=text, **line)
        if key == "median_s":
            low = [r["median_s"] - r["min_s"] for r in ok]
            high = [r["max_s"] - r["median_s"] for r in ok]
            axis.errorbar(
                [r["q"] for r in ok],
                [r["median_s"] for r in ok],
                yerr=[low, high],
                color=style.color,
                linestyle="none",
                capsize=2,
            )
    missing = [r for r in rows if r["contender"] == contender and r["N"] == n and r.get("status") != "ok"]
    if missing and ok:
        top = max(r["median_s"] for r in ok)
        time_axis.scatter([r["q"] for r in missing], [top * 1.6] * len(missing), color=style.color, marker="x", s=60)
        predicted = [r for r in missing if r.get("predicted_mib")]
        memory_axis.scatter(
            [r["q"] for r in predicted], [r["predicted_mib"] for r in predicted], color=style.color, marker="x", s=60
        )


def _draw_ratios(ratio_axis, summary, n: int) -> None:
    """Baseline / reference time and memory ratios vs q, and why the baseline did not run."""
    ratios = [e for e in summary["ratios"] if e["N"] == n and "time_ratio" in e]
    if ratios:
        ratio_axis.plot(
            [e["q"] for e in ratios], [e["time_ratio"] for e in ratios], "o-", color="tab:green", label="time"
        )
        mem = [e for e in ratios if "memory_ratio" in e]
        ratio_axis.plot(
            [e["q"] for e in mem], [e["memory_ratio"] for e in mem], "s--", color="tab:brown", label="memory"
        )
        for e in ratios:
            ratio_axis.annotate(
                f"{e['time_ratio']:.0f}×",
                (e["q"], e["time_ratio"]),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
        missing = [e for e in summary["ratios"] if e["N"] == n and "time_ratio" not in e]
        for index, e in enumerate(sorted(missing, key=lambda e: e["q"])):
            ratio_axis.annotate(
                f"q={e['q']}:\n{summary['baseline']} {e['baseline_status']}",
                (0.03, 0.97 - 0.12 * index),
                xycoords="axes fraction",
                va="top",
                fontsize=8,
                color="tab:red",
            )
    baseline, reference = (style_and_label(summary[k])[1] for k in ("baseline", "reference"))
    ratio_axis.set(
        yscale="log",
        xlabel="q (embedding dimension)",
        ylabel=f"{summary['baseline']} / {summary['reference']}",
        title=f"{baseline} / {reference}, N = {n}",
    )
    ratio_axis.set_xscale("log", base=2)
    ratio_axis.axhline(1.0, color="k", linewidth=0.8)
    ratio_axis.grid(True, which="both", alpha=0.3)
    ratio_axis.legend(fontsize=8)


def plot_loss(
    rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], path: str | os.PathLike, title: str = ""
) -> Path | None:
    """PNG with, per batch size N, time vs q and memory vs q (log–log, fitted slopes in the legend;
    configurations that did not run marked with ×, at their predicted memory) and the
    baseline/reference ratios. Returns None without matplotlib.

    Example (``rows`` from :func:`~sfrik_plugin.profiler.analysis.result_row`)::

        plot_loss(rows, loss_summary(rows), "bench-results/profile_loss.png")
    """
    plt = _pyplot()
    if plt is None:
        return None
    sizes = sorted({r["N"] for r in rows})
    figure, axes = plt.subplots(len(sizes), 3, figsize=(16, 4.6 * len(sizes)), squeeze=False)
    contenders = _in_registry_order({r["contender"] for r in rows}, CONTENDERS)
    for (time_axis, memory_axis, ratio_axis), n in zip(axes, sizes):
        for contender in contenders:
            _draw_loss_line(time_axis, memory_axis, rows, summary, contender, n)
        time_axis.set(ylabel="forward + backward (s)", title=f"time, N = {n}")
        memory_axis.set(ylabel="peak memory (MiB)", title=f"memory, N = {n}  (× = not run; memory: predicted)")
        for axis in (time_axis, memory_axis):
            axis.set(xlabel="q (embedding dimension)", yscale="log")
            axis.set_xscale("log", base=2)
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize=8)
        _draw_ratios(ratio_axis, summary, n)
    return _save(plt, figure, path, title)


def plot_train(
    rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], path: str | os.PathLike, title: str = ""
) -> Path | None:
    """PNG: images/s vs q and peak memory vs q per method, and the reference's step-time gain over
    the baseline. Returns None without matplotlib.

    Example (``rows`` with ``images_per_s``, as ``scripts/profile_train.py`` writes them)::

        plot_train(rows, train_summary(rows), "bench-results/profile_train.png")
    """
    plt = _pyplot()
    if plt is None:
        return None
    figure, (speed_axis, memory_axis, gain_axis) = plt.subplots(1, 3, figsize=(16, 4.6))
    for method in _in_registry_order({r["method"] for r in rows}, TRAIN_METHODS):
        ok = sorted(rows_ok(rows, method=method), key=lambda r: r["q"])
        if not ok:
            continue
        style, label = style_and_label(method, TRAIN_METHODS)
        line = dict(color=style.color, marker=style.marker, linestyle=style.linestyle, label=label)
        speed_axis.plot([r["q"] for r in ok], [r["images_per_s"] for r in ok], **line)
        memory_axis.plot([r["q"] for r in ok], [r["peak_mib"] for r in ok], **line)
    per_q = summary["per_q"]
    if per_q:
        finite = [e["speedup_percent"] if math.isfinite(e["speedup_percent"]) else 0.0 for e in per_q]
        colors = ["tab:green" if v >= 0 else "tab:red" for v in finite]
        gain_axis.bar([str(e["q"]) for e in per_q], finite, color=colors)
        for i, e in enumerate(per_q):
            if math.isfinite(e["speedup_percent"]):
                text, height = f"{e['speedup_percent']:+.0f} %", e["speedup_percent"]
            else:
                text, height = f"{summary['baseline']}:\n{e['baseline_status']}", 0.0
            gain_axis.annotate(text, (i, height), ha="center", va="bottom", fontsize=8)
    reference, baseline = (style_and_label(summary[k], TRAIN_METHODS)[1] for k in ("reference", "baseline"))
    speed_axis.set(xlabel="q", ylabel="images / s (2 views each)", title="training throughput")
    memory_axis.set(xlabel="q", yscale="log", ylabel="peak memory (MiB)", title="training-step peak memory")
    gain_axis.set(
        xlabel="q",
        ylabel=f"{reference} faster than {baseline} (%)",
        title=f"{reference} step-time gain over {baseline}",
    )
    gain_axis.axhline(0, color="k", linewidth=0.8)
    for axis in (speed_axis, memory_axis):
        axis.set_xscale("log", base=2)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    return _save(plt, figure, path, title)

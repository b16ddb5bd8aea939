"""The N-sweep's markdown table and its plot (time and memory against N, crossovers marked).

Rows are those of ``scripts/profile_n_sweep.py`` (``method``, ``N``, ``q``, ``status``,
``median_s``, ``peak_mib``, ``reason``); crossovers those of
:func:`~sfrik_plugin.profiler.n_sweep.crossovers`. matplotlib is imported inside
:func:`plot_n_sweep`.

Example:
    >>> rows = [dict(method="sfrik-gram", N=64, q=8, status="ok", median_s=0.01, peak_mib=1.0),
    ...         dict(method="sigreg-m256", N=64, q=8, status="skipped", reason="does not fit (predicted 9 GiB x 1.5 > budget 8 GiB)")]
    >>> print(n_sweep_table(rows, "median_s", "{:.3g}"))
    | q | N | SFRIK gram | SIGReg M=256 |
    |---|---|---|---|
    | 8 | 64 | 0.01 | does not fit (predicted 9 GiB) |
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["method_label", "n_sweep_table", "crossover_table", "plot_n_sweep"]

_SFRIK_STYLE = {
    "sfrik-gram": ("tab:blue", "o", "-"),
    "sfrik-blocked": ("tab:cyan", "s", "--"),
    "sfrik-sharded": ("tab:purple", "D", ":"),
}
_SIGREG_COLOURS = ("tab:olive", "tab:green", "darkgreen", "black")


def method_label(method: str, world_size: int = 2) -> str:
    """Column and legend label of a sweep method.

    Example:
        >>> method_label("sigreg-m1024"), method_label("sfrik-sharded")
        ('SIGReg M=1024', 'SFRIK sharded (per rank, W=2)')
    """
    if method.startswith("sigreg-m"):
        return f"SIGReg M={method[len('sigreg-m') :]}"
    path = method.removeprefix("sfrik-")
    return f"SFRIK {path} (per rank, W={world_size})" if path == "sharded" else f"SFRIK {path}"


def _order(methods: set[str]) -> list[str]:
    sfrik = [m for m in _SFRIK_STYLE if m in methods]
    sigreg = sorted((m for m in methods if m.startswith("sigreg-m")), key=lambda m: int(m[len("sigreg-m") :]))
    return sfrik + sigreg + sorted(methods - set(sfrik) - set(sigreg))


def _cell(row: Mapping[str, Any] | None, key: str, fmt: str) -> str:
    if row is None:
        return "–"
    if row.get("status") == "ok" and row.get(key) not in (None, ""):
        return fmt.format(float(row[key]))
    reason = str(row.get("reason") or row.get("status") or "–")
    return re.sub(r" x [0-9.]+ > budget [^)]*\)", ")", reason)  # "does not fit (predicted 9 GiB)"


def n_sweep_table(rows: Sequence[Mapping[str, Any]], key: str, fmt: str, world_size: int = 2) -> str:
    """A markdown table: one line per (q, N), one column per method, ``key`` formatted by ``fmt``
    where measured, the reason where not."""
    methods = _order({str(r["method"]) for r in rows})
    by = {(str(r["method"]), int(r["q"]), int(r["N"])): r for r in rows}
    lines = [
        "| q | N | " + " | ".join(method_label(m, world_size) for m in methods) + " |",
        "|---|---|" + "---|" * len(methods),
    ]
    for q in sorted({int(r["q"]) for r in rows}):
        for n in sorted({int(r["N"]) for r in rows if int(r["q"]) == q}):
            cells = [_cell(by.get((m, q, n)), key, fmt) for m in methods]
            lines.append(f"| {q} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def crossover_table(found: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: predicted, measured and (where the sweep stops short) extrapolated crossover N
    per (q, M).

    Example:
        >>> print(crossover_table([dict(q=8, M=16, predicted_n=20.0, measured_n=None, how="SFRIK faster")]))
        | q | M | predicted N* (flop model) | measured N* | extrapolated N* | how |
        |---|---|---|---|---|---|
        | 8 | 16 | 20 | – | – | SFRIK faster |
    """
    lines = [
        "| q | M | predicted N* (flop model) | measured N* | extrapolated N* | how |",
        "|---|---|---|---|---|---|",
    ]

    def number(value: Any) -> str:
        return "–" if value is None else f"{float(value):.0f}"

    for f in found:
        lines.append(
            f"| {f['q']} | {f['M']} | {number(f['predicted_n'])} | {number(f.get('measured_n'))} | "
            f"{number(f.get('extrapolated_n'))} | {f['how']} |"
        )
    return "\n".join(lines)


def _style(method: str, index: int) -> tuple[str, str, str]:
    if method in _SFRIK_STYLE:
        return _SFRIK_STYLE[method]
    return _SIGREG_COLOURS[index % len(_SIGREG_COLOURS)], "X", "-"


def plot_n_sweep(
    rows: Sequence[Mapping[str, Any]],
    found: Sequence[Mapping[str, Any]],
    path: str | Path,
    title: str = "",
    world_size: int = 2,
) -> Path | None:
    """PNG: per q, time per forward + backward and peak memory against N (log–log), one line per
    method; × at the top of the axis where a configuration did not run; per M the measured
    crossover (solid vertical line), the extrapolated one (dashed) and the predicted one (dotted). ``None`` without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    dims = sorted({int(r["q"]) for r in rows})
    methods = _order({str(r["method"]) for r in rows})
    figure, axes = plt.subplots(2, len(dims), figsize=(6.2 * len(dims), 8.0), squeeze=False)
    for column, q in enumerate(dims):
        time_axis, memory_axis = axes[0][column], axes[1][column]
        sigreg_index = 0
        colours = {}
        for method in methods:
            mine = sorted((r for r in rows if r["method"] == method and int(r["q"]) == q), key=lambda r: int(r["N"]))
            colour, marker, line = _style(method, sigreg_index)
            sigreg_index += method.startswith("sigreg-m")
            colours[method] = colour
            ok = [r for r in mine if r.get("status") == "ok" and r.get("median_s")]
            label = method_label(method, world_size)
            for axis, key in ((time_axis, "median_s"), (memory_axis, "peak_mib")):
                points = [
                    (int(r["N"]), float(r[key])) for r in ok if r.get(key) not in (None, "") and float(r[key]) > 0
                ]
                if points:
                    axis.plot(*zip(*points), marker=marker, linestyle=line, color=colour, label=label, markersize=5)
                missing = [int(r["N"]) for r in mine if r.get("status") != "ok"]
                if missing:
                    axis.plot(missing, [1.0] * len(missing), "x", color=colour, transform=axis.get_xaxis_transform())
        for f in (f for f in found if int(f["q"]) == q):
            colour = colours.get(f"sigreg-m{f['M']}", "gray")
            for axis in (time_axis, memory_axis):
                axis.axvline(float(f["predicted_n"]), color=colour, linestyle=":", linewidth=1)
                if f.get("measured_n") is not None:
                    axis.axvline(float(f["measured_n"]), color=colour, linestyle="-", linewidth=1.5, alpha=0.6)
                if f.get("extrapolated_n") is not None:
                    axis.axvline(float(f["extrapolated_n"]), color=colour, linestyle="--", linewidth=1, alpha=0.6)
        for axis, what in ((time_axis, "seconds per forward + backward"), (memory_axis, "peak MiB above inputs")):
            axis.set_xscale("log", base=2)
            axis.set_yscale("log")
            axis.set_xlabel("batch N")
            axis.set_ylabel(what)
            axis.grid(True, which="both", alpha=0.3)
        time_axis.set_title(
            f"q = {q}: time; crossover N*: solid measured, dashed extrapolated, dotted flop model", fontsize=8
        )
        memory_axis.set_title(f"q = {q}: tensor-allocation peak (x at top: not run)", fontsize=8)
        time_axis.legend(fontsize=7)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path

"""The measuring loop of the profiling scripts: a grid of configurations, round after round.

Every configuration is one name (a loss contender or a training method) at one point of the grid
(e.g. ``(N, q)`` or ``(q,)``). :func:`run_grid` visits the grid ``rounds`` times, the names in a
rotated order at each point (so that no name is always measured first, on a cooler or warmer
machine), and for each configuration:

1. predicts its memory and reports it as ``does-not-fit`` instead of running it when the
   prediction (times the safety factor) exceeds the budget;
2. asks ``skip`` (first round only) whether to report it as ``skipped`` (e.g. predicted too slow);
3. runs ``worker(spec)`` in a fresh process (:func:`~sfrik_plugin.profiler.isolation.run_isolated`);
4. pools the samples and memory peaks of later rounds into the first round's result; a
   configuration that did not run ``ok`` in the first round is not tried again.

``scripts/profile_loss.py`` and ``scripts/profile_train.py`` are this loop with their own grid,
worker and spec.

Example:
    >>> def fake_worker(spec):
    ...     return {"status": "ok", "samples": [spec["q"] / 1000], "peak_bytes": spec["q"]}
    >>> cells = run_grid(
    ...     [(64,), (128,)], ["a", "b"], rounds=2, budget=10**9,
    ...     predict=lambda name, point: 1, spec=lambda name, point: {"q": point[0]},
    ...     worker=fake_worker, run=lambda worker, spec: worker(spec), progress=False,
    ... )
    >>> [(c.name, c.point, len(c.result["samples"])) for c in cells]
    [('a', (64,), 2), ('b', (64,), 2), ('a', (128,), 2), ('b', (128,), 2)]
"""

from __future__ import annotations

import statistics
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from ..contenders.memory import fit_verdict
from .isolation import run_isolated

__all__ = ["GridCell", "rotated", "run_grid"]

#: the result keys that are peaks: pooled by their maximum over rounds
PEAK_KEYS = ("peak_bytes", "alloc_peak_bytes")


@dataclass
class GridCell:
    """One configuration: its name, grid point, predicted bytes and (pooled) result."""

    name: str
    point: tuple
    predicted: int
    result: dict[str, Any]

    @property
    def median_s(self) -> float | None:
        """Median of the pooled samples, ``None`` when it did not run ``ok``."""
        if self.result.get("status") != "ok" or not self.result.get("samples"):
            return None
        return statistics.median(self.result["samples"])


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """The names in the order of round ``round_index``: rotated by one place per round.

    Example:
        >>> rotated(["a", "b", "c"], 1)
        ['b', 'c', 'a']
    """
    shift = round_index % len(names) if names else 0
    return list(names[shift:]) + list(names[:shift])


def _pool(first: dict[str, Any], later: dict[str, Any]) -> None:
    first["samples"] = first["samples"] + later["samples"]
    for key in PEAK_KEYS:
        if later.get(key) is not None:
            first[key] = max(first.get(key) or 0, later[key])


def run_grid(
    points: Sequence[tuple],
    names: Sequence[str],
    rounds: int,
    *,
    budget: int,
    predict: Callable[[str, tuple], int],
    spec: Callable[[str, tuple], dict],
    worker: Callable[[dict], dict],
    skip: Callable[[str, tuple, dict[tuple, float]], str | None] | None = None,
    line: Callable[[GridCell, dict], str] | None = None,
    run: Callable[..., dict] | None = None,
    timeout: float | None = None,
    context: Any = None,
    progress: bool = True,
    description: str = "configurations",
) -> list[GridCell]:
    """Measures every ``(name, point)`` ``rounds`` times (module docstring); returns the cells in
    the order they were first visited.

    Args:
        points: the grid points, each a tuple (e.g. ``(n, q)``).
        names: the contenders or methods, rotated per round.
        budget: bytes one configuration may use (:func:`sfrik_plugin.contenders.memory_budget`).
        predict: ``(name, point) -> bytes`` (the contender's memory model).
        spec: ``(name, point) -> the worker's spec``.
        worker: the function run in a fresh process (:func:`~.workers.loss_worker`, ...).
        skip: ``(name, point, medians) -> reason or None``, asked before a first run; ``medians``
            maps ``(name, *point)`` to the median seconds measured so far.
        line: ``(cell, this round's result) -> text`` printed after each configuration.
        run: how a worker is run, ``run(worker, spec)`` (default: :func:`run_isolated` with
            ``timeout`` and ``context``).
        progress: show a progress bar on stderr.
    """
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    if run is None:

        def run(worker: Callable[[dict], dict], spec: dict) -> dict:
            return run_isolated(worker, spec, timeout=timeout, context=context)

    cells: dict[tuple, GridCell] = {}
    medians: dict[tuple, float] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=rounds * len(points) * len(names), desc=description, file=sys.stderr, dynamic_ncols=True)
    write = bar.write if bar is not None else print
    for round_index in range(rounds):
        for point in points:
            for name in rotated(names, round_index):
                key = (name, *point)
                if bar is not None:
                    bar.set_postfix_str(f"{name} {point}")
                cell = cells.get(key)
                if cell is not None and cell.result["status"] != "ok":
                    if bar is not None:
                        bar.update()
                    continue  # decided in the first round
                predicted = int(predict(name, point)) if cell is None else cell.predicted
                fits, reason = fit_verdict(predicted, budget)
                why_skip = skip(name, point, medians) if (fits and cell is None and skip is not None) else None
                if not fits:
                    result: dict[str, Any] = {"status": "does-not-fit", "reason": reason}
                elif why_skip is not None:
                    result = {"status": "skipped", "reason": why_skip}
                else:
                    result = run(worker, spec(name, point))
                if cell is None:
                    cells[key] = cell = GridCell(name, tuple(point), predicted, result)
                elif result["status"] == "ok":  # pool the samples of a later round
                    _pool(cell.result, result)
                median = cell.median_s
                if median is not None:
                    medians[key] = median
                if bar is not None:
                    bar.update()
                if line is not None:
                    write(line(cell, result))
    if bar is not None:
        bar.close()
    return list(cells.values())

"""Hyper-parameter selection that does not stop at the edge of its grid.

A method's grid is a list of settings (``{key: value}``). Selection takes the setting with the best
mean validation accuracy over the tuning seeds (ties: the first in grid order). When that setting
sits on an edge of the grid, the grid is extended geometrically on that side — the edge value times
the ratio to its neighbour (1000, 4000, 16000 → 64000) — and the new setting is evaluated, until the
best is inside the grid or ``max_extensions`` settings were added. Extension needs a grid that is
one geometric family: the same keys in every setting, positive numbers, every varying key strictly
monotone along the sorted order (several keys may move together, e.g. VICReg's sim and var weights).
A key with an open interval of valid values (``bounds``, e.g. LeJEPA's λ in (0, 1)) never steps out
of it: an extension that would reach or pass a bound goes halfway, in log scale, from the edge value
to the bound instead (0.2 → 0.8 → √0.8 ≈ 0.894 under the bound 1, never 1 or 3.2).

:func:`tune` is pure: it takes a score function (``None`` = not evaluated yet) and says which
settings still need runs, so a runner calls it until nothing is pending, and a report calls it
again on the finished results to get the same answer (the extensions are a function of the
scores, nothing else is stored).

Example:
    >>> scores = {1000.0: 75.3, 4000.0: 79.1, 16000.0: 79.3, 64000.0: 78.0}
    >>> grid = [{"c": 1000.0}, {"c": 4000.0}, {"c": 16000.0}]
    >>> state = tune(grid, lambda s: scores.get(s["c"]), max_extensions=2)
    >>> state.chosen, state.edge, [p.origin for p in state.points]
    ({'c': 16000.0}, None, ['grid', 'grid', 'grid', 'extension 1 (upper)'])
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..files.records import read_json
from .plan import Run, method_grid, tune_seeds

__all__ = [
    "GridPoint",
    "TuningState",
    "grid_order",
    "edge_side",
    "extend_setting",
    "tune",
    "validation_scores",
    "method_state",
]


@dataclass(frozen=True)
class GridPoint:
    """A setting of the (possibly extended) grid, its mean score and where it came from."""

    setting: dict[str, Any]
    origin: str  # "grid" or "extension <k> (<side>)"
    score: float | None = None


@dataclass
class TuningState:
    """Where the selection of one method stands.

    ``pending``: settings that still need validation scores (empty when selection is final);
    ``chosen``: the best setting so far (None while a score is missing); ``edge``: ``"lower"`` or
    ``"upper"`` when the final choice still sits on that edge of the grid (extension limit reached
    or grid not extendable), else None; ``note``: the same in words, for tables.
    """

    points: list[GridPoint]
    pending: list[dict[str, Any]] = field(default_factory=list)
    chosen: dict[str, Any] | None = None
    edge: str | None = None
    note: str = ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def grid_order(grid: Sequence[Mapping[str, Any]]) -> list[int] | None:
    """Indices of ``grid`` in ascending order along its axis, or None when the grid is not one
    geometric family that can be extended (see the module docstring).

    Example:
        >>> grid_order([{"a": 4.0}, {"a": 1.0}, {"a": 16.0}])
        [1, 0, 2]
        >>> grid_order([{"a": 1.0, "b": 1.0}, {"a": 2.0, "b": 3.0}, {"a": 4.0, "b": 2.0}]) is None  # b turns back
        True
    """
    if len(grid) < 2 or not grid[0]:
        return None
    keys = set(grid[0])
    if any(set(s) != keys for s in grid):
        return None
    if not all(_is_number(s[k]) and s[k] > 0 for s in grid for k in keys):
        return None
    varying = sorted(k for k in keys if len({s[k] for s in grid}) > 1)
    if not varying:
        return None
    order = sorted(range(len(grid)), key=lambda i: grid[i][varying[0]])
    for key in varying:
        values = [grid[i][key] for i in order]
        steps = [b - a for a, b in zip(values, values[1:])]
        if not (all(d > 0 for d in steps) or all(d < 0 for d in steps)):
            return None
    return order


def edge_side(grid: Sequence[Mapping[str, Any]], index: int) -> str | None:
    """``"lower"`` / ``"upper"`` when ``grid[index]`` is the first / last setting along the axis,
    None when it is inside (or the grid has no axis).

    Example:
        >>> edge_side([{"a": 1.0}, {"a": 2.0}, {"a": 4.0}], 2), edge_side([{"a": 1.0}, {"a": 2.0}, {"a": 4.0}], 1)
        ('upper', None)
    """
    order = grid_order(grid)
    if order is None:
        return None
    if index == order[0]:
        return "lower"
    if index == order[-1]:
        return "upper"
    return None


def _round(value: float, like: Sequence[Any]) -> int | float:
    # 6 significant digits keep folder names readable (0.002 / 2.55 -> 0.000784314, not 0.00078431372...)
    rounded = float(f"{value:.6g}")
    if all(isinstance(v, int) for v in like) and rounded.is_integer():
        return int(rounded)
    return rounded


def _bounded(value: float, edge: float, bound: tuple[float, float] | None) -> float:
    """``value`` when it lies strictly inside ``bound``; else the geometric midpoint of ``edge`` and the
    bound it reached (a bound of 0 is never reached by a geometric step down from a positive edge)."""
    if bound is None:
        return value
    low, high = bound
    if value >= high:
        return (edge * high) ** 0.5
    if value <= low:
        return (edge * low) ** 0.5
    return value


def extend_setting(
    grid: Sequence[Mapping[str, Any]], side: str, bounds: Mapping[str, Sequence[float]] | None = None
) -> dict[str, Any]:
    """The next setting beyond the ``side`` edge: each varying key times the edge-to-neighbour ratio,
    kept strictly inside its open interval ``bounds[key] = (low, high)`` when it has one.

    Example:
        >>> extend_setting([{"a": 0.002}, {"a": 0.0051}, {"a": 0.01}], "lower")
        {'a': 0.000784314}
        >>> extend_setting([{"w": 10, "v": 25}, {"w": 20, "v": 25}], "upper")
        {'v': 25, 'w': 40}
        >>> extend_setting([{"lam": 0.05}, {"lam": 0.2}, {"lam": 0.8}], "upper", bounds={"lam": (0.0, 1.0)})
        {'lam': 0.894427}
    """
    if side not in ("lower", "upper"):
        raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")
    order = grid_order(grid)
    if order is None:
        raise ValueError(f"the grid {list(grid)} is not one geometric family; it cannot be extended")
    edge, neighbour = (grid[order[0]], grid[order[1]]) if side == "lower" else (grid[order[-1]], grid[order[-2]])
    out: dict[str, Any] = {}
    for key in sorted(edge):
        if edge[key] == neighbour[key]:
            out[key] = edge[key]
        else:
            bound = (float(bounds[key][0]), float(bounds[key][1])) if bounds and key in bounds else None
            value = _bounded(edge[key] * (edge[key] / neighbour[key]), edge[key], bound)
            out[key] = _round(value, [s[key] for s in grid])
    return out


def tune(
    grid: Sequence[Mapping[str, Any]],
    score: Callable[[dict[str, Any]], float | None],
    max_extensions: int = 2,
    bounds: Mapping[str, Sequence[float]] | None = None,
) -> TuningState:
    """Selection with edge extension (module docstring), as far as the available scores allow.

    ``score(setting)``: the mean validation accuracy of a setting, or None if it has not been
    evaluated yet; ``bounds``: open intervals that extensions stay inside (:func:`extend_setting`).
    Returns the state: what is pending, the choice, and whether it is on an edge.
    """
    if max_extensions < 0:
        raise ValueError(f"max_extensions must be >= 0, got {max_extensions}")
    settings = [dict(s) for s in grid]
    origins = ["grid"] * len(settings)
    while True:
        scores = [score(s) for s in settings]
        points = [GridPoint(s, o, v) for s, o, v in zip(settings, origins, scores)]
        pending = [s for s, v in zip(settings, scores) if v is None]
        if pending:
            return TuningState(points, pending=pending, note="waiting for validation scores")
        best = max(range(len(settings)), key=lambda i: (scores[i], -i))  # ties: the first in grid order
        side = edge_side(settings, best)
        if side is None:
            extendable = len(settings) < 2 or grid_order(settings) is not None
            note = "inside the grid" if extendable else "grid not extendable (not one geometric family)"
            if len(settings) == 1:
                note = "single setting (no tuning)"
            return TuningState(points, chosen=settings[best], note=note)
        extensions = len(settings) - len(grid)
        if extensions >= max_extensions:
            note = f"{side} edge: extension limit ({max_extensions}) reached"
            return TuningState(points, chosen=settings[best], edge=side, note=note)
        settings.append(extend_setting(settings, side, bounds))
        origins.append(f"extension {extensions + 1} ({side})")


def validation_scores(
    root: str | os.PathLike, method: str, setting: Mapping[str, Any], seeds: Sequence[int], metric: str = "linear"
) -> list[float | None]:
    """The validation top-1 (``metric``: linear or knn) of a setting's tuning runs, one per seed (None: not finished)."""
    scores: list[float | None] = []
    for seed in seeds:
        result = read_json(Run(root, method, setting, seed).dir / "eval_val.json")
        scores.append(None if result is None else float(result[metric]["acc1"]))
    return scores


def method_state(cfg: Mapping[str, Any], root: str | os.PathLike, method: str) -> TuningState:
    """:func:`tune` of one method of a benchmark config on the validation results found under ``root``."""
    tuning = cfg.get("tuning") or {}
    metric = tuning.get("metric", "linear")
    seeds = tune_seeds(cfg)

    def score(setting: dict[str, Any]) -> float | None:
        values = validation_scores(root, method, setting, seeds, metric)
        if any(v is None for v in values):
            return None
        return sum(v for v in values if v is not None) / len(values)

    bounds = cfg["methods"][method].get("bounds") or None
    return tune(method_grid(cfg, method), score, int(tuning.get("max_extensions", 2)), bounds)

"""The profiling scripts' one measuring loop (sfrik_plugin/profiler/grid.py), run in-process."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from sfrik_plugin.contenders.memory import SAFETY_FACTOR
from sfrik_plugin.profiler.grid import rotated, run_grid

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


def _grid(points, names, rounds, results, predict=lambda name, point: 1, skip=None, budget=10**9):
    """Runs the grid with an in-process 'worker' that replays ``results[(name, *point)]`` round by round."""
    calls, lines = [], []

    def worker(spec):
        calls.append(spec["key"])
        return dict(results[spec["key"]].pop(0))

    cells = run_grid(
        points,
        names,
        rounds,
        budget=budget,
        predict=predict,
        spec=lambda name, point: {"key": (name, *point)},
        worker=worker,
        skip=skip,
        line=lambda cell, result: lines.append((cell.name, cell.point, result["status"])) or "",
        run=lambda worker, spec: worker(spec),
        progress=False,
    )
    return cells, calls, lines


def test_names_are_rotated_each_round_and_samples_pooled():
    ok = lambda *samples, peak=0: {"status": "ok", "samples": list(samples), "peak_bytes": peak}  # noqa: E731
    results = {
        ("a", 8): [ok(1.0, peak=10), ok(3.0, peak=30)],
        ("b", 8): [ok(2.0, peak=20), ok(4.0, peak=5)],
        ("c", 8): [ok(5.0), ok(6.0)],
    }
    cells, calls, lines = _grid([(8,)], ["a", "b", "c"], 2, results)
    assert calls == [("a", 8), ("b", 8), ("c", 8), ("b", 8), ("c", 8), ("a", 8)]
    assert [(c.name, c.result["samples"], c.result["peak_bytes"]) for c in cells] == [
        ("a", [1.0, 3.0], 30),
        ("b", [2.0, 4.0], 20),
        ("c", [5.0, 6.0], 0),
    ]
    assert cells[0].median_s == 2.0 and len(lines) == 6


def test_a_configuration_that_fails_or_cannot_fit_is_decided_in_the_first_round():
    results = {("a", 8): [{"status": "oom", "reason": "out of memory"}], ("b", 8): []}
    predicted = {"a": 100, "b": 1000}
    cells, calls, lines = _grid(
        [(8,)], ["a", "b"], 3, results, predict=lambda name, point: predicted[name], budget=int(500 * SAFETY_FACTOR)
    )
    assert calls == [("a", 8)]  # a: run once and never again; b: predicted not to fit, never run
    assert [(c.name, c.result["status"], c.predicted) for c in cells] == [
        ("a", "oom", 100),
        ("b", "does-not-fit", 1000),
    ]
    assert "does not fit" in cells[1].result["reason"]


def test_skip_sees_the_medians_so_far_and_is_asked_before_a_first_run_only():
    ok = lambda s: {"status": "ok", "samples": [s]}  # noqa: E731
    results = {("a", 8): [ok(1.0), ok(1.0)], ("a", 16): [ok(2.0), ok(2.0)], ("a", 32): []}
    asked = []

    def skip(name, point, medians):
        asked.append((point, dict(medians)))
        return "too slow" if point == (32,) else None

    cells, calls, _ = _grid([(8,), (16,), (32,)], ["a"], 2, results, skip=skip)
    assert [p for p, _ in asked] == [(8,), (16,), (32,)]
    assert asked[2][1] == {("a", 8): 1.0, ("a", 16): 2.0}
    assert cells[2].result == {"status": "skipped", "reason": "too slow"} and ("a", 32) not in calls


def test_rotated_and_bad_rounds():
    assert rotated(["a", "b", "c"], 4) == ["b", "c", "a"]
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        _grid([(8,)], ["a"], 0, {})


@pytest.mark.parametrize("script", ["profile_loss.py", "profile_train.py"])
def test_the_profiling_scripts_measure_through_the_grid_driver(script):
    tree = ast.parse((SCRIPTS / script).read_text())
    called = {
        node.func.attr for node in ast.walk(tree) if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
    }
    assert "run_grid" in called
    assert "run_isolated" not in called, "the script runs workers itself instead of through run_grid"

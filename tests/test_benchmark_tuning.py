"""Hyper-parameter selection with grid extension: the axis of a grid, its edges, the geometric
extension, the bounded loop, and the selection from validation results on disk (mean over seeds)."""

from __future__ import annotations

import pytest

from sfrik_plugin.benchmark.plan import Run
from sfrik_plugin.benchmark.tuning import edge_side, extend_setting, grid_order, method_state, tune
from sfrik_plugin.files.records import write_json

SFRIK = [{"c": 1000.0}, {"c": 4000.0}, {"c": 16000.0}]


def _scores(table):
    """A score function from {value of c: score}; values not in the table are not evaluated yet."""
    return lambda setting: table.get(setting["c"])


def test_grid_axis_and_edges():
    assert grid_order([{"c": 16.0}, {"c": 1.0}, {"c": 4.0}]) == [1, 2, 0]
    # several keys moving together (VICReg's sim and var weights) are one axis
    lockstep = [{"s": 25.0, "v": 25.0}, {"s": 15.0, "v": 15.0}]
    assert grid_order(lockstep) == [1, 0] and edge_side(lockstep, 0) == "upper"
    # not one geometric family: a key turning back, different keys, non-numbers, zero, one point
    assert grid_order([{"a": 1.0, "b": 1.0}, {"a": 2.0, "b": 3.0}, {"a": 4.0, "b": 2.0}]) is None
    assert grid_order([{"a": 1.0}, {"b": 2.0}]) is None
    assert grid_order([{"a": "x"}, {"a": "y"}]) is None
    assert grid_order([{"a": 0.0}, {"a": 1.0}]) is None
    assert grid_order([{"a": 1.0}]) is None and grid_order([{}]) is None
    assert [edge_side(SFRIK, i) for i in range(3)] == ["lower", None, "upper"]


def test_geometric_extension_by_hand():
    assert extend_setting(SFRIK, "upper") == {"c": 64000.0}
    assert extend_setting(SFRIK, "lower") == {"c": 250.0}
    # uneven grid: the ratio of the edge to its neighbour (0.0051 / 0.002 = 2.55), 6 significant digits
    assert extend_setting([{"l": 0.002}, {"l": 0.0051}, {"l": 0.01}], "lower") == {"l": 0.000784314}
    assert extend_setting([{"l": 0.002}, {"l": 0.0051}, {"l": 0.01}], "upper") == {"l": 0.0196078}
    # integers stay integers; a key that does not move stays; several keys move by their own ratio
    assert extend_setting([{"w": 10, "k": 3}, {"w": 20, "k": 3}], "upper") == {"k": 3, "w": 40}
    assert extend_setting([{"s": 10.0, "v": 5.0}, {"s": 20.0, "v": 20.0}], "upper") == {"s": 40.0, "v": 80.0}
    with pytest.raises(ValueError, match="side"):
        extend_setting(SFRIK, "middle")
    with pytest.raises(ValueError, match="cannot be extended"):
        extend_setting([{"a": 1.0}], "upper")


def test_a_bounded_key_extends_by_log_midpoints_and_never_reaches_its_bound():
    lam = [{"l": 0.01}, {"l": 0.05}, {"l": 0.2}]
    bounds = {"l": (0.0, 1.0)}
    # inside the bound the step is the plain geometric one (0.2 * 4 = 0.8)
    assert extend_setting(lam, "upper", bounds) == {"l": 0.8}
    # 0.8 * 4 = 3.2 would leave (0, 1): halfway in log scale from 0.8 to 1 instead, then again
    assert extend_setting(lam + [{"l": 0.8}], "upper", bounds) == {"l": pytest.approx(0.8**0.5, abs=1e-6)}
    assert extend_setting([{"l": 0.25}, {"l": 0.5}], "upper", bounds) == {"l": pytest.approx(0.5**0.5, abs=1e-6)}
    # a positive lower bound is met the same way; a lower bound of 0 never is
    assert extend_setting([{"l": 0.2}, {"l": 0.8}], "lower", {"l": (0.1, 1.0)}) == {
        "l": pytest.approx(0.02**0.5, abs=1e-6)
    }
    assert extend_setting(lam, "lower", bounds) == {"l": 0.002}
    # without bounds the same grid steps out of (0, 1)
    assert extend_setting(lam + [{"l": 0.8}], "upper") == {"l": 3.2}
    # through tune: the best at the top edge twice gives 0.8 then 0.894, every value < 1
    state = tune(lam, lambda s: s["l"], max_extensions=2, bounds=bounds)
    assert [round(p.setting["l"], 6) for p in state.points] == [0.01, 0.05, 0.2, 0.8, 0.894427]
    assert state.edge == "upper" and all(p.setting["l"] < 1.0 for p in state.points)


def test_best_inside_the_grid_needs_no_extension():
    state = tune(SFRIK, _scores({1000.0: 70.0, 4000.0: 80.0, 16000.0: 75.0}))
    assert state.chosen == {"c": 4000.0} and state.edge is None and not state.pending
    assert [p.origin for p in state.points] == ["grid"] * 3 and state.note == "inside the grid"


def test_an_upper_edge_extends_until_the_best_is_inside():
    table = {1000.0: 70.0, 4000.0: 79.0, 16000.0: 80.0}
    state = tune(SFRIK, _scores(table))
    assert state.pending == [{"c": 64000.0}] and state.chosen is None  # the runner must evaluate it first
    table[64000.0] = 81.0
    state = tune(SFRIK, _scores(table))
    assert state.pending == [{"c": 256000.0}]
    table[256000.0] = 78.0
    state = tune(SFRIK, _scores(table))
    assert state.chosen == {"c": 64000.0} and state.edge is None and not state.pending
    assert [(p.setting["c"], p.origin, p.score) for p in state.points[3:]] == [
        (64000.0, "extension 1 (upper)", 81.0),
        (256000.0, "extension 2 (upper)", 78.0),
    ]


def test_the_number_of_extensions_is_bounded_and_reported():
    rising = {1000.0 * 4**k: 70.0 + k for k in range(10)}  # the larger the better, forever
    state = tune(SFRIK, _scores(rising), max_extensions=2)
    assert len(state.points) == 5 and not state.pending
    assert state.chosen == {"c": 256000.0} and state.edge == "upper"
    assert state.note == "upper edge: extension limit (2) reached"
    state = tune(SFRIK, _scores(rising), max_extensions=0)
    assert state.chosen == {"c": 16000.0} and state.edge == "upper" and len(state.points) == 3


def test_lower_edge_ties_and_grids_that_cannot_extend():
    state = tune(SFRIK, _scores({250.0: 60.0, 1000.0: 80.0, 4000.0: 70.0, 16000.0: 70.0}))
    assert [p.origin for p in state.points][-1] == "extension 1 (lower)" and state.chosen == {"c": 1000.0}
    # a tie keeps the first in grid order (here the interior value, so no extension)
    state = tune(SFRIK, _scores({1000.0: 70.0, 4000.0: 80.0, 16000.0: 80.0}))
    assert state.chosen == {"c": 4000.0} and len(state.points) == 3
    one = tune([{"c": 5.0}], _scores({5.0: 1.0}))
    assert one.chosen == {"c": 5.0} and one.note == "single setting (no tuning)"
    odd = [{"a": "x", "c": 1.0}, {"a": "y", "c": 2.0}]
    state = tune(odd, lambda s: {"x": 1.0, "y": 2.0}[s["a"]])
    assert state.chosen == odd[1] and state.edge is None and "not extendable" in state.note


def test_selection_from_disk_is_the_mean_over_the_tuning_seeds(tmp_path):
    cfg = {
        "seeds": [0, 1, 2],
        "tune_seeds": [0, 1],
        "tuning": {"metric": "linear", "max_extensions": 1},
        "methods": {"sfrik": {"config": "custom/sfrik", "grid": [{"c": 1.0}, {"c": 2.0}, {"c": 4.0}]}},
    }
    bounded = {**cfg, "methods": {"sfrik": {**cfg["methods"]["sfrik"], "bounds": {"c": [0.0, 5.0]}}}}

    def result(c, seed, acc):
        write_json(
            Run(tmp_path, "sfrik", {"c": c}, seed).dir / "eval_val.json",
            {"linear": {"acc1": acc}, "knn": {"acc1": 0.0}},
        )

    seed0, seed1 = {1.0: 70.0, 2.0: 90.0, 4.0: 74.0}, {1.0: 70.0, 2.0: 60.0, 4.0: 80.0}
    for c, acc in seed0.items():
        result(c, 0, acc)
    state = method_state(cfg, tmp_path, "sfrik")
    assert state.pending == [{"c": 1.0}, {"c": 2.0}, {"c": 4.0}]  # seed 1 missing everywhere
    for c, acc in seed1.items():
        result(c, 1, acc)
    # seed 0 alone would pick 2.0 (inside); the mean over both seeds (70, 75, 77) picks the upper edge
    state = method_state(cfg, tmp_path, "sfrik")
    assert [p.score for p in state.points] == [70.0, 75.0, 77.0, None]
    assert state.pending == [{"c": 8.0}]
    # the method's bounds reach the selection read from disk: 8 would pass 5, so sqrt(4 * 5)
    assert method_state(bounded, tmp_path, "sfrik").pending == [{"c": pytest.approx(20.0**0.5, abs=1e-5)}]
    result(8.0, 0, 72.0)
    assert method_state(cfg, tmp_path, "sfrik").pending == [{"c": 8.0}]  # both seeds are needed
    result(8.0, 1, 72.0)
    state = method_state(cfg, tmp_path, "sfrik")
    assert state.chosen == {"c": 4.0} and state.edge is None and state.points[-1].origin == "extension 1 (upper)"

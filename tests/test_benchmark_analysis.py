"""The sweep's pure computations: Pareto fronts (against a brute-force dominance check), the rows
not clearly above random initialisation, and the summary sentences (ties, ratios, non-fits)."""

from __future__ import annotations

import math
import random

from sfrik_plugin.benchmark.analysis import fronts, margin_rows, pareto_front, sweep_summary


def _dominated(i, points):
    """Brute force: some other point is at most as costly and at least as accurate, better in one
    (an identical earlier point also counts, so that only the first copy stays)."""
    ci, ai = points[i]
    for j, (cj, aj) in enumerate(points):
        if j == i:
            continue
        if cj <= ci and aj >= ai and (cj < ci or aj > ai or j < i):
            return True
    return False


def test_pareto_front_matches_brute_force_dominance():
    rng = random.Random(0)
    for trial in range(200):
        n = rng.randint(1, 12)
        # coarse values so that ties in cost and in accuracy happen often
        points = [(float(rng.randint(1, 6)), float(rng.randint(60, 66))) for _ in range(n)]
        expected = sorted((i for i in range(n) if not _dominated(i, points)), key=lambda i: points[i][0])
        assert pareto_front(points) == expected, (trial, points)


def test_pareto_front_by_hand():
    assert pareto_front([]) == []
    assert pareto_front([(10.0, 80.0), (5.0, 78.0), (20.0, 79.0), (5.0, 70.0)]) == [1, 0]
    assert pareto_front([(1.0, 50.0), (1.0, 50.0)]) == [0]  # identical points: the first
    assert pareto_front([(math.nan, 90.0), (2.0, 60.0), (3.0, math.nan)]) == [1]  # unknowns ignored


def _row(mode, method, q, linear, time, memory, status="done", reason=""):
    return {
        "mode": mode,
        "method": method,
        "q": q,
        "linear": linear,
        "wall_time_s": time,
        "peak_memory_mb": memory,
        "status": status,
        "reason": reason,
    }


ROWS = [
    _row("equal epochs", "sfrik", 1024, 80.0, 30.0, 900.0),
    _row("equal epochs", "vicreg", 1024, 79.5, 32.0, 950.0),
    _row("equal epochs", "sfrik", 4096, 81.0, 40.0, 1000.0),
    _row("equal epochs", "vicreg", 4096, 79.0, 160.0, 1800.0),
    _row("equal epochs", "sfrik", 16384, 81.5, 90.0, 1300.0),
    _row(
        "equal epochs",
        "vicreg",
        16384,
        None,
        None,
        None,
        "does not fit",
        "does not fit (predicted 10.1 GiB x 1.5 > budget 8.0 GiB)",
    ),
    {**_row("equal time", "sfrik", 4096, 81.0, 40.0, 1000.0), "budget_s": 40.0, "steps": 140},
    {**_row("equal time", "vicreg", 4096, 72.0, 41.0, 1800.0), "budget_s": 40.0, "steps": 35},
]


def test_fronts_per_method_and_overall():
    per_method = fronts(ROWS, "wall_time_s")
    assert [(r["q"], r["mode"]) for r in per_method["sfrik"]] == [
        (1024, "equal epochs"),
        (4096, "equal epochs"),
        (16384, "equal epochs"),
    ]
    assert [(r["q"], r["mode"]) for r in per_method["vicreg"]] == [(1024, "equal epochs")]  # slower and no better
    overall = fronts(ROWS, "peak_memory_mb", per_method=False)["all"]
    assert [(r["method"], r["q"]) for r in overall] == [("sfrik", 1024), ("sfrik", 4096), ("sfrik", 16384)]


def test_rows_not_clearly_above_random_init():
    weak = margin_rows(ROWS, baseline=78.0, clear_margin=2.0)
    assert [(r["mode"], r["method"], r["q"]) for r in weak] == [
        ("equal epochs", "vicreg", 1024),
        ("equal epochs", "vicreg", 4096),
        ("equal time", "vicreg", 4096),
    ]
    assert [r["q"] for r in margin_rows(ROWS, 78.0, 2.0, mode="equal time")] == [4096]
    assert margin_rows(ROWS, baseline=60.0, clear_margin=2.0) == []


def test_summary_says_who_wins_where_ties_and_who_does_not_fit():
    lines = sweep_summary(ROWS, spread={"sfrik": 0.7, "vicreg": 0.6})
    by_start = {line.split(":")[0]: line for line in lines}
    assert "q=1024 equal epochs" in by_start and "tie within the seed spread ±0.7" in by_start["q=1024 equal epochs"]
    q4096 = by_start["q=4096 equal epochs"]
    assert "linear sfrik 81.0, vicreg 79.0 (sfrik best by 2.0)" in q4096
    assert "sfrik takes 0.25x the time and 0.56x the memory of vicreg" in q4096
    q16k = by_start["q=16384 equal epochs"]
    assert "linear sfrik 81.5" in q16k and "vicreg: does not fit (predicted 10.1 GiB x 1.5 > budget 8.0 GiB)" in q16k
    assert "sfrik best by 9.0); steps sfrik 140, vicreg 35" in by_start["q=4096 equal time (40 s each)"]
    assert lines[-2].startswith("Pareto front, accuracy vs pretraining time, all methods: sfrik q=1024 (equal epochs)")
    # without a spread every difference is a difference
    assert "sfrik best by 0.5" in sweep_summary(ROWS)[0]

"""Aggregation of run results into the table: mean ± sample std per method, order, files."""

from __future__ import annotations

import csv
import math

import pytest

from sfrik_plugin.benchmark.report import aggregate, format_markdown, mean_std, write_report
from sfrik_plugin.benchmark.runner import RANDOM_INIT, Run, write_json


def _rec(method, seed, linear, knn=50.0, setting="default", wall=60.0, mem=100.0, semi=(None, None)):
    return {
        "method": method,
        "setting": setting,
        "seed": seed,
        "linear": linear,
        "knn": knn,
        "semi_1": semi[0],
        "semi_10": semi[1],
        "wall_time_s": wall,
        "peak_memory_mb": mem,
    }


def test_mean_std():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0, 3)
    assert mean_std([5.0]) == (5.0, 0.0, 1)
    m, s, n = mean_std([])
    assert n == 0 and math.isnan(m) and math.isnan(s)
    assert mean_std([1.0, None, 3.0])[:2] == (2.0, math.sqrt(2.0))


def test_aggregate_rows_per_method():
    recs = [
        _rec(RANDOM_INIT, 0, 70.0, wall=0.0),
        _rec("vicreg", 1, 82.0, setting="w=25", wall=100.0, mem=300.0),
        _rec("sfrik", 0, 80.0, knn=70.0, setting="s=1", wall=50.0, mem=200.0, semi=(40.0, 60.0)),
        _rec("sfrik", 1, 84.0, knn=74.0, setting="s=1", wall=70.0, mem=250.0, semi=(42.0, 62.0)),
        _rec("vicreg", 0, 80.0, setting="w=25", wall=120.0, mem=320.0),
    ]
    rows = aggregate(recs, order=["sfrik", "vicreg"])
    assert [r["method"] for r in rows] == ["sfrik", "vicreg", RANDOM_INIT]
    s = rows[0]
    assert s["setting"] == "s=1" and s["seeds"] == [0, 1]
    assert s["linear_mean"] == pytest.approx(82.0) and s["linear_std"] == pytest.approx(math.sqrt(8.0))
    assert s["knn_mean"] == pytest.approx(72.0) and s["semi_10_mean"] == pytest.approx(61.0)
    assert s["wall_time_s"] == pytest.approx(60.0) and s["peak_memory_mb"] == 250.0
    assert rows[1]["semi_1_n"] == 0 and rows[2]["linear_std"] == 0.0
    md = format_markdown(rows)
    assert "| sfrik | s=1 | 2 | 82.00 ± 2.83 | 72.00 ± 2.83 | 41.00 ± 1.41 | 61.00 ± 1.41 | 1.0 | 250 |" in md
    assert "| vicreg | w=25 | 2 | 81.00 ± 1.41 | 50.00 ± 0.00 | – | – | 1.8 | 320 |" in md


def test_one_setting_per_method():
    with pytest.raises(ValueError, match="several settings"):
        aggregate([_rec("sfrik", 0, 80.0, setting="a"), _rec("sfrik", 1, 81.0, setting="b")])


def test_write_report_from_run_folders(tmp_path):
    runs = []
    for seed, (lin, knn) in enumerate([(80.0, 75.0), (82.0, 77.0)]):
        run = Run(tmp_path, "sfrik", {"method_kwargs.sim_coeff": 1000.0}, seed)
        write_json(run.dir / "pretrain.json", {"wall_time_s": 120.0, "peak_memory_mb": 900.0})
        write_json(
            run.dir / "eval_test.json",
            {
                "linear": {"acc1": lin},
                "knn": {"acc1": knn},
                "semi": {"0.01": {"acc1": 30.0}, "0.1": {"acc1": 50.0 + seed}},
                "peak_memory_mb": 950.0,
            },
        )
        runs.append(run)
    unfinished = Run(tmp_path, "vicreg", {}, 0)  # no eval_test.json yet: left out, not an error
    runs.append(unfinished)
    tuning = [runs[0], Run(tmp_path, "sfrik", {"method_kwargs.sim_coeff": 4000.0}, 0)]
    write_json(tuning[0].dir / "eval_val.json", {"linear": {"acc1": 81.0}, "knn": {"acc1": 70.0}})
    write_json(tuning[1].dir / "eval_val.json", {"linear": {"acc1": 79.0}, "knn": {"acc1": 71.0}})
    report = write_report(tmp_path, runs, chosen={"sfrik": {"method_kwargs.sim_coeff": 1000.0}}, tuning=tuning)
    assert [r["method"] for r in report["rows"]] == ["sfrik"]
    assert (
        "| sfrik | sim_coeff=1000.0 | 2 | 81.00 ± 1.41 | 76.00 ± 1.41 | 30.00 ± 0.00 | 50.50 ± 0.71 | 2.0 | 950 |"
        in report["markdown"]
    )
    assert "| sfrik | sim_coeff=1000.0 | 81.00 | 70.00 | ✓ |" in report["markdown"]
    assert "| sfrik | sim_coeff=4000.0 | 79.00 | 71.00 |  |" in report["markdown"]
    with open(tmp_path / "results.csv") as f:
        (row,) = list(csv.DictReader(f))
    assert row["method"] == "sfrik" and float(row["linear_mean"]) == 81.0 and row["seeds"] == "0 1"
    assert (tmp_path / "results.md").read_text().count("| sfrik |") == 3

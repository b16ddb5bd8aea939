"""The main table: mean ± sample std per method, order, the margin over random initialisation (or a
smoke-test label), and the files written from run folders (with the tuning table and its extensions)."""

from __future__ import annotations

import math

import pytest

from sfrik_plugin.benchmark.plan import RANDOM_INIT, Run
from sfrik_plugin.benchmark.report import aggregate, format_markdown, margin_verdict, mean_std, write_report
from sfrik_plugin.files.records import read_csv, write_json


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
    assert mean_std([1.0, math.nan, 3.0])[2] == 2


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
    with pytest.raises(ValueError, match="several settings"):
        aggregate([_rec("sfrik", 0, 80.0, setting="a"), _rec("sfrik", 1, 81.0, setting="b")])


def test_margin_over_random_init_or_a_smoke_test_label():
    rows = aggregate([_rec(RANDOM_INIT, 0, 70.0), _rec("sfrik", 0, 76.0), _rec("vicreg", 0, 71.5)])
    clear, sentence = margin_verdict(rows, clear_margin=2.0)
    assert not clear and sentence.startswith("SMOKE TEST: vicreg not clearly above")
    assert "sfrik +6.0, vicreg +1.5" in sentence
    assert margin_verdict(rows, clear_margin=1.0)[0] is True
    assert margin_verdict(aggregate([_rec("sfrik", 0, 99.0)]))[0] is False  # nothing to compare with


def _finished(run, lin, knn, semi=None, wall=120.0):
    write_json(run.dir / "pretrain.json", {"wall_time_s": wall, "peak_memory_mb": 900.0})
    write_json(run.dir / "eval_test.json", {"linear": {"acc1": lin}, "knn": {"acc1": knn}})
    if semi is not None:
        write_json(run.dir / "eval_semi.json", {"semi": {"0.01": {"acc1": semi[0]}, "0.1": {"acc1": semi[1]}}})


def _validated(run, lin, knn=60.0):
    write_json(run.dir / "eval_val.json", {"linear": {"acc1": lin}, "knn": {"acc1": knn}})


def test_write_report_from_run_folders(tmp_path):
    cfg = {
        "data": {"train_per_class": 300, "val_per_class": 100},
        "epochs": 3,
        "seeds": [0, 1],
        "tune_seeds": [0],
        "tuning": {"max_extensions": 1},
        "methods": {
            "sfrik": {"config": "custom/sfrik", "grid": [{"c": 1000.0}, {"c": 4000.0}]},
            "vicreg": {"config": "custom/vicreg"},
        },
    }
    # sfrik: 4000 wins on the upper edge, the extension 16000 loses -> 4000 chosen, inside
    for c, acc in ((1000.0, 70.0), (4000.0, 81.0), (16000.0, 79.0)):
        _validated(Run(tmp_path, "sfrik", {"c": c}, 0), acc)
    for seed, (lin, knn) in enumerate([(80.0, 75.0), (82.0, 77.0)]):
        _finished(Run(tmp_path, "sfrik", {"c": 4000.0}, seed), lin, knn, semi=(30.0, 50.0 + seed))
        _finished(Run(tmp_path, RANDOM_INIT, {}, seed), 72.0, 70.0, wall=0.0)
    # vicreg's tuning is unfinished: not in the table, and said so
    report = write_report(tmp_path, cfg)
    assert [r["method"] for r in report["rows"]] == ["sfrik", RANDOM_INIT]
    md = (tmp_path / "results.md").read_text()
    assert "| sfrik | c=4000.0 | 2 | 81.00 ± 1.41 | 76.00 ± 1.41 | 30.00 ± 0.00 | 50.50 ± 0.71 | 2.0 | 900 |" in md
    assert "**every method is at least 2 points above random initialisation (linear probe): sfrik +9.0**" in md
    assert "Not in the table (tuning unfinished or nothing fitted in memory): vicreg." in md
    assert "| sfrik | c=4000.0 | grid | 81.00 | 81.00 | 60.00 | ✓ (inside the grid) |" in md
    assert "| sfrik | c=16000.0 | extension 1 (upper) | 79.00 | 79.00 | 60.00 |  |" in md
    tuning = read_csv(tmp_path / "tuning.csv")
    assert [(t["setting"], t["origin"], t["chosen"]) for t in tuning] == [
        ("c=1000.0", "grid", "False"),
        ("c=4000.0", "grid", "True"),
        ("c=16000.0", "extension 1 (upper)", "False"),
        ("default", "grid", "False"),
    ]
    (row, base) = read_csv(tmp_path / "results.csv")
    assert row["method"] == "sfrik" and float(row["linear_mean"]) == 81.0 and row["seeds"] == "0 1"
    assert base["method"] == RANDOM_INIT and (tmp_path / "results.png").is_file()

"""What a profile writes: CSV and JSON records of its rows, markdown tables and PNG plots."""

from __future__ import annotations

import math

import pytest
import torch
from test_profiler_analysis import synthetic_loss_rows, synthetic_train_rows

from sfrik_plugin.files.records import read_csv, read_json, write_csv, write_json
from sfrik_plugin.profiler.analysis import loss_summary, train_summary
from sfrik_plugin.profiler.plots import markdown_table, plot_loss, plot_train

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def test_rows_round_trip_through_csv_and_json(tmp_path):
    rows = [
        {"q": 8, "median_s": 0.5, "status": "ok"},
        {"q": 16, "median_s": None, "status": "does-not-fit", "reason": "too big"},
    ]
    read = read_csv(write_csv(tmp_path / "sub" / "rows.csv", rows))
    assert [r["q"] for r in read] == ["8", "16"]
    assert read[0]["reason"] == "" and read[1]["median_s"] == "" and read[1]["reason"] == "too big"
    payload = {"rows": rows, "inf": math.inf, "nan": math.nan, "dtype": torch.float32}
    back = read_json(write_json(tmp_path / "rows.json", payload))
    assert back["inf"] == "inf" and back["nan"] is None and back["dtype"] == "torch.float32"
    assert back["rows"][1]["median_s"] is None


def test_markdown_table():
    rows = [
        {"q": 8, "median_s": 0.5, "status": "ok", "gain": math.inf},
        {"q": 16, "median_s": None, "status": "does-not-fit", "gain": 12.5},
    ]
    table = markdown_table(
        rows,
        [
            ("q", "q", "d"),
            ("median_s", "median (s)", ".2f"),
            ("status", "status", "s"),
            ("gain", "gain", lambda v: "runs alone" if v == math.inf else f"{v:+.1f} %"),
        ],
    )
    assert table.splitlines() == [
        "| q | median (s) | status | gain |",
        "|---|---|---|---|",
        "| 8 | 0.50 | ok | runs alone |",
        "| 16 | – | does-not-fit | +12.5 % |",
    ]


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (a dev extra) is not installed")
    rows = synthetic_loss_rows()
    path = plot_loss(rows, loss_summary(rows), tmp_path / "loss.png", title="synthetic")
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 10_000
    rows = synthetic_train_rows()
    path = plot_train(rows, train_summary(rows), tmp_path / "deeper" / "train.png")
    assert path.read_bytes()[:8] == PNG_SIGNATURE and path.stat().st_size > 10_000

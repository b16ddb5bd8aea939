"""scripts/knn_gap.py: its neighbourhood statistics against closed forms and counts by hand, and the
script end to end on a tiny image folder through the real solo-learn (its kNN must reproduce the
benchmark worker's validation kNN, computed by another code path)."""

from __future__ import annotations

import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from _images import make_image_folder
from _subprocesses import BENCH_CPU_OVERRIDES, checkout_env

from sfrik_plugin.files.records import read_csv

REPO_ROOT = Path(__file__).resolve().parents[1]
SCRIPT = REPO_ROOT / "scripts" / "knn_gap.py"


def _script():
    spec = importlib.util.spec_from_file_location("knn_gap_script", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_alignment_and_uniformity_of_points_with_known_distances():
    stats = _script().alignment_uniformity
    # two antipodal points (squared distance 4): uniformity log exp(-8), mean cosine -1, centred
    u = torch.tensor([[3.0, 0.0], [-1.0, 0.0]])  # normalisation first: the scale does not count
    out = stats(u, u, torch.tensor([0, 0]))
    assert out["uniform"] == pytest.approx(-8.0)
    assert out["mean_cos"] == pytest.approx(-1.0) and out["mean_norm"] == pytest.approx(0.0, abs=1e-12)
    assert out["align"] == pytest.approx(0.0) and out["align_class"] == pytest.approx(4.0)
    # four points at 90 degrees: pairs at squared distance 2 (8 ordered pairs) and 4 (4 ordered pairs)
    square = torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [0.0, -1.0]])
    out = stats(square, square.roll(1, dims=0), torch.tensor([0, 1, 0, 1]))
    assert out["uniform"] == pytest.approx(math.log((8 * math.exp(-4) + 4 * math.exp(-8)) / 12))
    assert out["align"] == pytest.approx(2.0)  # each point against its 90-degree neighbour
    assert out["align_class"] == pytest.approx(4.0)  # same class: the antipodal point
    # everything in one direction: mean cosine 1, |mean u| = 1
    same = stats(torch.tensor([[1.0, 1.0], [2.0, 2.0]]), torch.tensor([[1.0, 1.0], [1.0, 1.0]]), torch.tensor([0, 1]))
    assert same["mean_cos"] == pytest.approx(1.0) and same["mean_norm"] == pytest.approx(1.0)


def test_purity_counts_the_neighbours_that_share_the_label():
    purity = _script().purity
    train = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.2, 0.8]])
    train_y = torch.tensor([0, 1, 1, 1])
    query = torch.tensor([[1.0, 0.05], [0.1, 1.0]])
    # k = 2: the first query's neighbours are rows 0, 1 (labels 0, 1): 1/2 with label 0;
    # the second's are rows 2, 3 (labels 1, 1): 2/2 with label 1
    assert purity(train, train_y, query, torch.tensor([0, 1]), 2) == pytest.approx(0.75)
    assert purity(train, train_y, query, torch.tensor([1, 0]), 2) == pytest.approx(0.25)


@pytest.mark.requires_solo
def test_the_script_end_to_end_on_a_tiny_image_folder(tmp_path):
    # six classes, two per colour told apart by brightness only: neither probe is at 100 %
    train = make_image_folder(tmp_path / "train", classes=6, per_class=12, size=16, seed=0)
    make_image_folder(tmp_path / "test", classes=6, per_class=4, size=16, seed=1)
    config = tmp_path / "bench.yaml"
    config.write_text(
        f"data: {{kind: image_folder, train_root: {train}, test_root: {tmp_path / 'test'}, "
        "train_per_class: 8, val_per_class: 4}\n"
        "seeds: [0]\nepochs: 1\ncrop_size: 16\nbatch_size: 8\nprojector: {hidden: 32, q: 16}\n"
        "backbone: {name: small_cnn, kwargs: {width: 4}}\n"
        f"common_overrides: {json.dumps(BENCH_CPU_OVERRIDES)}\n"
        "methods:\n  sfrik: {config: custom/sfrik}\n  vicreg: {config: custom/vicreg}\n"
        "evaluation: {knn: {k: 5}}\n"
    )
    out = tmp_path / "out"
    command = [sys.executable, str(SCRIPT), "--config", str(config), "--out", str(out), "--sim-coeffs", "100", "400"]
    env = checkout_env(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env, cwd=tmp_path)
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-3000:]}"
    rows = read_csv(out / "knn_gap.csv")
    assert [(r["method"], r["setting"]) for r in rows] == [
        ("random_init", "default"),
        ("sfrik", "sim_coeff=100.0"),
        ("sfrik", "sim_coeff=400.0"),
        ("vicreg", "sim_loss_weight=25.0"),
    ]
    assert any(float(row["knn"]) < 100.0 for row in rows)  # otherwise the comparison below says little
    for row in rows:
        # the script's kNN on the backbone features is the benchmark worker's validation kNN
        assert float(row["knn"]) == pytest.approx(float(row["knn_benchmark"]))
        assert 0.0 <= float(row["purity"]) <= 1.0 and float(row["uniform"]) <= 0.0
        assert (row["knn_projector"] == "") == (row["method"] == "random_init")
        assert (row["final_mmd"] != "") == (row["method"] == "sfrik")  # read from the run's pretrain.json
    payload = json.loads((out / "knn_gap.json").read_text())
    assert payload["k"] == 5 and "--sim-coeffs 100 400" in payload["command"] and payload["machine"]["cpu"]
    table = (out / "knn_gap.md").read_text()
    assert "| sfrik | sim_coeff=400.0 | 0 |" in table and table in proc.stdout

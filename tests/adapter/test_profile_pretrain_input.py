"""``scripts/profile_pretrain_input.py`` end to end on a tiny setting with the real solo-learn: it
measures both input paths part by part and whole, and writes what it printed as CSV and JSON.
Nothing here judges a speed (the figures are the script's output, not the test's)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.requires_solo
def test_the_input_profile_measures_both_paths_and_writes_its_tables(tmp_path):
    from sfrik_plugin.data.fashion_mnist import FASHION_MNIST_DIR

    if not any(FASHION_MNIST_DIR.glob("train-images-idx3-ubyte*")):
        pytest.skip(f"Fashion-MNIST idx files not in {FASHION_MNIST_DIR} (Debian package dataset-fashion-mnist)")
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "scripts/profile_pretrain_input.py", "--per-class", "13", "--steps", "2", "--rounds", "1",
         "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    record = json.loads((out / "profile_pretrain_input.json").read_text())
    assert record["command"].startswith("python scripts/profile_pretrain_input.py --per-class 13")
    assert record["machine"]["cpu_count"] >= 1
    parts = {(row["part"], row["path"]) for row in record["rows"]}
    assert ("PNG decode (open + RGB)", "solo") in parts and ("gather + batched augmentation, 2 views", "new") in parts
    assert all(row["value"] > 0 for row in record["rows"] if row["unit"] in ("us/image", "ms/batch", "images/s"))
    summary = record["summary"]
    for path in ("solo", "new"):
        assert len(summary[path]["images_per_s_runs"]) == 1 and summary[path]["images_per_s_median"] > 0
    speedup = summary["new"]["images_per_s_median"] / summary["solo"]["images_per_s_median"]
    assert summary["paired_speedups"] == pytest.approx([speedup])
    csv_lines = (out / "profile_pretrain_input.csv").read_text().strip().splitlines()
    assert csv_lines[0] == "part,path,value,unit,note,load" and len(csv_lines) == len(record["rows"]) + 1


@pytest.mark.requires_solo
def test_too_few_images_for_one_batch_is_one_clear_error(tmp_path):
    from sfrik_plugin.data.fashion_mnist import FASHION_MNIST_DIR

    if not any(FASHION_MNIST_DIR.glob("train-images-idx3-ubyte*")):
        pytest.skip(f"Fashion-MNIST idx files not in {FASHION_MNIST_DIR} (Debian package dataset-fashion-mnist)")
    proc = subprocess.run(
        [sys.executable, "scripts/profile_pretrain_input.py", "--per-class", "4", "--out", str(tmp_path)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 2
    assert "40 training images are fewer than two batches of --batch-size 64" in proc.stderr
    assert "Traceback" not in proc.stderr

"""A tiny end-to-end benchmark through the real solo-learn, with the q-sweep: tuning with a grid
extension, final runs over two seeds, the sweep at equal epochs (SFRIK's sim_coeff scaled with q)
and at equal time (a step budget from the measured rate, here a fixed number of seconds), and a configuration that does not fit
the memory budget reported as a row. Re-running recomputes nothing; ``--report-only`` rebuilds the
same tables. (Killing the runner at every stage: test_benchmark_resume.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from _images import make_image_folder
from _subprocesses import BENCH_CPU_OVERRIDES, checkout_env

pytestmark = pytest.mark.requires_solo

REPO_ROOT = Path(__file__).resolve().parents[2]

TINY = """
data: {{kind: image_folder, train_root: {train}, test_root: {test}, train_per_class: 8, val_per_class: 4}}
seeds: [0, 1]
tune_seeds: [0]
epochs: 1
crop_size: 16
batch_size: 8
projector: {{hidden: 32, q: 16}}
backbone: {{name: small_cnn, kwargs: {{width: 4}}}}
common_overrides: {common}
tuning: {{max_extensions: 1}}
methods:
  sfrik:
    config: custom/sfrik
    grid: [{{method_kwargs.sim_coeff: 100.0}}, {{method_kwargs.sim_coeff: 400.0}}]
  vicreg: {{config: custom/vicreg}}
evaluation:
  knn: {{k: 5}}
  semi_supervised: {{fractions: [0.1], epochs: 1, batch_size: 8}}
sweep:
  qs: [16, 256]
  scale_with_q: {{sfrik: {{method_kwargs.sim_coeff: 1.0}}}}
  equal_time: {{budget: 0.4}}            # seconds: more than an epoch here, so the step budgets differ
"""


def _env():
    return checkout_env(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("bench_e2e")
    train = make_image_folder(root / "train", classes=3, per_class=12, size=16, seed=0)
    test = make_image_folder(root / "test", classes=3, per_class=4, size=16, seed=1)
    path = root / "bench.yaml"
    path.write_text(TINY.format(train=train, test=test, common=json.dumps(BENCH_CPU_OVERRIDES)))
    return path


def _bench(args, cwd):
    proc = subprocess.run(
        [sys.executable, "-m", "sfrik_plugin.benchmark.cli", *args],
        cwd=cwd,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    return proc.stdout


def _budget_between(config: Path) -> int:
    """A memory budget in which SFRIK fits at q = 256 and VICReg (q x q covariance) does not."""
    from sfrik_plugin.benchmark.budget import predicted_bytes
    from sfrik_plugin.benchmark.config import load_config
    from sfrik_plugin.contenders.memory import SAFETY_FACTOR

    cfg = load_config(config)
    sfrik, vicreg = predicted_bytes(cfg, "sfrik", 256), predicted_bytes(cfg, "vicreg", 256)
    assert 2 * sfrik < vicreg
    return int(SAFETY_FACTOR * 2 * sfrik)


def test_tiny_benchmark_with_sweep_end_to_end_and_rerun_skips(tmp_path, config):
    from sfrik_plugin.files.records import read_csv, read_json

    out = tmp_path / "out"
    budget = str(_budget_between(config))
    args = ["--config", str(config), "--sweep", "--out", str(out), "--memory-budget", budget]
    stdout = _bench(args, tmp_path)
    assert f"--memory-budget {budget}" in stdout and "memory budget per run: --memory-budget" in stdout

    # main table: one chosen setting per method, two seeds, random init last
    results = read_csv(out / "results.csv")
    assert [r["method"] for r in results] == ["sfrik", "vicreg", "random_init"]
    assert all(r["seeds"] == "0 1" for r in results)
    tuning = read_csv(out / "tuning.csv")
    assert [t["origin"] for t in tuning if t["method"] == "sfrik"][:2] == ["grid", "grid"]
    assert tuning[2]["origin"].startswith("extension 1")  # a 2-value grid always has its best on an edge
    assert sum(t["chosen"] == "True" for t in tuning) == 2

    # sweep: every planned point is a row; VICReg at q = 256 does not fit, SFRIK does and ran
    rows = {(r["mode"], r["method"], r["q"]): r for r in read_csv(out / "sweep.csv")}
    assert len(rows) == 2 * 2 * 2
    assert rows["equal epochs", "vicreg", "256"]["status"] == "does not fit"
    assert rows["equal epochs", "vicreg", "256"]["reason"].startswith("does not fit (predicted")
    assert float(rows["equal epochs", "vicreg", "256"]["predicted_memory_mb"]) > 0
    assert rows["equal time", "vicreg", "256"]["status"] == "does not fit"
    assert all(r["status"] == "done" for k, r in rows.items() if k[1] == "sfrik" or k[2] != "256")
    assert not (out / "runs" / "vicreg" / "q=256" / "seed0" / "attempts.json").exists()  # never started
    chosen = json.loads((out / "chosen.json").read_text())["sfrik"]["method_kwargs.sim_coeff"]
    assert rows["equal epochs", "sfrik", "256"]["setting"] == f"sim_coeff={chosen * 16},q=256"  # lambda kept
    # the reference-q point is the seed-0 final run itself
    final = read_json(out / "runs" / "sfrik" / f"sim_coeff={chosen}" / "seed0" / "eval_test.json")
    assert float(rows["equal epochs", "sfrik", "16"]["linear"]) == final["linear"]["acc1"]
    assert rows["equal epochs", "sfrik", "16"]["setting"] == f"sim_coeff={chosen}"
    for row in rows.values():
        if row["status"] == "done":
            assert float(row["wall_time_s"]) > 0 and float(row["images_per_s"]) > 0 and float(row["peak_memory_mb"]) > 0

    # every pretraining went through solo-learn with the same shared config except method and q
    args_files = [json.loads(p.read_text()) for p in out.glob("runs/*/*/seed*/ckpt/*/*/args.json")]
    for key in ("backbone", "optimizer", "augmentations", "scheduler"):
        assert all(a[key] == args_files[0][key] for a in args_files), key
    assert {a["method_kwargs"]["proj_output_dim"] for a in args_files} == {16, 256}
    # equal-time runs: the step budget from the measured rate is what was trained
    budgets = list(out.glob("runs/*/*steps=*/seed0"))
    assert len(budgets) >= 2
    for run_dir in budgets:
        spec, record = read_json(run_dir / "spec.json"), read_json(run_dir / "pretrain.json")
        assert (
            record["steps"] == spec["steps"] == record["max_steps"]
            and f"++max_steps={spec['steps']}" in spec["overrides"]
        )
    # an epoch of 24 images at batch 8 is 3 steps
    assert read_json(out / "runs" / "vicreg" / "default" / "seed1" / "pretrain.json")["steps"] == 3

    for name in ("results.md", "results.csv", "tuning.csv", "results.png", "sweep.md", "sweep.csv", "sweep.png"):
        assert (out / name).is_file(), name
    sweep_md = (out / "sweep.md").read_text()
    assert "Spread of a repeated point (q = 16" in sweep_md and f"--memory-budget {budget}" in sweep_md

    # re-running recomputes nothing and prints the same tables; --report-only rebuilds the same files
    markers = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/*/*.json")}
    sweep_csv = (out / "sweep.csv").read_text()
    again = _bench(args, tmp_path)
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/*/*.json")} == markers
    assert [line for line in again.splitlines() if line.startswith("| ")] == [
        line for line in stdout.splitlines() if line.startswith("| ")
    ]
    _bench([*args, "--report-only"], tmp_path)
    assert (out / "sweep.csv").read_text() == sweep_csv

"""A tiny end-to-end benchmark through the real solo-learn: three methods (+ random init), tuning on
the validation split, test evaluation, table; re-running skips everything; an interrupted
pretraining resumes from its checkpoint."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO_ROOT, make_image_folder

pytestmark = pytest.mark.requires_solo

TINY = """
data: {{kind: image_folder, train_root: {train}, test_root: {test}, train_per_class: 8, val_per_class: 4}}
seeds: [0]
tune_seed: 0
epochs: {epochs}
crop_size: 16
backbone: {{name: small_cnn, kwargs: {{width: 4}}}}
common_overrides:
  - method_kwargs.proj_hidden_dim=32
  - method_kwargs.proj_output_dim=16
  - optimizer.batch_size=8
  - data.num_workers=0
  - accelerator=cpu
  - devices=1
  - strategy=auto
  - precision=32
  - sync_batchnorm=false
  - wandb=off
  - scheduler.warmup_epochs=0
  - ++performance.disable_channel_last=true
  - ++enable_progress_bar=false
  - ++num_sanity_val_steps=0
  - ++log_every_n_steps=1
methods:
  sfrik:
    config: custom/sfrik
    grid: [{{method_kwargs.sim_coeff: 100.0}}, {{method_kwargs.sim_coeff: 400.0}}]
  vicreg: {{config: custom/vicreg}}
  barlow_twins: {{config: custom/barlow}}
evaluation:
  knn: {{k: 5}}
  semi_supervised: {{fractions: [0.1, 0.5], epochs: 1, batch_size: 8}}
"""


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONWARNINGS"] = "ignore"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench_images")
    return {
        "train": make_image_folder(root / "train", classes=3, per_class=12, size=16, seed=0),
        "test": make_image_folder(root / "test", classes=3, per_class=4, size=16, seed=1),
    }


def _config(tmp_path, images, epochs=1) -> Path:
    path = tmp_path / "bench.yaml"
    path.write_text(TINY.format(train=images["train"], test=images["test"], epochs=epochs))
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


def test_tiny_benchmark_end_to_end_and_rerun_skips(tmp_path, images):
    cfg, out = _config(tmp_path, images), tmp_path / "out"
    stdout = _bench(["--config", str(cfg), "--out", str(out)], tmp_path)
    rows = [line for line in stdout.splitlines() if line.startswith("| ") and " ± " in line]
    assert [r.split(" | ")[0][2:] for r in rows] == ["sfrik", "vicreg", "barlow_twins", "random_init"]
    assert all(r.split(" | ")[2] == "1" for r in rows)  # one seed each (the plan over seeds: test_benchmark_runner.py)
    # one pretraining per grid setting with the tuning seed, then the other seed with the chosen one
    pretrained = sorted(p.parent.relative_to(out / "runs").as_posix() for p in out.glob("runs/*/*/*/pretrain.json"))
    chosen = json.loads((out / "chosen.json").read_text())
    sfrik = "sim_coeff=" + str(chosen["sfrik"]["method_kwargs.sim_coeff"])
    assert pretrained == sorted(
        [
            "barlow_twins/default/seed0",
            "random_init/default/seed0",
            "sfrik/sim_coeff=100.0/seed0",
            "sfrik/sim_coeff=400.0/seed0",
            "vicreg/default/seed0",
        ]
    )
    # the test split is evaluated for the chosen setting only
    tested = sorted(p.parent.relative_to(out / "runs").as_posix() for p in out.glob("runs/*/*/*/eval_test.json"))
    assert len(tested) == 4 and all("sim_coeff" not in t or t.startswith(f"sfrik/{sfrik}/") for t in tested)
    # every pretraining went through solo-learn with the same shared config except the method block
    args = [json.loads(p.read_text()) for p in out.glob("runs/*/*/seed0/ckpt/*/*/args.json")]
    assert sorted(a["method"] for a in args) == ["barlow_twins", "sfrik", "sfrik", "vicreg"]
    for key in ("backbone", "optimizer", "augmentations", "max_epochs", "scheduler"):
        assert all(a[key] == args[0][key] for a in args), key
    assert {a["method_kwargs"]["proj_output_dim"] for a in args} == {16}
    for name in ("results.md", "results.csv", "tuning.csv", "results.png"):
        assert (out / name).is_file()
    record = json.loads((out / "runs" / "vicreg" / "default" / "seed0" / "pretrain.json").read_text())
    assert record["wall_time_s"] > 0 and record["peak_memory_mb"] > 0

    # re-running recomputes nothing and prints the same table
    markers = {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/*/*.json")}
    again = _bench(["--config", str(cfg), "--out", str(out)], tmp_path)
    assert {p: p.stat().st_mtime_ns for p in out.glob("runs/*/*/*/*.json")} == markers
    assert [line for line in again.splitlines() if " ± " in line] == rows


def test_interrupted_pretraining_resumes_from_its_checkpoint(tmp_path, images):
    from sfrik_plugin.benchmark.runner import Benchmark, Run, load_config, read_json, run_stage

    cfg = load_config(_config(tmp_path, images, epochs=4))
    bench = Benchmark(cfg, tmp_path / "out", log=lambda m: None)
    bench.prepare_data()
    run = Run(bench.out, "vicreg", {}, 0)
    spec = bench.spec(run)
    # start the stage like the runner does, and kill the worker hard once an epoch is saved
    run.dir.mkdir(parents=True)
    (run.dir / "spec.json").write_text(json.dumps(spec, sort_keys=True))
    worker = subprocess.Popen(
        [sys.executable, "-m", "sfrik_plugin.benchmark.worker", str(run.dir), "train"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while worker.poll() is None and not list(run.dir.glob("ckpt/*/*/*ep=0.ckpt")):
        time.sleep(0.02)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    assert not (run.dir / "done.json").exists(), "the worker finished before it could be interrupted"
    assert run_stage(run.dir, spec, "train") == "done"
    assert "resuming from" in (run.dir / "train.log").read_text()
    attempts = read_json(run.dir / "attempts.json")
    assert len(attempts) == 2 and attempts[0]["end"] is None and "ep=" in attempts[1]["resumed_from"]
    import torch

    final = torch.load(read_json(run.dir / "pretrain.json")["checkpoint"], map_location="cpu", weights_only=False)
    assert final["epoch"] == 3 and final["global_step"] == 4 * 3  # 24 images / batch 8 = 3 steps per epoch
    assert read_json(run.dir / "pretrain.json")["attempts"] == 2

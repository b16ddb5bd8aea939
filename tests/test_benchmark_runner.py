"""The runner's plan and resume logic: run folders, done markers, checkpoints, specs.

The stage test runs the real worker process on the random-initialisation baseline (no solo-learn
needed); the pretraining resume with solo-learn is in tests/adapter/test_benchmark_e2e.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sfrik_plugin.benchmark.runner import (
    RANDOM_INIT,
    Benchmark,
    Run,
    final_runs,
    is_done,
    latest_checkpoint,
    load_config,
    read_json,
    run_stage,
    select_settings,
    setting_name,
    setting_overrides,
    tuning_runs,
    write_json,
)

CFG = {
    "seeds": [3, 4, 5],
    "tune_seed": 3,
    "methods": {
        "sfrik": {
            "config": "custom/sfrik",
            "grid": [{"method_kwargs.sim_coeff": 1000.0}, {"method_kwargs.sim_coeff": 4000.0}],
        },
        "vicreg": {"config": "custom/vicreg", "grid": [{"method_kwargs.sim_loss_weight": 25.0}]},
    },
}


def test_setting_names_and_overrides():
    s = {"method_kwargs.weights": [1.0, 40.0], "method_kwargs.sim_coeff": 4000.0}
    assert setting_name(s) == "sim_coeff=4000.0,weights=_1.0,40.0_"  # file-system safe
    assert setting_name({}) == "default"
    assert setting_overrides(s) == ["++method_kwargs.sim_coeff=4000.0", "++method_kwargs.weights=[1.0,40.0]"]


def test_plan_tunes_every_setting_once_and_reuses_the_tuning_seed(tmp_path):
    tune = tuning_runs(CFG, tmp_path)
    assert [(r.method, r.name, r.seed) for r in tune] == [
        ("sfrik", "sim_coeff=1000.0", 3),
        ("sfrik", "sim_coeff=4000.0", 3),
        ("vicreg", "sim_loss_weight=25.0", 3),
    ]
    for run, acc in zip(tune, (70.0, 75.0, 60.0)):
        write_json(run.dir / "eval_val.json", {"linear": {"acc1": acc}, "knn": {"acc1": 0.0}})
    chosen = select_settings(CFG, tmp_path)
    assert chosen == {"sfrik": {"method_kwargs.sim_coeff": 4000.0}, "vicreg": {"method_kwargs.sim_loss_weight": 25.0}}
    final = final_runs(CFG, tmp_path, chosen)
    assert len(final) == 3 * 2 + 3 and [r.method for r in final[:3]] == [RANDOM_INIT] * 3
    assert [r.seed for r in final[3:]] == [3, 3, 4, 4, 5, 5]  # seed by seed: a partial table stays balanced
    assert tune[1] in final and tune[2] in final and tune[0] not in final  # finished tuning runs are reused
    assert len({r.dir for r in final}) == len(final)


def test_selection_ties_keep_grid_order_and_need_every_result(tmp_path):
    tune = tuning_runs(CFG, tmp_path)
    write_json(tune[0].dir / "eval_val.json", {"linear": {"acc1": 70.0}})
    with pytest.raises(RuntimeError, match="no validation result"):
        select_settings(CFG, tmp_path)
    write_json(tune[1].dir / "eval_val.json", {"linear": {"acc1": 70.0}})
    write_json(tune[2].dir / "eval_val.json", {"linear": {"acc1": 1.0}})
    assert select_settings(CFG, tmp_path)["sfrik"] == {"method_kwargs.sim_coeff": 1000.0}


def test_latest_checkpoint(tmp_path):
    assert latest_checkpoint(tmp_path) is None
    a = tmp_path / "ckpt" / "sfrik" / "offline-a"
    b = tmp_path / "ckpt" / "sfrik" / "offline-b"
    a.mkdir(parents=True), b.mkdir(parents=True)
    (a / "x-offline-a-ep=4.ckpt").write_bytes(b"old run, later epoch")
    (b / "x-offline-b-ep=2.ckpt").write_bytes(b"resumed attempt")
    (b / "x-offline-b-ep=9.ckpt").write_bytes(b"")  # a file cut while being written is ignored
    assert latest_checkpoint(tmp_path).name == "x-offline-a-ep=4.ckpt"


def test_quick_config_is_merged_over_the_default():
    pytest.importorskip("yaml", reason="PyYAML (benchmark extra) reads the benchmark configs")
    full, quick = load_config(), load_config(quick=True)
    assert len(full["seeds"]) >= 3 and all(len(m["grid"]) >= 2 for m in full["methods"].values())
    assert len(quick["seeds"]) < len(full["seeds"]) and quick["epochs"] < full["epochs"]
    assert set(quick["methods"]) == set(full["methods"]) == {"sfrik", "vicreg", "barlow_twins"}
    assert quick["common_overrides"] == full["common_overrides"]  # same recipe, smaller budget


def _images(root: Path, classes=3, per_class=10, seed=0) -> Path:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    for c in range(classes):
        (root / f"c{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            img = np.clip(rng.normal(60 + 70 * c, 30, size=(12, 12, 3)), 0, 255).astype("uint8")
            Image.fromarray(img).save(root / f"c{c}" / f"{i:03d}.png")
    return root


def test_stage_markers_skip_finished_work_and_specs_must_match(tmp_path):
    pytest.importorskip("torchvision")
    cfg = {
        "data": {
            "kind": "image_folder",
            "train_root": str(_images(tmp_path / "train", per_class=10)),
            "test_root": str(_images(tmp_path / "test", per_class=4, seed=1)),
            "train_per_class": 6,
            "val_per_class": 4,
        },
        "seeds": [0],
        "methods": {},
        "crop_size": 8,
        "backbone": {"name": "small_cnn", "kwargs": {"width": 4}},
        "evaluation": {"knn": {"k": 3}, "semi_supervised": {"fractions": [0.1, 0.5], "epochs": 1, "batch_size": 4}},
    }
    bench = Benchmark(cfg, tmp_path / "out", log=lambda m: None)
    bench.prepare_data()
    run = Run(bench.out, RANDOM_INIT, {}, 0)
    spec = bench.spec(run)
    assert run_stage(run.dir, spec, "train") == "done"
    assert is_done(run.dir, "train") and not is_done(run.dir, "test")
    val = read_json(run.dir / "eval_val.json")
    assert val["n_train"] == 18 and val["n_eval"] == 12 and val["feature_dim"] == 32
    marker = (run.dir / "done.json").stat().st_mtime_ns
    weights = (run.dir / "backbone.pt").read_bytes()
    assert run_stage(run.dir, spec, "train") == "skipped"
    assert (run.dir / "done.json").stat().st_mtime_ns == marker
    assert (run.dir / "train.log").read_text().count("=====") == 1  # the worker ran once

    assert run_stage(run.dir, spec, "test") == "done"
    test = read_json(run.dir / "eval_test.json")
    assert test["n_eval"] == 12 and set(test["semi"]) == {"0.1", "0.5"}
    assert test["semi"]["0.1"]["labels"] == 3 and test["semi"]["0.5"]["labels"] == 9
    assert run_stage(run.dir, spec, "test") == "skipped"

    # a run folder is tied to its specification: no silent mixing of settings
    with pytest.raises(RuntimeError, match="another specification"):
        run_stage(run.dir, {**spec, "crop_size": 10}, "train")
    # an unfinished stage (marker gone) is redone; the same seed gives the same untrained backbone
    os.remove(run.dir / "done.json")
    assert run_stage(run.dir, spec, "train") == "done"
    assert (run.dir / "backbone.pt").read_bytes() == weights

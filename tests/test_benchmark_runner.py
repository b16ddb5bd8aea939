"""The runner's plan and resume logic: run folders and names, final runs, markers, specs, stages.

The stage tests run the real worker process on the random-initialisation baseline (no solo-learn
needed); pretraining with solo-learn is in tests/adapter/test_benchmark_{e2e,resume}.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from _images import make_image_folder

from sfrik_plugin.benchmark.plan import RANDOM_INIT, Run, final_runs, setting_name, setting_overrides
from sfrik_plugin.benchmark.runner import Benchmark
from sfrik_plugin.benchmark.stages import StageFailed, is_done, run_stage
from sfrik_plugin.console import InputError
from sfrik_plugin.files.records import read_json

CFG = {
    "seeds": [3, 4, 5],
    "methods": {
        "sfrik": {"config": "custom/sfrik", "grid": [{"method_kwargs.sim_coeff": 1000.0}]},
        "vicreg": {"config": "custom/vicreg"},
    },
}


def test_setting_names_and_overrides():
    s = {"method_kwargs.weights": [1.0, 40.0], "method_kwargs.sim_coeff": 4000.0}
    assert setting_name(s) == "sim_coeff=4000.0,weights=_1.0,40.0_"  # file-system safe
    assert setting_name({}) == "default"
    assert setting_overrides(s) == ["++method_kwargs.sim_coeff=4000.0", "++method_kwargs.weights=[1.0,40.0]"]


def test_run_folders_name_q_and_step_budget_only_when_they_differ(tmp_path):
    plain = Run(tmp_path, "sfrik", {"method_kwargs.sim_coeff": 4000.0}, 0)
    assert plain.dir == tmp_path / "runs" / "sfrik" / "sim_coeff=4000.0" / "seed0"
    assert Run(tmp_path, "sfrik", {"method_kwargs.sim_coeff": 4000.0}, 0, q=256).name == "sim_coeff=4000.0,q=256"
    assert Run(tmp_path, "vicreg", {}, 1, q=256, steps=17).name == "q=256,steps=17"
    assert Run(tmp_path, "vicreg", {}, 1, steps=17).name == "steps=17"
    assert Run(tmp_path, "vicreg", {}, 1).name == "default"
    assert plain == Run(tmp_path, "sfrik", {"method_kwargs.sim_coeff": 4000.0}, 0) and len({plain, plain}) == 1


def test_final_runs_baseline_first_then_seed_by_seed(tmp_path):
    chosen = {"sfrik": {"method_kwargs.sim_coeff": 1000.0}, "vicreg": {}}
    final = final_runs(CFG, tmp_path, chosen)
    assert [r.method for r in final[:3]] == [RANDOM_INIT] * 3
    assert [(r.method, r.seed) for r in final[3:]] == [(m, s) for s in (3, 4, 5) for m in ("sfrik", "vicreg")]
    # a method with nothing chosen (e.g. nothing fitted in memory) has no final runs; {} is a real choice
    assert [r.method for r in final_runs(CFG, tmp_path, {"sfrik": None, "vicreg": {}})[3:]] == ["vicreg"] * 3
    assert final_runs({**CFG, "random_init": False}, tmp_path, chosen)[0].method == "sfrik"


def _bench(tmp_path: Path) -> Benchmark:
    cfg = {
        "data": {
            "kind": "image_folder",
            "train_root": str(make_image_folder(tmp_path / "train", classes=3, per_class=10, size=12)),
            "test_root": str(make_image_folder(tmp_path / "test", classes=3, per_class=4, size=12, seed=1)),
            "train_per_class": 6,
            "val_per_class": 4,
        },
        "seeds": [0],
        "epochs": 2,
        "batch_size": 4,
        "projector": {"hidden": 8, "q": 4},
        "methods": {"sfrik": {"config": "custom/sfrik"}},
        "crop_size": 8,
        "backbone": {"name": "small_cnn", "kwargs": {"width": 4}},
        "evaluation": {"knn": {"k": 3}, "semi_supervised": {"fractions": [0.1, 0.5], "epochs": 1, "batch_size": 4}},
    }
    return Benchmark(cfg, tmp_path / "out", memory_budget="1GiB")


def test_specs_carry_q_and_step_budgets_as_overrides(tmp_path):
    bench = _bench(tmp_path)
    assert bench.prepare_data()["n_train"] == 18
    spec = bench.spec(Run(bench.out, "sfrik", {"method_kwargs.sim_coeff": 9.0}, 0))
    assert spec["q"] == 4 and spec["steps"] is None
    assert spec["overrides"].index("method_kwargs.proj_output_dim=4") < spec["overrides"].index("max_epochs=2")
    assert spec["overrides"][-1] == "++method_kwargs.sim_coeff=9.0"  # the setting comes last: it wins
    # 18 images / batch 4 = 4 steps an epoch: 9 steps span 3 epochs, stopped by max_steps
    budget = bench.spec(Run(bench.out, "sfrik", {}, 0, q=16, steps=9))
    assert "method_kwargs.proj_output_dim=16" in budget["overrides"]
    assert "max_epochs=3" in budget["overrides"] and "++max_steps=9" in budget["overrides"]


def test_stage_markers_skip_finished_work_and_specs_must_match(tmp_path):
    pytest.importorskip("torchvision")
    bench = _bench(tmp_path)
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

    # the remaining stages run together in one worker, the finished one is not redone
    assert run_stage(run.dir, spec, ["train", "test", "semi"]) == "done"
    assert (run.dir / "test.log").read_text().count("=====") == 1 and not (run.dir / "semi.log").exists()
    test = read_json(run.dir / "eval_test.json")
    semi = read_json(run.dir / "eval_semi.json")["semi"]
    assert test["n_eval"] == 12 and set(semi) == {"0.1", "0.5"}
    assert semi["0.1"]["labels"] == 3 and semi["0.5"]["labels"] == 9
    assert run_stage(run.dir, spec, ["test", "semi"]) == "skipped"

    # a run folder is tied to its specification: no silent mixing of settings
    with pytest.raises(InputError, match=r"another specification \(differs in \['crop_size'\]\)"):
        run_stage(run.dir, {**spec, "crop_size": 10}, "train")
    # an unfinished stage (marker gone) is redone; the same seed gives the same untrained backbone
    os.remove(run.dir / "done.json")
    assert run_stage(run.dir, spec, "train") == "done"
    assert (run.dir / "backbone.pt").read_bytes() == weights


def test_a_crashing_worker_raises_with_its_log(tmp_path):
    bench = _bench(tmp_path)
    bench.prepare_data()
    run = Run(bench.out, RANDOM_INIT, {}, 0)
    crash = tmp_path / "crash"  # stands in for the Python that runs the worker: it crashes
    crash.write_text(f"#!{sys.executable}\nimport sys\nprint('worker exploded', flush=True)\nsys.exit(1)\n")
    crash.chmod(0o755)
    with pytest.raises(StageFailed) as caught:
        run_stage(run.dir, bench.spec(run), "train", python=str(crash))
    assert caught.value.stage == "train" and caught.value.code == 1
    assert "worker exploded" in caught.value.log_path.read_text()
    assert not is_done(run.dir, "train")


def test_bad_input_in_a_worker_is_one_line_naming_it(tmp_path):
    """A worker's input error (exit status 2 and its ``error:`` line) reaches the user as one line."""
    bench = _bench(tmp_path)
    bench.prepare_data()
    run = Run(bench.out, RANDOM_INIT, {}, 0)
    spec = bench.spec(run)
    spec["backbone"] = {"name": "no_such_backbone"}
    with pytest.raises(InputError) as caught:
        run_stage(run.dir, spec, "train")
    message = str(caught.value)
    assert "\n" not in message and "no_such_backbone" in message and "train.log" in message
    assert not is_done(run.dir, "train")


@pytest.mark.requires_solo
def test_latest_checkpoint_takes_the_newest_complete_one(tmp_path):
    import torch

    from sfrik_plugin.benchmark.stages import latest_checkpoint

    assert latest_checkpoint(tmp_path) is None
    a, b = tmp_path / "ckpt" / "sfrik" / "offline-a", tmp_path / "ckpt" / "sfrik" / "offline-b"
    a.mkdir(parents=True), b.mkdir(parents=True)
    torch.save({"epoch": 4}, a / "x-offline-a-ep=4.ckpt")
    torch.save({"epoch": 2}, b / "x-offline-b-ep=2.ckpt")
    (b / "x-offline-b-ep=9.ckpt").write_bytes(b"PK\x03\x04 cut while being written")
    torch.save({"epoch": 7}, b / ".x-offline-b-ep=7.ckpt.partial")  # an interrupted atomic save
    assert latest_checkpoint(tmp_path).name == "x-offline-a-ep=4.ckpt"


def test_a_malicious_backbone_file_in_a_run_folder_is_refused_and_never_runs(tmp_path):
    # the benchmark reads back the backbone.pt it wrote; one replaced by a crafted pickle is refused
    from pathlib import Path

    import torch

    from sfrik_plugin.benchmark.worker import _load_backbone
    from sfrik_plugin.files.checkpoints import UntrustedCheckpointError

    marker = tmp_path / "PWNED"

    class Payload:
        def __reduce__(self):
            return (Path(str(marker)).touch, ())

    torch.save({"features.0.weight": torch.zeros(1), "payload": Payload()}, tmp_path / "backbone.pt")
    spec = {"backbone": {"name": "small_cnn", "kwargs": {"width": 4}}}
    with pytest.raises(UntrustedCheckpointError, match="backbone.pt"):
        _load_backbone(tmp_path, spec)
    assert not marker.exists()

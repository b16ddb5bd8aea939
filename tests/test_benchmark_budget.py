"""The budget rule: a run is checked against the memory budget before it starts, and a run that
does not fit becomes a row with status "does not fit", its predicted bytes and the reason — never a
crash, never a silent drop. No worker is started here (every SSL run is made not to fit), so
solo-learn is not needed."""

from __future__ import annotations

import pytest
from _images import make_image_folder

from sfrik_plugin.benchmark.backbones import SmallCNN
from sfrik_plugin.benchmark.budget import backbone_size, fit_check, predicted_bytes, train_method_of
from sfrik_plugin.benchmark.plan import Run
from sfrik_plugin.benchmark.runner import Benchmark
from sfrik_plugin.benchmark.sweep_report import format_sweep_markdown, sweep_rows
from sfrik_plugin.contenders.memory import GIB, SAFETY_FACTOR, predict_train_bytes
from sfrik_plugin.files.records import read_json, write_json

CFG = {
    "crop_size": 28,
    "batch_size": 64,
    "projector": {"hidden": 1024, "q": 1024},
    "backbone": {"name": "small_cnn", "kwargs": {"width": 16}},
    "methods": {
        "sfrik": {"config": "custom/sfrik"},
        "vicreg": {"config": "custom/vicreg"},
        "barlow_twins": {"config": "custom/barlow"},
        "simclr": {"config": "custom/simclr"},
    },
}


def test_methods_map_to_the_registry_and_the_backbone_is_measured():
    assert [train_method_of(CFG, m) for m in CFG["methods"]] == ["sfrik", "vicreg", "barlow", None]
    size = backbone_size(CFG)
    net = SmallCNN(width=16)
    assert size.parameters == sum(p.numel() for p in net.parameters()) and size.features == 128
    # at least the four conv outputs of one 28 px image, float32, rescaled to the registry's 32 px unit
    convs = 16 * 28 * 28 + 32 * 14 * 14 + 64 * 7 * 7 + 128 * 4 * 4
    assert size.activation_bytes >= 4 * convs * (32 / 28) ** 2


def test_prediction_and_verdict_follow_the_contenders_model():
    size = backbone_size(CFG)
    for method, entry in (("sfrik", "sfrik"), ("vicreg", "vicreg"), ("barlow_twins", "barlow")):
        expected = predict_train_bytes(entry, 64, 16384, 1024, backbone=size, image_size=28)
        assert predicted_bytes(CFG, method, 16384) == expected
    budget = (8 * GIB, "8 GiB for the test")
    vicreg = fit_check(CFG, "vicreg", 16384, budget)
    sfrik = fit_check(CFG, "sfrik", 16384, budget)
    # VICReg's q x q covariance (1 GiB per matrix at q = 16384) does not fit; SFRIK's N x N Gram does
    assert vicreg["fits"] is False and vicreg["predicted_bytes"] * SAFETY_FACTOR > 8 * GIB
    assert vicreg["reason"].startswith("does not fit (predicted") and vicreg["budget_rule"] == "8 GiB for the test"
    assert sfrik["fits"] is True and sfrik["predicted_bytes"] * SAFETY_FACTOR <= 8 * GIB
    unknown = fit_check(CFG, "simclr", 16384, budget)
    assert unknown["fits"] is True and unknown["predicted_bytes"] is None and "not checked" in unknown["reason"]


def _sweep_cfg(tmp_path):
    return {
        "data": {
            "kind": "image_folder",
            "train_root": str(make_image_folder(tmp_path / "train", classes=3, per_class=6, size=12)),
            "test_root": str(make_image_folder(tmp_path / "test", classes=3, per_class=2, size=12, seed=1)),
            "train_per_class": 4,
            "val_per_class": 2,
        },
        "seeds": [0],
        "tune_seeds": [0],
        "epochs": 1,
        "crop_size": 12,
        "batch_size": 4,
        "projector": {"hidden": 16, "q": 8},
        "backbone": {"name": "small_cnn", "kwargs": {"width": 4}},
        "methods": {"sfrik": {"config": "custom/sfrik"}, "vicreg": {"config": "custom/vicreg"}},
        "evaluation": {},
        "sweep": {"qs": [8, 64], "equal_time": {"budget": "sfrik"}},
    }


def test_a_run_that_does_not_fit_is_a_row_with_its_reason_and_is_never_started(tmp_path):
    cfg = _sweep_cfg(tmp_path)
    out = tmp_path / "out"
    for method in cfg["methods"]:  # tuning finished (validation results on disk)
        write_json(Run(out, method, {}, 0).dir / "eval_val.json", {"linear": {"acc1": 50.0}, "knn": {"acc1": 40.0}})
    bench = Benchmark(cfg, out, memory_budget="1KiB")
    bench.sweep({"sfrik": {}, "vicreg": {}})  # returns normally: nothing crashed
    rows = sweep_rows(cfg, out)
    assert [(r["mode"], r["method"], r["q"], r["status"]) for r in rows] == [
        (mode, m, q, "does not fit")
        for mode in ("equal epochs", "equal time")
        for q in (8, 64)
        for m in ("sfrik", "vicreg")
    ]
    for row in rows:
        assert row["predicted_memory_mb"] > 0 and "does not fit (predicted" in row["reason"]
        assert "budget 1.0 KiB" in row["reason"]
    assert not list(out.glob("runs/**/attempts.json")) and not list(out.glob("runs/**/*.log"))  # no worker
    fit = read_json(Run(out, "vicreg", {}, 0, q=64).dir / "fit.json")
    assert fit["fits"] is False and fit["predicted_bytes"] == predicted_bytes(cfg, "vicreg", 64)
    assert "| equal epochs | vicreg | 64 | does not fit (predicted" in format_sweep_markdown(rows)

    # a larger budget judges the runs again (a run that was refused is not refused forever)
    assert Benchmark(cfg, out, memory_budget="1GiB").verdict(Run(out, "vicreg", {}, 0, q=64))["fits"] is True
    assert read_json(Run(out, "vicreg", {}, 0, q=64).dir / "fit.json")["fits"] is True


def test_a_started_run_keeps_its_verdict(tmp_path):
    cfg = _sweep_cfg(tmp_path)
    run = Run(tmp_path / "out", "vicreg", {}, 0)
    assert Benchmark(cfg, tmp_path / "out", memory_budget="1GiB").verdict(run)["fits"] is True
    write_json(run.dir / "attempts.json", [{"start": 0.0, "end": None}])  # its pretraining has begun
    assert Benchmark(cfg, tmp_path / "out", memory_budget="1KiB").verdict(run)["fits"] is True
    with pytest.raises(ValueError, match="positive"):
        Benchmark(cfg, tmp_path / "out", memory_budget="0")

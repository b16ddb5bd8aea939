"""The q-sweep plan (settings scaled with q, the reference point shared with the final runs, the
equal-time step budget) and its report built from run folders (statuses, margin over random init,
spread of the repeated point, files)."""

from __future__ import annotations

import pytest

from sfrik_plugin.benchmark.plan import RANDOM_INIT, Run
from sfrik_plugin.benchmark.sweep import (
    equal_time_budget,
    equal_time_run,
    equal_time_steps,
    scaled_setting,
    sweep_qs,
    sweep_run,
)
from sfrik_plugin.benchmark.sweep_report import sweep_rows, write_sweep_report
from sfrik_plugin.files.records import read_csv, write_json

CFG = {
    "data": {"train_per_class": 4, "val_per_class": 2},
    "seeds": [0, 1, 2],
    "tune_seeds": [0],
    "epochs": 3,
    "batch_size": 64,
    "projector": {"hidden": 1024, "q": 1024},
    "backbone": {"name": "small_cnn"},
    "methods": {
        "sfrik": {"config": "custom/sfrik", "grid": [{"method_kwargs.sim_coeff": 16000.0}]},
        "vicreg": {"config": "custom/vicreg", "grid": [{"method_kwargs.sim_loss_weight": 25.0}]},
    },
    "sweep": {
        "qs": [4096, 256, 1024],
        "scale_with_q": {"sfrik": {"method_kwargs.sim_coeff": 1.0}},
        "equal_time": {"budget": "sfrik"},
    },
}
SFRIK, VICREG = {"method_kwargs.sim_coeff": 16000.0}, {"method_kwargs.sim_loss_weight": 25.0}
CHOSEN = {"sfrik": SFRIK, "vicreg": VICREG}


def test_settings_scale_with_q_and_the_reference_point_is_the_final_run(tmp_path):
    assert sweep_qs(CFG) == [256, 1024, 4096]
    assert scaled_setting(SFRIK, 4096, 1024, {"method_kwargs.sim_coeff": 1.0}) == {"method_kwargs.sim_coeff": 64000.0}
    assert scaled_setting(SFRIK, 256, 1024, {"method_kwargs.sim_coeff": 1.0}) == {"method_kwargs.sim_coeff": 4000.0}
    assert scaled_setting({"w": 10}, 4096, 1024, {"w": -0.5}) == {"w": 5}  # ints stay ints when exact
    assert scaled_setting(SFRIK, 4096, 1024, None) == SFRIK
    with pytest.raises(KeyError, match="does not have"):
        scaled_setting(VICREG, 4096, 1024, {"method_kwargs.sim_coeff": 1.0})
    # lambda = q / sim_coeff is the same at every q
    for q in sweep_qs(CFG):
        run = sweep_run(CFG, tmp_path, "sfrik", SFRIK, q)
        assert q / run.setting["method_kwargs.sim_coeff"] == pytest.approx(1024 / 16000.0)
    assert sweep_run(CFG, tmp_path, "vicreg", VICREG, 4096).setting == VICREG  # unscaled
    # a key the grid does not tune scales from its value at the reference q, and only away from it
    cov = {"method_kwargs.cov_loss_weight": [-1.0, 1.0]}
    assert scaled_setting(VICREG, 8192, 1024, cov) == {**VICREG, "method_kwargs.cov_loss_weight": 0.125}
    assert scaled_setting(VICREG, 256, 1024, cov) == {**VICREG, "method_kwargs.cov_loss_weight": 4.0}
    assert scaled_setting(VICREG, 1024, 1024, cov) == VICREG  # the reference point is the tuned run itself
    tuned_cov = {**VICREG, "method_kwargs.cov_loss_weight": 2.0}  # a grid that does tune it wins over the base
    assert scaled_setting(tuned_cov, 2048, 1024, cov)["method_kwargs.cov_loss_weight"] == 1.0
    # at the reference q the sweep point is the seed-0 final run (same folder: computed once)
    assert sweep_run(CFG, tmp_path, "sfrik", SFRIK, 1024) == Run(tmp_path, "sfrik", SFRIK, 0)
    assert sweep_run(CFG, tmp_path, "sfrik", SFRIK, 256).name == "sim_coeff=4000.0,q=256"


def test_equal_time_step_budget():
    assert equal_time_steps(60.0, {"steps": 140, "wall_time_s": 42.0}) == 200
    assert equal_time_steps(42.0, {"steps": 140, "wall_time_s": 42.0}) == 140  # its own time: its own steps
    assert equal_time_steps(0.001, {"steps": 140, "wall_time_s": 42.0}) == 1  # at least one step
    with pytest.raises(ValueError, match="steps > 0"):
        equal_time_steps(1.0, {"steps": 0, "wall_time_s": 1.0})


def _pretrained(run, steps, wall, memory=900.0):
    write_json(
        run.dir / "pretrain.json",
        {
            "steps": steps,
            "planned_steps": steps,  # a finished pretraining, as the worker records it
            "wall_time_s": wall,
            "peak_memory_mb": memory,
            "images_per_s": steps * 64 / wall,
        },
    )


def _tested(run, linear, knn=50.0):
    write_json(run.dir / "eval_test.json", {"linear": {"acc1": linear}, "knn": {"acc1": knn}})


def test_equal_time_budget_from_the_reference_method(tmp_path):
    assert equal_time_budget(CFG, tmp_path, CHOSEN, 4096)[0] is None  # sfrik's run has not run yet
    _pretrained(sweep_run(CFG, tmp_path, "sfrik", SFRIK, 4096), 140, 40.0)
    seconds, how = equal_time_budget(CFG, tmp_path, CHOSEN, 4096)
    assert seconds == 40.0 and "sfrik's equal-epoch pretraining time at q=4096" in how
    fixed = {**CFG, "sweep": {**CFG["sweep"], "equal_time": {"budget": 90}}}
    assert equal_time_budget(fixed, tmp_path, CHOSEN, 4096)[0] == 90.0
    off = {**CFG, "sweep": {**CFG["sweep"], "equal_time": {"budget": None}}}
    assert equal_time_budget(off, tmp_path, CHOSEN, 4096)[0] is None
    # vicreg at 4x the time per step gets a quarter of the steps; sfrik's own run is reused
    _pretrained(sweep_run(CFG, tmp_path, "vicreg", VICREG, 4096), 140, 160.0)
    run, _ = equal_time_run(CFG, tmp_path, "vicreg", VICREG, 4096, 40.0)
    assert run.steps == 35 and run.q == 4096 and run.name == "sim_loss_weight=25.0,q=4096,steps=35"
    same, note = equal_time_run(CFG, tmp_path, "sfrik", SFRIK, 4096, 40.0)
    assert same == sweep_run(CFG, tmp_path, "sfrik", SFRIK, 4096) and "equal-epoch run" in note
    assert equal_time_run(CFG, tmp_path, "vicreg", VICREG, 256, 40.0)[0] is None  # no rate yet


def test_sweep_rows_and_report_from_run_folders(tmp_path):
    for seed, (base, s, v) in enumerate([(70.0, 80.0, 79.0), (72.0, 81.0, 80.0), (71.0, 82.0, 78.0)]):
        for run, acc in (
            (Run(tmp_path, RANDOM_INIT, {}, seed), base),
            (Run(tmp_path, "sfrik", SFRIK, seed), s),
            (Run(tmp_path, "vicreg", VICREG, seed), v),
        ):
            _tested(run, acc)
            if run.method != RANDOM_INIT:
                _pretrained(run, 140, 30.0 if run.method == "sfrik" else 60.0)
                write_json(run.dir / "eval_val.json", {"linear": {"acc1": acc}, "knn": {"acc1": 0.0}})
    at = {q: {m: sweep_run(CFG, tmp_path, m, CHOSEN[m], q) for m in CHOSEN} for q in (256, 4096)}
    for m, acc in (("sfrik", 79.0), ("vicreg", 75.0)):
        _pretrained(at[256][m], 140, 20.0 if m == "sfrik" else 40.0)
        _tested(at[256][m], acc)
    _pretrained(at[4096]["sfrik"], 140, 40.0, memory=1000.0)
    _tested(at[4096]["sfrik"], 83.0)
    write_json(
        at[4096]["vicreg"].dir / "fit.json",
        {"fits": False, "predicted_bytes": 10 * 2**30, "reason": "does not fit (predicted 10 GiB)"},
    )
    eq = sweep_run(CFG, tmp_path, "vicreg", VICREG, 1024, steps=70)  # half as fast: half the steps in sfrik's time
    write_json(eq.dir / "failed.json", {"stage": "train", "exit_code": -9, "log": "train.log"})

    rows = sweep_rows(CFG, tmp_path)
    table = {(r["mode"], r["method"], r["q"]): r for r in rows}
    assert len(rows) == 12
    assert table["equal epochs", "sfrik", 4096]["status"] == "done"
    assert table["equal epochs", "sfrik", 4096]["margin_linear"] == pytest.approx(83.0 - 71.0)
    assert table["equal epochs", "vicreg", 4096]["status"] == "does not fit"
    assert table["equal epochs", "vicreg", 4096]["predicted_memory_mb"] == 10 * 1024
    assert table["equal time", "vicreg", 4096]["status"] == "does not fit"  # cannot do better with less time
    assert table["equal epochs", "sfrik", 1024]["linear"] == 80.0  # the seed-0 final run
    assert table["equal time", "sfrik", 1024]["status"] == "done"  # = its equal-epoch run
    assert (
        table["equal time", "vicreg", 1024]["status"] == "failed"
        and "exit code -9" in table["equal time", "vicreg", 1024]["reason"]
    )
    assert (
        table["equal time", "vicreg", 256]["status"] == "pending"
        and table["equal time", "vicreg", 256]["budget_s"] == 20.0
    )

    report = write_sweep_report(tmp_path, CFG, budget_rule="8 GiB")
    assert {p.rsplit("/", 1)[-1] for p in report["files"]} == {"sweep.md", "sweep.csv", "sweep.png"}
    markdown = (tmp_path / "sweep.md").read_text()
    assert "Random initialisation (mean of 3 seeds): linear 71.00" in markdown
    assert "sfrik ±1.00 (n=3), vicreg ±1.00 (n=3)" in markdown  # the spread of the repeated point
    assert "Not clearly above random initialisation" not in markdown
    assert "| equal epochs | vicreg | 4096 | does not fit (predicted 10 GiB) |" in markdown
    csv_rows = read_csv(tmp_path / "sweep.csv")
    assert [(r["mode"], r["method"], r["q"], r["status"]) for r in csv_rows] == [
        (r["mode"], r["method"], str(r["q"]), r["status"]) for r in rows
    ]

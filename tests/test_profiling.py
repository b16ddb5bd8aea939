"""The testable pieces of the profiling tools: parsing, memory prediction and budget, slope fits,
process isolation, summaries and writers. Nothing here times anything or compares speeds."""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from sfrik_plugin import profiling as P
from sfrik_plugin.benchmarking import peak_memory_bytes, read_meminfo

REPO_ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize(
    "tokens, expected",
    [
        (["256"], [256]),
        (["1024:8192"], [1024, 2048, 4096, 8192]),
        (["1k:4k", "2^13", "32768"], [1024, 2048, 4096, 8192, 32768]),
        (["2048,256", "256"], [256, 2048]),
        (["8:1000:10"], [8, 80, 800]),
        ("16k", [16384]),
        ([512, "1m"], [512, 1048576]),
    ],
)
def test_parse_int_list(tokens, expected):
    assert P.parse_int_list(tokens) == expected


@pytest.mark.parametrize(
    "tokens, message",
    [
        (["12x"], "not an integer"),
        (["1:2:3:4"], "bad range"),
        (["64:8"], "bad range"),
        (["8:64:1"], "bad range"),
        ([""], "no q given"),
        (["1", "64"], ">= 2"),
    ],
)
def test_parse_int_list_rejects(tokens, message):
    with pytest.raises(ValueError, match=message):
        P.parse_int_list(tokens, minimum=2, name="q")


def test_parse_dtype_and_bytes():
    assert P.parse_dtype("fp32") is torch.float32
    assert P.parse_dtype("torch.bfloat16") is torch.bfloat16
    assert P.parse_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="unknown dtype"):
        P.parse_dtype("int8")
    assert P.parse_bytes("8GiB") == 8 * 2**30
    assert P.parse_bytes("512M") == 512 * 2**20
    assert P.parse_bytes("1.5g") == 3 * 2**29
    assert P.parse_bytes(1000) == 1000
    with pytest.raises(ValueError, match="not a memory size"):
        P.parse_bytes("lots")
    assert P.format_bytes(3 * 2**30) == "3.0 GiB"
    assert P.format_bytes(1536 * 2**10) == "1.5 MiB"
    assert P.format_bytes(None) == "–"


# ------------------------------------------------------------------------- memory: the budget


def test_read_meminfo_parses_kilobytes(tmp_path):
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       24684092 kB\nMemAvailable:   20817748 kB\nHugePages_Total:       0\n")
    info = read_meminfo(fake)
    assert info["MemTotal"] == 24684092 * 1024
    assert info["MemAvailable"] == 20817748 * 1024
    assert info["HugePages_Total"] == 0
    assert read_meminfo(tmp_path / "missing") == {}


def test_memory_budget_cpu_is_half_the_available_memory_capped_at_8_gib():
    assert P.memory_budget("cpu", available=4 * P.GIB)[0] == 2 * P.GIB
    value, text = P.memory_budget("cpu", available=40 * P.GIB)
    assert value == 8 * P.GIB and "8.0 GiB" in text
    value, text = P.memory_budget("cpu", override="12GiB", available=1 * P.GIB)
    assert value == 12 * P.GIB and "--memory-budget" in text
    with pytest.raises(ValueError, match="positive"):
        P.memory_budget("cpu", override="0")


def test_memory_budget_reads_this_machine():
    value, text = P.memory_budget("cpu")
    assert 0 < value <= 8 * P.GIB
    assert "available" in text


# --------------------------------------------------------------------- memory: the prediction


def test_prediction_scales_as_claimed():
    n = 256
    for contender in ("vicreg", "barlow", "sfrik-feature"):  # O(q²) memory
        small, large = (P.predict_loss_peak_bytes(contender, n, q) for q in (8192, 16384))
        assert 3.8 < large / small <= 4.0
    for contender in ("sfrik-gram", "sfrik-blocked"):  # O(N q) for the gradients, O(N²) for the kernel
        small, large = (P.predict_loss_peak_bytes(contender, n, q) for q in (8192, 16384))
        assert 1.9 < large / small <= 2.0
    # the figures: q x q float32 is 4 GiB at q = 32768, and VICReg holds several
    assert P.predict_loss_peak_bytes("vicreg", 256, 32768) > 6 * 4 * P.GIB
    assert P.predict_loss_peak_bytes("sfrik-gram", 256, 32768) < 100 * P.MIB
    # half precision halves the solo-learn matrices; SFRIK's N² terms stay float32
    assert P.predict_loss_peak_bytes("vicreg", 256, 4096, "bf16") * 2 == pytest.approx(
        P.predict_loss_peak_bytes("vicreg", 256, 4096), rel=1e-3
    )
    assert (
        P.predict_loss_total_bytes("sfrik-gram", 8, 16)
        == P.predict_loss_peak_bytes("sfrik-gram", 8, 16) + 2 * 8 * 16 * 4
    )


def test_prediction_rejects_nonsense():
    with pytest.raises(ValueError, match="unknown contender"):
        P.predict_loss_peak_bytes("simclr", 8, 8)
    with pytest.raises(ValueError, match="positive integer"):
        P.predict_loss_peak_bytes("vicreg", 0, 8)


@pytest.mark.parametrize("contender", ["sfrik-gram", "sfrik-blocked", "sfrik-feature"])
@pytest.mark.parametrize("n, q", [(64, 256), (32, 512)])
def test_prediction_bounds_the_measured_allocation_peak_of_sfrik(contender, n, q):
    torch.manual_seed(0)
    z1, z2 = (torch.randn(n, q, requires_grad=True) for _ in range(2))
    step = P._loss_step(contender, z1, z2, block_size=None)
    step()  # warm-up
    measured = peak_memory_bytes(step)
    predicted = P.predict_loss_peak_bytes(contender, n, q)
    assert 0.4 * predicted <= measured <= predicted


def test_fit_verdict_and_the_q_32768_case():
    budget = 8 * P.GIB
    fits, reason = P.fit_verdict(P.predict_loss_total_bytes("vicreg", 256, 32768), budget)
    assert not fits and reason.startswith("does not fit (predicted 26.2 GiB x 1.5") and "budget 8.0 GiB" in reason
    fits, reason = P.fit_verdict(P.predict_loss_total_bytes("sfrik-gram", 256, 32768), budget)
    assert fits and reason.startswith("fits")
    assert not P.fit_verdict(6 * P.GIB, budget)[0]  # 6 x 1.5 > 8: the safety factor counts
    assert P.fit_verdict(5 * P.GIB, budget)[0]


def test_training_prediction_refuses_vicreg_at_32768_but_not_sfrik():
    budget = 8 * P.GIB
    assert not P.fit_verdict(P.predict_train_bytes("vicreg", 64, 32768, 2048), budget)[0]
    assert not P.fit_verdict(P.predict_train_bytes("barlow", 64, 32768, 2048), budget)[0]
    assert P.fit_verdict(P.predict_train_bytes("sfrik", 64, 32768, 2048), budget)[0]
    assert (
        P.projector_parameters(512, 2048, 8192)
        == (512 * 2048 + 3 * 2048) + (2048 * 2048 + 3 * 2048) + 2048 * 8192 + 8192
    )
    with pytest.raises(ValueError, match="unknown method"):
        P.predict_train_bytes("byol", 64, 8, 8)


# ------------------------------------------------------------------------------- slope fits


def test_fit_power_law_recovers_exact_exponents():
    qs = [1024, 2048, 4096, 8192, 16384]
    for slope in (1.0, 2.0, 0.5):
        fit = P.fit_power_law(qs, [3e-7 * q**slope for q in qs])
        assert fit["slope"] == pytest.approx(slope, abs=1e-12)
        assert math.exp(fit["intercept"]) == pytest.approx(3e-7, rel=1e-9)
        assert fit["r2"] == pytest.approx(1.0)
        assert fit["points"] == 5


def test_fit_power_law_on_noisy_and_overhead_bound_data():
    qs = [2**k for k in range(10, 16)]
    noise = [1.1, 0.93, 1.05, 0.97, 1.08, 0.95]  # multiplicative, ±10 %
    fit = P.fit_power_law(qs, [1e-9 * q**2 * e for q, e in zip(qs, noise)])
    assert abs(fit["slope"] - 2.0) < 0.1 and fit["r2"] > 0.99
    # a constant overhead flattens the slope of a linear cost at small sizes
    flattened = P.fit_power_law(qs, [0.01 + 1e-6 * q for q in qs])
    assert 0.2 < flattened["slope"] < 1.0


@pytest.mark.parametrize(
    "xs, ys, message",
    [
        ([1], [1], "at least 2 points"),
        ([1, 2], [1], "differ in length"),
        ([1, 2], [0, 1], "positive"),
        ([4, 4], [1, 2], "distinct"),
    ],
)
def test_fit_power_law_rejects(xs, ys, message):
    with pytest.raises(ValueError, match=message):
        P.fit_power_law(xs, ys)


def test_extrapolation_never_assumes_less_than_the_complexity():
    assert P.extrapolate_seconds({}, 4096, 2.0) is None
    assert P.extrapolate_seconds({1024: 0.5}, 4096, 2.0) == pytest.approx(8.0)
    # overhead-bound small sizes (slope ~0) do not fool it below the claimed exponent
    assert P.extrapolate_seconds({1024: 1.0, 2048: 1.0}, 8192, 1.0) == pytest.approx(4.0)
    # a measured slope above the floor is used
    assert P.extrapolate_seconds({1024: 1.0, 2048: 8.0}, 4096, 1.0) == pytest.approx(64.0)
    # only smaller q inform the guess
    assert P.extrapolate_seconds({1024: 1.0, 8192: 1e6}, 2048, 1.0) == pytest.approx(2.0)


def test_repeats_follow_the_time_budget():
    spec = {"min_repeats": 2, "max_repeats": 25, "config_seconds": 10}
    assert P._repeats_for(0.001, spec) == 25
    assert P._repeats_for(2.0, spec) == 5
    assert P._repeats_for(30.0, spec) == 2
    with pytest.raises(ValueError, match="max_repeats"):
        P._repeats_for(1.0, {"min_repeats": 3, "max_repeats": 2})


# ------------------------------------------------------------------------------- isolation


@pytest.fixture(scope="module")
def context():
    return P.isolation_context(["torch", "sfrik_plugin"])


def test_describe_exit():
    assert "SIGKILL" in P.describe_exit(-9) and "out-of-memory" in P.describe_exit(-9)
    assert P.describe_exit(-11) == "killed by SIGSEGV"
    assert P.describe_exit(3) == "exited with status 3"


def test_isolated_loss_worker_reports_samples_and_memory(context, tmp_path):
    spec = dict(
        contender="sfrik-gram",
        n=16,
        q=32,
        warmup=1,
        min_repeats=2,
        max_repeats=3,
        threads=1,
        log=str(tmp_path / "w.log"),
    )
    result = P.run_isolated(P.loss_worker, spec, timeout=300, context=context)
    assert result["status"] == "ok", result
    assert 2 <= len(result["samples"]) <= 3 and all(s > 0 for s in result["samples"])
    assert result["peak_bytes"] > 0 and result["alloc_peak_bytes"] == result["peak_bytes"]
    assert result["threads"] == 1
    assert os.getpid() != result.get("pid", None)


def test_isolated_worker_errors_and_deaths_are_rows_not_exceptions(context):
    failed = P.run_isolated(P.loss_worker, dict(contender="nope", n=4, q=4), timeout=300, context=context)
    assert failed["status"] == "failed" and "unknown contender 'nope'" in failed["reason"]
    crashed = P.run_isolated(os._exit, 3, timeout=300, context=context)
    assert crashed == {"status": "crashed", "reason": "exited with status 3"}
    stalled = P.run_isolated(time.sleep, 120, timeout=0.5, context=context)
    assert stalled["status"] == "timeout"


def test_address_space_limit_turns_an_oversized_loss_into_an_oom_row(context):
    # 2 x 256 x 262144 floats = 512 MiB of inputs against a 64 MiB allowance: refused, reported
    spec = dict(contender="sfrik-gram", n=256, q=262144, address_space_limit=64 * P.MIB, threads=1)
    result = P.run_isolated(P.loss_worker, spec, timeout=300, context=context)
    assert result["status"] == "oom", result
    assert "out of memory" in result["reason"]


# ------------------------------------------------------------------------ summaries, writers


def _synthetic_loss_rows():
    rows = []
    for contender, seconds, mib, exponent in (("sfrik-gram", 2e-5, 0.02, 1), ("vicreg", 4e-8, 7e-6 * 4, 2)):
        for q in (1024, 2048, 4096, 8192):
            rows.append(
                dict(
                    contender=contender,
                    N=256,
                    q=q,
                    status="ok",
                    median_s=seconds * q**exponent,
                    min_s=0.9 * seconds * q**exponent,
                    max_s=1.2 * seconds * q**exponent,
                    peak_mib=mib * q**exponent,
                )
            )
    rows.append(
        dict(
            contender="sfrik-gram",
            N=256,
            q=32768,
            status="ok",
            median_s=2e-5 * 32768,
            min_s=0.6,
            max_s=0.7,
            peak_mib=0.02 * 32768,
        )
    )
    rows.append(
        dict(
            contender="vicreg",
            N=256,
            q=32768,
            status="does-not-fit",
            reason="does not fit (predicted 26.3 GiB x 1.25 > budget 8.0 GiB)",
            median_s=None,
            peak_mib=None,
        )
    )
    return rows


def test_loss_summary_slopes_and_ratios():
    summary = P.loss_summary(_synthetic_loss_rows())
    assert summary["slopes"]["sfrik-gram"]["256"]["time"]["slope"] == pytest.approx(1.0)
    assert summary["slopes"]["vicreg"]["256"]["time"]["slope"] == pytest.approx(2.0)
    assert summary["slopes"]["vicreg"]["256"]["memory"]["slope"] == pytest.approx(2.0)
    assert summary["slopes"]["vicreg"]["256"]["q_range"] == [1024, 8192]  # the non-fitting q is left out
    by_q = {e["q"]: e for e in summary["ratios"]}
    assert by_q[8192]["time_ratio"] == pytest.approx(4e-8 * 8192**2 / (2e-5 * 8192))
    assert by_q[32768]["baseline_status"] == "does-not-fit" and "time_ratio" not in by_q[32768]


def test_train_summary_finds_the_crossover():
    rows = [
        dict(method=m, q=q, status="ok", median_s=t, peak_mib=p)
        for m, q, t, p in (
            ("sfrik", 2048, 1.05, 900),
            ("vicreg", 2048, 1.00, 880),
            ("sfrik", 8192, 1.10, 1000),
            ("vicreg", 8192, 1.20, 1500),
            ("sfrik", 16384, 1.20, 1200),
            ("vicreg", 16384, 2.00, 4000),
        )
    ]
    rows.append(dict(method="sfrik", q=32768, status="ok", median_s=1.4, peak_mib=1500))
    rows.append(dict(method="vicreg", q=32768, status="does-not-fit", reason="does not fit", median_s=None))
    summary = P.train_summary(rows)
    per_q = {e["q"]: e for e in summary["per_q"]}
    assert per_q[2048]["speedup_percent"] == pytest.approx(100 * (1.00 / 1.05 - 1))
    assert per_q[16384]["speedup_percent"] == pytest.approx(100 * (2.0 / 1.2 - 1))
    assert per_q[16384]["memory_saving_percent"] == pytest.approx(70.0)
    assert per_q[32768]["speedup_percent"] == math.inf
    assert summary["crossover_q"] == 8192


def test_result_row_summarises_samples_and_failures():
    row = P.result_row(
        {"q": 8},
        {
            "status": "ok",
            "samples": [3.0, 1.0, 2.0],
            "warmup_s": [5.0],
            "peak_bytes": 2 * P.MIB,
            "rss_peak_bytes": P.MIB,
        },
    )
    assert (row["median_s"], row["min_s"], row["max_s"], row["repeats"]) == (2.0, 1.0, 3.0, 3)
    assert row["spread"] == pytest.approx(1.0) and row["peak_mib"] == 2.0 and row["rss_peak_mib"] == 1.0
    assert row["process_peak_rss_mib"] is None
    row = P.result_row({"q": 8}, {"status": "oom", "reason": "out of memory: x"})
    assert row["status"] == "oom" and row["median_s"] is None and row["repeats"] == 0


def test_csv_json_and_markdown_writers(tmp_path):
    rows = [
        {"q": 8, "median_s": 0.5, "status": "ok"},
        {"q": 16, "median_s": None, "status": "does-not-fit", "reason": "too big"},
    ]
    path = P.write_csv(rows, tmp_path / "sub" / "rows.csv")
    with open(path) as handle:
        read = list(csv.DictReader(handle))
    assert [r["q"] for r in read] == ["8", "16"]
    assert read[0]["reason"] == "" and read[1]["median_s"] == "" and read[1]["reason"] == "too big"
    path = P.write_json(
        {"rows": rows, "inf": math.inf, "nan": math.nan, "dtype": torch.float32}, tmp_path / "rows.json"
    )
    payload = json.loads(path.read_text())
    assert payload["inf"] == "inf" and payload["nan"] is None and payload["dtype"] == "torch.float32"
    table = P.markdown_table(rows, [("q", "q", "d"), ("median_s", "median (s)", ".2f"), ("status", "status", "s")])
    assert table.splitlines() == [
        "| q | median (s) | status |",
        "|---|---|---|",
        "| 8 | 0.50 | ok |",
        "| 16 | – | does-not-fit |",
    ]


def test_plots_are_written(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (a dev extra) is not installed")
    rows = _synthetic_loss_rows()
    path = P.plot_loss(rows, P.loss_summary(rows), tmp_path / "loss.png", title="synthetic")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    train_rows = [
        dict(method=m, q=q, status="ok", median_s=t, peak_mib=p, images_per_s=64 / t)
        for m, q, t, p in (
            ("sfrik", 2048, 1.0, 900),
            ("vicreg", 2048, 1.1, 950),
            ("barlow", 2048, 1.1, 950),
            ("sfrik", 8192, 1.2, 1000),
            ("vicreg", 8192, 2.0, 2500),
        )
    ]
    path = P.plot_train(train_rows, P.train_summary(train_rows), tmp_path / "train.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# --------------------------------------------------------------------------------- the script


def test_profile_loss_script_end_to_end_on_a_tiny_grid(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (a dev extra) is not installed")
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "scripts" / "profile_loss.py"),
            "--sizes",
            "16",
            "--dims",
            "32,64",
            "--contenders",
            "sfrik-gram",
            "sfrik-blocked",
            "--max-repeats",
            "2",
            "--memory-budget",
            "1GiB",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "loss configurations" in proc.stderr  # progress
    rows = list(csv.DictReader(open(out / "profile_loss.csv")))
    assert {(r["contender"], r["q"], r["status"]) for r in rows} == {
        (c, q, "ok") for c in ("sfrik-gram", "sfrik-blocked") for q in ("32", "64")
    }
    payload = json.loads((out / "profile_loss.json").read_text())
    assert payload["machine"]["cpu_count"] == os.cpu_count() and payload["machine"]["torch"] == torch.__version__
    assert payload["memory_budget"] == "--memory-budget 1.0 GiB"
    assert "sfrik-gram" in payload["summary"]["slopes"]
    assert (out / "profile_loss.md").read_text().startswith("Machine:")
    assert (out / "profile_loss.png").read_bytes()[:4] == b"\x89PNG"


def test_profile_scripts_help_prints_the_gpu_commands():
    for script, expected in (
        ("profile_loss.py", "--device cuda --sizes 256 2048"),
        ("profile_train.py", "--backbone resnet50 --image-size 224"),
    ):
        proc = subprocess.run(
            [sys.executable, str(REPO_ROOT / "scripts" / script), "--help"], capture_output=True, text=True, timeout=120
        )
        assert proc.returncode == 0 and expected in proc.stdout

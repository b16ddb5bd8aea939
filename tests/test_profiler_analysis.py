"""From samples to conclusions: power-law fits, extrapolation, repeats, rows and the loss and
training summaries, on synthetic numbers with known answers."""

from __future__ import annotations

import math

import pytest

from sfrik_plugin.contenders import MIB
from sfrik_plugin.profiler.analysis import (
    extrapolate_seconds,
    fit_power_law,
    loss_summary,
    result_row,
    train_summary,
)
from sfrik_plugin.profiler.workers import repeats_for


def test_fit_power_law_recovers_exact_exponents():
    qs = [1024, 2048, 4096, 8192, 16384]
    for slope in (1.0, 2.0, 0.5):
        fit = fit_power_law(qs, [3e-7 * q**slope for q in qs])
        assert fit["slope"] == pytest.approx(slope, abs=1e-12)
        assert math.exp(fit["intercept"]) == pytest.approx(3e-7, rel=1e-9)
        assert fit["r2"] == pytest.approx(1.0)
        assert fit["points"] == 5


def test_fit_power_law_on_noisy_and_overhead_bound_data():
    qs = [2**k for k in range(10, 16)]
    noise = [1.1, 0.93, 1.05, 0.97, 1.08, 0.95]  # multiplicative, ±10 %
    fit = fit_power_law(qs, [1e-9 * q**2 * e for q, e in zip(qs, noise)])
    assert abs(fit["slope"] - 2.0) < 0.1 and fit["r2"] > 0.99
    # a constant overhead flattens the slope of a linear cost at small sizes
    flattened = fit_power_law(qs, [0.01 + 1e-6 * q for q in qs])
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
        fit_power_law(xs, ys)


def test_extrapolation_never_assumes_less_than_the_complexity():
    assert extrapolate_seconds({}, 4096, 2.0) is None
    assert extrapolate_seconds({1024: 0.5}, 4096, 2.0) == pytest.approx(8.0)
    # overhead-bound small sizes (slope ~0) do not fool it below the claimed exponent
    assert extrapolate_seconds({1024: 1.0, 2048: 1.0}, 8192, 1.0) == pytest.approx(4.0)
    # a measured slope above the floor is used
    assert extrapolate_seconds({1024: 1.0, 2048: 8.0}, 4096, 1.0) == pytest.approx(64.0)
    # only smaller q inform the guess
    assert extrapolate_seconds({1024: 1.0, 8192: 1e6}, 2048, 1.0) == pytest.approx(2.0)


def test_repeats_follow_the_time_budget():
    spec = {"min_repeats": 2, "max_repeats": 25, "config_seconds": 10}
    assert repeats_for(0.001, spec) == 25
    assert repeats_for(2.0, spec) == 5
    assert repeats_for(30.0, spec) == 2
    with pytest.raises(ValueError, match=r"max_repeats \(2\) < min_repeats \(3\)"):
        repeats_for(1.0, {"min_repeats": 3, "max_repeats": 2})


def synthetic_loss_rows() -> list[dict]:
    """SFRIK linear and VICReg quadratic in q at N = 256, and a VICReg that did not fit at 32768."""
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
            reason="does not fit (predicted 39.2 GiB x 1.5 > budget 8.0 GiB)",
            median_s=None,
            peak_mib=None,
            predicted_mib=39.2 * 1024,
        )
    )
    return rows


def test_loss_summary_slopes_and_ratios():
    summary = loss_summary(synthetic_loss_rows())
    assert summary["slopes"]["sfrik-gram"]["256"]["time"]["slope"] == pytest.approx(1.0)
    assert summary["slopes"]["vicreg"]["256"]["time"]["slope"] == pytest.approx(2.0)
    assert summary["slopes"]["vicreg"]["256"]["memory"]["slope"] == pytest.approx(2.0)
    assert summary["slopes"]["vicreg"]["256"]["q_range"] == [1024, 8192]  # the non-fitting q is left out
    by_q = {e["q"]: e for e in summary["ratios"]}
    assert by_q[8192]["time_ratio"] == pytest.approx(4e-8 * 8192**2 / (2e-5 * 8192))
    assert by_q[32768]["baseline_status"] == "does-not-fit" and "time_ratio" not in by_q[32768]


def synthetic_train_rows() -> list[dict]:
    rows = [
        dict(method=m, q=q, status="ok", median_s=t, peak_mib=p, images_per_s=64 / t)
        for m, q, t, p in (
            ("sfrik", 2048, 1.05, 900),
            ("vicreg", 2048, 1.00, 880),
            ("barlow", 2048, 1.10, 950),
            ("sfrik", 8192, 1.10, 1000),
            ("vicreg", 8192, 1.20, 1500),
            ("sfrik", 16384, 1.20, 1200),
            ("vicreg", 16384, 2.00, 4000),
        )
    ]
    rows.append(dict(method="sfrik", q=32768, status="ok", median_s=1.4, peak_mib=1500, images_per_s=64 / 1.4))
    rows.append(dict(method="vicreg", q=32768, status="does-not-fit", reason="does not fit", median_s=None))
    return rows


def test_train_summary_finds_the_crossover():
    summary = train_summary(synthetic_train_rows())
    per_q = {e["q"]: e for e in summary["per_q"]}
    assert per_q[2048]["speedup_percent"] == pytest.approx(100 * (1.00 / 1.05 - 1))
    assert per_q[16384]["speedup_percent"] == pytest.approx(100 * (2.0 / 1.2 - 1))
    assert per_q[16384]["memory_saving_percent"] == pytest.approx(70.0)
    assert per_q[32768]["speedup_percent"] == math.inf
    assert summary["crossover_q"] == 8192


def test_result_row_summarises_samples_and_failures():
    row = result_row(
        {"q": 8},
        {"status": "ok", "samples": [3.0, 1.0, 2.0], "warmup_s": [5.0], "peak_bytes": 2 * MIB, "rss_peak_bytes": MIB},
    )
    assert (row["median_s"], row["min_s"], row["max_s"], row["repeats"], row["warmup_s"]) == (2.0, 1.0, 3.0, 3, 5.0)
    assert row["spread"] == pytest.approx(1.0) and row["peak_mib"] == 2.0 and row["rss_peak_mib"] == 1.0
    assert row["process_peak_rss_mib"] is None
    row = result_row({"q": 8}, {"status": "oom", "reason": "out of memory: x"})
    assert (
        row["status"] == "oom"
        and row["median_s"] is None
        and row["repeats"] == 0
        and row["reason"] == "out of memory: x"
    )
    assert result_row({"q": 8}, {})["status"] == "failed"

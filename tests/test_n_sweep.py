"""The N-sweep: the flop model against torch's own flop counter, the predicted crossover against a
brute-force search over N, the measured crossover against power laws with a known crossing, the
memory verdicts, and the script end to end on a tiny grid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from sfrik_plugin.files.records import read_csv
from sfrik_plugin.profiler.n_sweep import (
    crossovers,
    measured_crossover,
    predicted_crossover,
    sfrik_flops,
    sigreg_flops,
    sweep_cells,
)
from sfrik_plugin.profiler.n_sweep_report import n_sweep_table
from sfrik_plugin.profiler.workers import loss_step

REPO_ROOT = Path(__file__).resolve().parents[1]
GIB = 2**30


def _counted_flops(contender, n: int, q: int, options=None) -> int:
    z1, z2 = (torch.randn(n, q, requires_grad=True) for _ in range(2))
    step = loss_step(contender, z1, z2, options)
    step()  # a first call builds what is cached
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops()


@pytest.mark.parametrize("n,q", [(64, 32), (48, 80)])
def test_the_product_flops_of_the_model_are_torch_s_count(n, q):
    assert _counted_flops("sfrik-gram", n, q) == sfrik_flops(n, q, elementwise=False)
    blocked = _counted_flops("sfrik-blocked", n, q, {"block_size": 16})
    assert blocked == sfrik_flops(n, q, path="blocked", elementwise=False)


def test_the_product_flops_of_sigreg_are_torch_s_count():
    from sfrik_plugin.contenders.sigreg import lightly_status, sigreg_contender

    if not lightly_status()[0]:
        pytest.skip(lightly_status()[1])
    for slices in (16, 40):
        assert _counted_flops(sigreg_contender(slices), 64, 32) == sigreg_flops(64, 32, slices, elementwise=False)


@pytest.mark.parametrize("q,slices", [(1024, 256), (1024, 4096), (8192, 1024), (64, 32)])
def test_the_predicted_crossover_is_where_the_flop_counts_meet(q, slices):
    predicted = predicted_crossover(q, slices)
    # brute force: the first integer N at which SIGReg needs fewer operations than SFRIK
    first = next(n for n in range(1, 20 * slices) if sigreg_flops(n, q, slices) < sfrik_flops(n, q))
    assert first - 1 <= predicted <= first
    if q >= 1024:  # N* ≈ M when q is much larger than the knots
        assert slices <= predicted <= 1.05 * slices
    for world in (2, 4):  # per rank: sharding divides both sides, replication only SIGReg's
        assert predicted_crossover(q, slices, world_size=world) == pytest.approx(predicted)
        replicated = predicted_crossover(q, slices, world_size=world, mode="replicated")
        n = round(replicated)
        assert sigreg_flops(n, q, slices, world_size=world) == pytest.approx(
            sfrik_flops(n, q, world_size=world, mode="replicated"), rel=2 / n
        )


def test_the_measured_crossover_of_power_laws_is_exact():
    sizes = [64, 128, 256, 512, 1024, 2048, 4096]
    sfrik = [2e-7 * n * n for n in sizes]  # O(N²)
    sigreg = [1e-4 * n for n in sizes]  # O(N): equal at N = 500
    found = measured_crossover(sizes, sfrik, sigreg)
    assert found["n"] == pytest.approx(500.0)
    assert found["how"] == "interpolated between N = 256 and N = 512"
    short = measured_crossover(sizes[:3], sfrik[:3], sigreg[:3])  # the sweep stops before it
    assert short["n"] is None and short["extrapolated"] == pytest.approx(500.0)
    faster = measured_crossover(sizes, sigreg, [t / 10 for t in sigreg])  # SIGReg ahead throughout
    assert faster["n"] is None and "extrapolated" not in faster and faster["how"].startswith("SIGReg")
    missing = measured_crossover([64, 128], [None, 1.0], [2.0, None])
    assert missing == {"n": None, "how": "no size where both were measured"}


def test_crossovers_pair_each_slice_count_with_the_gram_path():
    rows = [dict(method="sfrik-gram", N=n, q=16, M=None, status="ok", median_s=1e-6 * n * n) for n in (8, 16, 32)]
    rows += [dict(method="sigreg-m8", N=n, q=16, M=8, status="ok", median_s=2e-5 * n) for n in (8, 16, 32)]
    rows += [dict(method="sigreg-m64", N=32, q=16, M=64, status="skipped", reason="does not fit")]
    found = {f["M"]: f for f in crossovers(rows)}
    assert found[8]["measured_n"] == pytest.approx(20.0)
    assert found[8]["predicted_n"] == pytest.approx(predicted_crossover(16, 8), abs=0.05)
    assert found[64]["measured_n"] is None and found[64]["how"] == "no size where both were measured"


def test_what_cannot_fit_is_reported_as_the_q_sweep_does():
    cells = sweep_cells([64, 8192], [1024], [4096], budget=8 * GIB, paths=["gram", "blocked", "sharded"])
    verdicts = {(c.method, c.n): c for c in cells}
    assert verdicts[("sigreg-m4096", 64)].fits and not verdicts[("sigreg-m4096", 8192)].fits
    assert verdicts[("sigreg-m4096", 8192)].verdict.startswith("does not fit (predicted 22.1 GiB x 1.5")
    # the blocked path keeps its Gram block at 512 × N: less memory than the full Gram at N = 8192
    assert verdicts[("sfrik-blocked", 8192)].predicted_bytes < verdicts[("sfrik-gram", 8192)].predicted_bytes
    assert verdicts[("sfrik-sharded", 8192)].world_size == 2
    rows = [
        {**c.base_row(), "status": "ok" if c.fits else "skipped", "reason": c.verdict, "median_s": 1.0} for c in cells
    ]
    table = n_sweep_table(rows, "median_s", "{:.3g}")
    assert "| 1024 | 8192 |" in table and "does not fit (predicted 22.1 GiB) |" in table


def test_the_n_sweep_script_end_to_end_on_a_tiny_grid(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (a dev extra) is not installed")
    out = tmp_path / "out"
    command = [sys.executable, str(REPO_ROOT / "scripts" / "profile_n_sweep.py"), "--sizes", "16:32", "--dims", "16"]
    command += ["--slices", "8", "--paths", "gram", "sharded", "--max-repeats", "2", "--memory-budget", "1GiB"]
    command += ["--out", str(out)]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(out / "n_sweep.csv")
    assert {(r["method"], r["N"], r["status"]) for r in rows} == {
        (m, n, "ok") for m in ("sfrik-gram", "sfrik-sharded", "sigreg-m8") for n in ("16", "32")
    }
    payload = json.loads((out / "n_sweep.json").read_text())
    assert payload["machine"]["cpu_count"] == os.cpu_count() and payload["command"].endswith(f"--out {out}")
    assert len(payload["sharded_per_rank"]) == 4  # 2 sizes × 2 ranks
    assert [(f["q"], f["M"]) for f in payload["crossovers"]] == [(16, 8)]
    assert (out / "n_sweep.png").read_bytes()[:4] == b"\x89PNG"
    again = subprocess.run(
        command + ["--from-json", str(out / "n_sweep.json")], capture_output=True, text=True, timeout=600, env=env
    )
    assert again.returncode == 0 and "Crossover" in (out / "n_sweep.md").read_text()

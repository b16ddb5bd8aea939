"""Gradient noise: the statistic against a cloud with a known answer, SIGReg's 1/sqrt(M) law (its
statistic is a mean over M independent slices), SFRIK's zero, the threshold fit, and the script
end to end on a tiny batch."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from sfrik_plugin.console import InputError
from sfrik_plugin.files.records import read_csv
from sfrik_plugin.profiler.noise import (
    noise_batch,
    relative_gradient_deviation,
    sfrik_gradients,
    sigreg_gradients,
    slices_below,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def _require_lightly():
    from sfrik_plugin.contenders.sigreg import lightly_status

    usable, reason = lightly_status()
    if not usable:
        pytest.skip(reason)


def test_the_relative_deviation_of_a_gaussian_cloud_is_sigma_sqrt_d_over_the_mean():
    generator = torch.Generator().manual_seed(0)
    dimension, sigma = 50, 0.5
    mean = torch.randn(dimension, generator=generator)
    mean = 10.0 * mean / mean.norm()
    draws = mean + sigma * torch.randn(4000, dimension, generator=generator)
    stats = relative_gradient_deviation(draws)
    assert stats["relative"] == pytest.approx(sigma * math.sqrt(dimension) / 10.0, rel=0.03)
    assert stats["mean_norm"] == pytest.approx(10.0, rel=0.01) and stats["draws"] == 4000
    # shape-agnostic: draws of matrices are flattened
    assert relative_gradient_deviation(draws.reshape(4000, 5, 10))["relative"] == pytest.approx(stats["relative"])
    with pytest.raises(InputError, match="at least 2 draws"):
        relative_gradient_deviation(draws[:1])


def test_the_expected_gradient_s_norm_is_estimated_without_bias_from_few_noisy_draws():
    # ρ = 5 with 24 draws: the plain norm of the sample mean carries the draws' noise
    # (E‖ḡ‖² = ‖μ‖² + 25/24 ‖μ‖²) and would make ρ look like ~3.5; the correction removes it
    generator = torch.Generator().manual_seed(1)
    dimension, rho = 200, 5.0
    mean = torch.zeros(dimension)
    mean[0] = 1.0
    sigma = rho / math.sqrt(dimension)
    squared_norms, plain = [], []
    for _ in range(300):
        draws = mean + sigma * torch.randn(24, dimension, generator=generator)
        squared_norms.append(relative_gradient_deviation(draws)["mean_norm"] ** 2)
        plain.append(float(draws.mean(0).square().sum()))
    assert sum(squared_norms) / 300 == pytest.approx(1.0, abs=0.12)
    assert sum(plain) / 300 == pytest.approx(1.0 + rho**2 / 24, rel=0.06)
    pooled = relative_gradient_deviation(draws, mean=mean)  # a known expected gradient
    assert pooled["mean_norm"] == 1.0 and pooled["relative"] == pytest.approx(rho, rel=0.2)


def test_sfrik_s_gradient_does_not_move_between_calls(one_thread):
    z1, z2 = noise_batch(32, 16, "anisotropic")
    gradients = sfrik_gradients(z1, z2, repeats=4)
    assert relative_gradient_deviation(gradients)["relative"] == 0.0
    assert float(gradients[0].norm()) > 0  # a gradient, not nothing


@pytest.fixture
def one_thread():
    """Tiny tensors: one torch thread (two stall on a shared machine: 20 ms per call instead of 0.5)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_sigreg_s_deviation_shrinks_like_one_over_sqrt_m_and_its_mean_does_not_move(one_thread):
    _require_lightly()
    z1, z2 = noise_batch(16, 8, "anisotropic")
    few = relative_gradient_deviation(sigreg_gradients(z1, z2, slices=4, draws=400))
    many = relative_gradient_deviation(sigreg_gradients(z1, z2, slices=64, draws=400, first_step=1000))
    assert few["relative"] / many["relative"] == pytest.approx(4.0, rel=0.15)  # sqrt(64 / 4); 1/M would give 16
    assert few["mean_norm"] == pytest.approx(many["mean_norm"], rel=0.1)  # the expected gradient
    # the same slices (one step) give the same gradient: the only noise is the slices'
    again = sigreg_gradients(z1, z2, slices=4, draws=1)
    assert torch.equal(again[0], sigreg_gradients(z1, z2, slices=4, draws=2)[0])


def test_the_slice_count_below_a_threshold_follows_c_over_sqrt_m():
    slices = [16, 64, 256, 1024]
    relative = [3.0 / math.sqrt(m) for m in slices]
    assert slices_below(slices, relative, 0.1) == {"measured": 1024, "fitted": 900.0, "c": 3.0}
    assert slices_below(slices, relative, 0.01)["measured"] is None
    assert slices_below(slices, relative, 0.01)["fitted"] == pytest.approx(90000.0)
    with pytest.raises(InputError):
        slices_below([16], [0.0], 0.1)


def test_the_batches_are_what_they_say():
    z1, z2 = noise_batch(4096, 8, "anisotropic", seed=1)
    spread = z1.std(0)
    assert spread[0] == pytest.approx(3.0, rel=0.1) and spread[-1] == pytest.approx(0.1, rel=0.1)
    gaussian, _ = noise_batch(4096, 8, "gaussian", seed=1)
    assert gaussian.std(0) == pytest.approx(torch.ones(8), rel=0.1)
    assert float((z2 - z1).std()) == pytest.approx(0.3, rel=0.1)
    with pytest.raises(InputError, match="batch kind"):
        noise_batch(4, 4, "uniform")


def test_the_gradient_noise_script_end_to_end_on_a_tiny_batch(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (a dev extra) is not installed")
    _require_lightly()
    out = tmp_path / "out"
    command = [sys.executable, str(REPO_ROOT / "scripts" / "gradient_noise.py"), "--n", "16", "--q", "8"]
    command += ["--slices", "4:16", "--draws", "6", "--max-repeats", "2", "--config-seconds", "0.1", "--out", str(out)]
    env = dict(os.environ, PYTHONWARNINGS="ignore", OMP_NUM_THREADS="1")
    proc = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = read_csv(out / "gradient_noise.csv")
    assert [r["M"] for r in rows] == ["4", "8", "16"]
    assert all(float(r["sigreg_anisotropic"]) > 0 and float(r["lejepa_s"]) > 0 for r in rows)
    payload = json.loads((out / "gradient_noise.json").read_text())
    assert payload["sfrik"] == {"anisotropic": 0.0, "gaussian": 0.0}
    assert payload["timing"]["sfrik"]["status"] == "ok" and "--draws 6" in payload["command"]
    assert {(t["batch"], t["threshold"]) for t in payload["thresholds"]} == {
        (b, t) for b in ("anisotropic", "gaussian") for t in (0.1, 0.01)
    }
    markdown = (out / "gradient_noise.md").read_text()
    assert "| SFRIK (deterministic) | 0.00 % | 0.00 % |" in markdown
    assert (out / "gradient_noise.png").read_bytes()[:4] == b"\x89PNG"

"""LeJEPA's SIGReg from lightly as a loss contender: the statistic against the paper's formula written
here independently, slices seeded by the step (the same in every process, the global generator left
alone), the memory model against exact allocation peaks, and a clear "unavailable" without lightly."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from sfrik_plugin import contenders as C
from sfrik_plugin.contenders import sigreg as S
from sfrik_plugin.profiler import isolation, workers
from sfrik_plugin.profiler.measure import peak_memory_bytes

pytest.importorskip("lightly.loss.lejepa_loss", reason="lightly (the lejepa extra) is not installed")


def _directions(q: int, m: int, step: int, dtype=torch.float64) -> np.ndarray:
    generator = torch.Generator().manual_seed(S.slice_seed(step))
    a = torch.randn(q, m, generator=generator, dtype=dtype)
    return (a / a.norm(dim=0)).numpy()


def _epps_pulley_reference(views: np.ndarray, directions: np.ndarray, knots=17, t_max=3.0) -> float:
    """The paper's SIGReg, from its formula: per view and slice, N times the integral over
    t in [-t_max, t_max] of |ecf(t) - exp(-t²/2)|² exp(-t²/2) (trapezoid), averaged."""
    t = np.linspace(-t_max, t_max, 2 * knots - 1)  # the symmetric grid, step t_max / (knots - 1)
    dt = t[1] - t[0]
    trapezoid = np.full(t.shape, dt)
    trapezoid[[0, -1]] = dt / 2
    window = np.exp(-(t**2) / 2)
    values = []
    for z in views:
        n = z.shape[0]
        for a in directions.T:
            x = z @ a
            ecf = np.exp(1j * np.outer(t, x)).mean(axis=1)
            values.append(n * np.sum(trapezoid * np.abs(ecf - window) ** 2 * window))
    return float(np.mean(values))


def test_the_contender_and_the_method_are_registered():
    entry = C.get_contender("sigreg")
    assert (entry.q_exponent, entry.n_exponent, entry.needs_solo) == (1.0, 1.0, False)
    assert "lightly.loss.SIGReg" in entry.description
    method = C.get_train_method("lejepa")
    assert (method.solo_method, method.config, method.loss) == ("lejepa", "lejepa", "sigreg")
    assert S.lightly_status() == (True, "ok")


@pytest.mark.parametrize("step", [0, 5])
def test_the_loss_is_lejepa_from_the_papers_formula(step):
    n, q, m, lambda_ = 24, 6, 32, 0.3
    generator = torch.Generator().manual_seed(3)
    z1 = torch.randn(n, q, generator=generator, dtype=torch.float64)
    z2 = z1 + 0.4 * torch.randn(n, q, generator=generator, dtype=torch.float64)
    parts = S.lejepa_loss([z1, z2], S.build_sigreg(num_slices=m), lambda_=lambda_, step=step)
    views = np.stack([z1.numpy(), z2.numpy()])
    expected_sigreg = _epps_pulley_reference(views, _directions(q, m, step))
    center = views.mean(axis=0)
    expected_invariance = float(np.mean((views - center) ** 2))  # each view to the mean of the views
    # lightly keeps its frequency grid and weights in float32 buffers: agreement to ~1e-9, not 1e-15
    assert float(parts.sigreg) == pytest.approx(expected_sigreg, rel=1e-7)
    assert float(parts.invariance) == pytest.approx(expected_invariance, rel=1e-12)
    assert float(parts.loss) == pytest.approx(lambda_ * expected_sigreg + (1 - lambda_) * expected_invariance)


def test_slices_depend_on_the_step_only_and_leave_the_global_generator_alone():
    z = torch.randn(2, 16, 8, dtype=torch.float64)
    sigreg = S.build_sigreg(num_slices=64)
    state = torch.get_rng_state()
    values = {}
    for step in (0, 1, 0):
        sigreg.step = step
        values.setdefault(step, []).append(float(sigreg(z)))
    assert torch.equal(torch.get_rng_state(), state)
    assert values[0][0] == values[0][1] != values[1][0]
    # a second module (another rank, another process) draws the same slices for the same step
    other = S.build_sigreg(num_slices=64)
    other.step = 1
    assert float(other(z)) == values[1][0]


def test_half_precision_views_are_computed_in_float32_and_lambda_is_checked():
    z1, z2 = (torch.randn(32, 8).to(torch.bfloat16) for _ in range(2))
    parts = S.lejepa_loss([z1, z2], S.build_sigreg(num_slices=16))
    assert parts.loss.dtype == torch.float32 and math.isfinite(float(parts.loss))
    with pytest.raises(ValueError, match=r"LeJEPA's lambda must lie in \[0, 1\], got 1.5"):
        S.lejepa_loss([z1, z2], S.build_sigreg(num_slices=16), lambda_=1.5)
    with pytest.raises(ValueError, match="num_slices must be a positive integer, got 0"):
        S.sigreg_contender(0)


@pytest.mark.parametrize("num_slices", [64, 1024])
@pytest.mark.parametrize("n, q", [(64, 256), (32, 512), (256, 128)])
def test_prediction_bounds_the_measured_allocation_peak(n, q, num_slices):
    entry = S.sigreg_contender(num_slices)
    C.register_contender(entry)
    try:
        torch.manual_seed(0)
        z1, z2 = (torch.randn(n, q, requires_grad=True) for _ in range(2))
        step = workers.loss_step(entry, z1, z2)
        step()  # warm-up
        measured = peak_memory_bytes(step)
        predicted = C.predict_loss_peak_bytes(entry.name, n, q)
        assert 0.6 * predicted <= measured <= predicted
    finally:
        C.unregister_contender(entry.name)


def test_without_lightly_the_contender_is_unavailable_with_a_reason(monkeypatch):
    for name in [m for m in sys.modules if m == "lightly" or m.startswith("lightly.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "lightly", None)  # import lightly -> ImportError
    monkeypatch.setattr(S, "_seeded_class", None)
    usable, reason = S.lightly_status()
    assert not usable and reason.startswith("SIGReg needs lightly==1.6.0 (pip install 'sfrik-plugin[lejepa]')")
    z = torch.randn(8, 4, requires_grad=True)
    with pytest.raises(ValueError, match=r"^the LeJEPA/SIGReg contender is unavailable: SIGReg needs lightly"):
        workers.loss_step("sigreg", z, z)
    assert "sigreg" in C.CONTENDERS  # still listed: the registry does not depend on lightly


def test_an_isolated_worker_reports_the_missing_package_instead_of_crashing(tmp_path):
    # a child where lightly cannot be imported: the row says why, the profiler goes on
    context = isolation.isolation_context(["torch", "sfrik_plugin.profiler"])
    spec = dict(contender="sigreg", n=8, q=8, min_repeats=1, max_repeats=1, threads=1)
    result = isolation.run_isolated(_worker_without_lightly, spec, timeout=300, context=context)
    assert result["status"] == "failed"
    assert "contender is unavailable: SIGReg needs lightly==1.6.0" in result["reason"]


def _worker_without_lightly(spec):
    for name in [m for m in sys.modules if m == "lightly" or m.startswith("lightly.")]:
        del sys.modules[name]  # a forked child inherits the parent's imported modules
    sys.modules["lightly"] = None  # type: ignore[assignment]
    S._seeded_class = None
    return workers.loss_worker(spec)

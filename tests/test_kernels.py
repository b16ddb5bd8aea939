import math

import numpy as np
import pytest
import torch
from reference import phi_reference

from sfrik_plugin import (
    KERNELS,
    GaussianKernel,
    RotationInvariantKernel,
    TruncatedLegendreKernel,
    build_kernel,
    register_kernel,
)

special = pytest.importorskip("scipy.special")


def test_registry_builds_by_name_and_names_the_choices():
    assert isinstance(build_kernel("legendre", weights=(1.0, 2.0)), TruncatedLegendreKernel)
    assert isinstance(build_kernel("gaussian", tau=1.0), GaussianKernel)
    with pytest.raises(ValueError, match=r"unknown kernel 'gauss'; registered kernels: \['gaussian', 'legendre'\]"):
        build_kernel("gauss")


def test_registering_a_second_class_under_a_taken_name_fails():
    with pytest.raises(ValueError, match="already registered"):

        @register_kernel("legendre")
        class Other(RotationInvariantKernel):
            def phi_and_derivative(self, t, dim):
                return t, t

            def uniform_mean(self, dim):
                return 0.0

    assert KERNELS["legendre"] is TruncatedLegendreKernel


@pytest.mark.parametrize("q", [2, 3, 128, 32768])
def test_legendre_kernel_phi_matches_the_paper_formula(q):
    t = torch.linspace(-1, 1, 301, dtype=torch.float64)
    kernel = TruncatedLegendreKernel((1.0, 40.0, 40.0))
    torch.testing.assert_close(kernel.phi(t, q), phi_reference(t, (1.0, 40.0, 40.0), q))
    value, derivative = kernel.phi_and_derivative(t.requires_grad_(), q)
    (expected,) = torch.autograd.grad(phi_reference(t, (1.0, 40.0, 40.0), q).sum(), t)
    torch.testing.assert_close(derivative, expected)


@pytest.mark.parametrize(
    "weights, message",
    [
        ((), "at least one value"),
        ((1.0, -40.0, 40.0), r"b_2 = -40.0"),
        ((1.0, float("nan")), r"finite and >= 0"),
        ((0.0, 0.0), "at least one kernel weight must be > 0"),
        ("1-40-40", "sequence of numbers"),
        ((1.0, "x"), "must be numbers"),
    ],
)
def test_bad_weights_are_rejected_with_the_offending_value(weights, message):
    with pytest.raises(ValueError, match=message):
        TruncatedLegendreKernel(weights)


@pytest.mark.parametrize("tau", [0.0, -1.0, float("inf"), "2"])
def test_bad_tau(tau):
    with pytest.raises(ValueError, match="tau must be a finite number > 0"):
        GaussianKernel(tau)


@pytest.mark.parametrize("weights", [(3.0,), (1.0, 40.0), (0.0, 2.0)])
@pytest.mark.parametrize("q", [2, 5, 4096])
def test_feature_space_coefficients_reproduce_phi(weights, q):
    kernel = TruncatedLegendreKernel(weights)
    c0, c1, c2 = kernel.feature_space_coefficients(q)
    t = torch.linspace(-1, 1, 41, dtype=torch.float64)
    torch.testing.assert_close(c0 + c1 * t + c2 * t**2, kernel.phi(t, q))
    assert kernel.has_feature_space_form


def test_degree_three_and_gaussian_have_no_feature_space_form():
    assert TruncatedLegendreKernel((1.0, 40.0, 40.0)).feature_space_coefficients(8) is None
    assert not GaussianKernel().has_feature_space_form
    # a trailing zero weight does not raise the degree
    assert TruncatedLegendreKernel((1.0, 40.0, 0.0)).has_feature_space_form


@pytest.mark.parametrize("q", [2, 3, 10, 512, 65536])
@pytest.mark.parametrize("tau", [0.5, 2.5])
def test_gaussian_uniform_mean_matches_the_bessel_closed_form(q, tau):
    # u·v has density ∝ (1-t²)^((q-3)/2); E exp(κ t) = Γ(q/2) (2/κ)^(q/2-1) I_(q/2-1)(κ)
    kappa, nu = 2 * tau, q / 2 - 1
    # log I_ν(κ) from its power series Σ_k (κ/2)^(2k+ν) / (k! Γ(k+ν+1)), summed in log space
    k = np.arange(200)
    log_terms = (2 * k + nu) * math.log(kappa / 2) - special.gammaln(k + 1) - special.gammaln(k + nu + 1)
    log_bessel = special.logsumexp(log_terms)
    log_expectation = special.gammaln(q / 2) + nu * math.log(2 / kappa) + log_bessel
    expected = math.exp(log_expectation - 2 * tau)
    assert GaussianKernel(tau).uniform_mean(q) == pytest.approx(expected, rel=1e-6)


def test_gaussian_uniform_mean_matches_monte_carlo():
    generator = torch.Generator().manual_seed(0)
    u = torch.nn.functional.normalize(torch.randn(200_000, 5, generator=generator, dtype=torch.float64), dim=1)
    v = torch.nn.functional.normalize(torch.randn(200_000, 5, generator=generator, dtype=torch.float64), dim=1)
    monte_carlo = float(torch.exp(-2 * 2.5 * (1 - (u * v).sum(1))).mean())
    assert GaussianKernel(2.5).uniform_mean(5) == pytest.approx(monte_carlo, rel=2e-2)


@pytest.mark.parametrize("weights", [(1.0, 40.0, 40.0), (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)], ids=["horner", "recurrence"])
@pytest.mark.parametrize("q", [3, 8192])
def test_phi_is_differentiable_and_both_evaluations_agree(weights, q):
    t = torch.linspace(-1, 1, 23, dtype=torch.float64, requires_grad=True)
    kernel = TruncatedLegendreKernel(weights)
    torch.autograd.gradcheck(lambda x: kernel.phi(x, q), (t,))
    torch.testing.assert_close(
        kernel.phi(t, q), phi_reference(t, weights, q) if len(weights) <= 4 else kernel.phi(t, q)
    )
    # Horner (degree <= 4) and the recurrence give the same φ and φ'
    from sfrik_plugin.maths.legendre import legendre_series

    value, derivative = kernel.phi_and_derivative(t.detach(), q)
    expected_value, expected_derivative = legendre_series(t.detach(), (0.0,) + tuple(weights), q, with_derivative=True)
    torch.testing.assert_close(value, expected_value)
    torch.testing.assert_close(derivative, expected_derivative)

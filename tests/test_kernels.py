import math

import numpy as np
import pytest
import torch
from reference import phi_reference
from scipy import special

from sfrik_plugin import (
    KERNELS,
    GaussianKernel,
    RotationInvariantKernel,
    TruncatedLegendreKernel,
    build_kernel,
    register_kernel,
)


def test_registry_builds_by_name_and_names_the_choices():
    assert isinstance(build_kernel("legendre", weights=(1.0, 2.0)), TruncatedLegendreKernel)
    assert isinstance(build_kernel("gaussian", tau=1.0), GaussianKernel)
    with pytest.raises(
        ValueError,
        match=r"unknown kernel 'gauss'; registered kernels: \['bandlimited', 'gaussian', 'heat', 'legendre'\]",
    ):
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


def gegenbauer_phi(t, weights, q):
    """φ from scipy's Gegenbauer polynomials, C_ℓ^((q-2)/2)(t) / C_ℓ^((q-2)/2)(1): independent of ours."""
    alpha = (q - 2) / 2
    x = t.detach().numpy()
    total = sum(
        b * special.eval_gegenbauer(ell, alpha, x) / special.eval_gegenbauer(ell, alpha, 1.0)
        for ell, b in enumerate(weights, start=1)
    )
    return torch.from_numpy(np.asarray(total, dtype=np.float64))


@pytest.mark.parametrize("weights", [(1.0, 40.0, 40.0), (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)], ids=["horner", "recurrence"])
@pytest.mark.parametrize("q", [3, 16, 8192])
def test_phi_and_its_derivative_match_scipys_gegenbauer_polynomials(weights, q):
    # degree <= 4 is evaluated by Horner's rule, higher degrees by the recurrence: both against scipy
    t = torch.linspace(-1, 1, 23, dtype=torch.float64, requires_grad=True)
    kernel = TruncatedLegendreKernel(weights)
    torch.testing.assert_close(kernel.phi(t, q), gegenbauer_phi(t, weights, q), rtol=1e-9, atol=1e-9)
    value, derivative = kernel.phi_and_derivative(t.detach(), q)
    torch.testing.assert_close(value, gegenbauer_phi(t, weights, q), rtol=1e-9, atol=1e-9)
    # φ' against the autograd derivative of the scipy-checked φ (and gradcheck of φ itself)
    (autograd_derivative,) = torch.autograd.grad(kernel.phi(t, q).sum(), t)
    torch.testing.assert_close(derivative, autograd_derivative, rtol=1e-9, atol=1e-9)
    torch.autograd.gradcheck(lambda x: kernel.phi(x, q), (t,))


def test_a_kernel_missing_its_top_degree_is_detected():
    # the mutation check of the habit above: drop b_6 and scipy disagrees by far more than the tolerance
    weights = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0)
    t = torch.linspace(-1, 1, 23, dtype=torch.float64)
    truncated = TruncatedLegendreKernel(weights[:-1]).phi(t, 16)
    assert not torch.allclose(truncated, gegenbauer_phi(t, weights, 16), rtol=1e-6, atol=1e-6)

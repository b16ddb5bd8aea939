"""The sphere's spectral kernels (heat, bandlimited) against computations that share nothing with
ours: spherical harmonics and Legendre polynomials on S² (scipy), Gegenbauer polynomials and exact
integer harmonic dimensions at small q, the plain mean of φ over the Gram matrix in every path."""

import math

import numpy as np
import pytest
import torch
from scipy import special

from sfrik_plugin import (
    KERNELS,
    BandlimitedKernel,
    HeatKernel,
    TruncatedLegendreKernel,
    build_kernel,
    kernel_mean,
    mmd_to_uniform,
)
from sfrik_plugin.maths.spectral import DEFAULT_PHI_AT_ONE, harmonic_dimension_log


def exact_harmonic_dimension(q, ell):
    """dim of the degree-ℓ harmonics = dim of homogeneous polynomials of degree ℓ minus ℓ - 2 (integers)."""
    return math.comb(ell + q - 1, q - 1) - (math.comb(ell + q - 3, q - 1) if ell >= 2 else 0)


def heat_weights_reference(q, tau, degree, scale=81.0):
    """b_ℓ ∝ N(q, ℓ) e^{-τ ℓ(ℓ+q-2)} in plain float64 (small q only), normalised to Σ b_ℓ = scale."""
    raw = np.array(
        [exact_harmonic_dimension(q, ell) * math.exp(-tau * ell * (ell + q - 2)) for ell in range(1, degree + 1)]
    )
    return scale * raw / raw.sum()


def gegenbauer_series(t, weights, q):
    """Σ_ℓ b_ℓ C_ℓ^{(q-2)/2}(t) / C_ℓ^{(q-2)/2}(1), ℓ from 1, by scipy."""
    alpha = (q - 2) / 2
    return sum(
        b * special.eval_gegenbauer(ell, alpha, t) / special.eval_gegenbauer(ell, alpha, 1.0)
        for ell, b in enumerate(weights, start=1)
    )


def random_sphere(n, q, seed, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(n, q, generator=generator, dtype=dtype), dim=1)


# ---- S²: spherical harmonics and Legendre polynomials ----


def spherical_harmonic(ell, m, points):
    """Y_ℓ^m at unit vectors (rows), orthonormal on S² with the surface measure."""
    polar = np.arccos(np.clip(points[:, 2], -1, 1))
    azimuth = np.mod(np.arctan2(points[:, 1], points[:, 0]), 2 * np.pi)
    if hasattr(special, "sph_harm_y"):  # scipy >= 1.15
        return special.sph_harm_y(ell, m, polar, azimuth)
    return special.sph_harm(m, ell, azimuth, polar)  # older scipy: (order, degree, azimuth, polar)


def harmonic_kernel(filter_values, u, v):
    """Σ_ℓ g(ℓ) Σ_m Y_ℓm(u) conj(Y_ℓm(v)) for ℓ = 1..len(filter_values), pairwise over rows."""
    total = np.zeros((u.shape[0], v.shape[0]), dtype=complex)
    for ell, g in enumerate(filter_values, start=1):
        for m in range(-ell, ell + 1):
            total += g * np.outer(spherical_harmonic(ell, m, u), np.conj(spherical_harmonic(ell, m, v)))
    assert np.abs(total.imag).max() < 1e-12
    return total.real


def test_heat_on_s2_is_the_spherical_harmonic_heat_series():
    # H_τ(u, v) = Σ_ℓ e^{-τ ℓ(ℓ+1)} Σ_m Y_ℓm(u) conj Y_ℓm(v); our φ(uᵀv) = scale · H(u, v) / H(w, w)
    tau, degree = 0.08, 7
    u, v = random_sphere(9, 3, seed=0).numpy(), random_sphere(11, 3, seed=1).numpy()
    filter_values = [math.exp(-tau * ell * (ell + 1)) for ell in range(1, degree + 1)]
    heat = harmonic_kernel(filter_values, u, v)
    on_diagonal = harmonic_kernel(filter_values, u[:1], u[:1])[0, 0]  # the same for every point
    expected = DEFAULT_PHI_AT_ONE * heat / on_diagonal
    kernel = HeatKernel(tau=tau, degree=degree)
    ours = kernel.phi(torch.from_numpy(u @ v.T), 3).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-11, atol=1e-11)
    # and with classical Legendre polynomials: (2ℓ + 1) e^{-τℓ(ℓ+1)} P_ℓ(t), the addition theorem on S²
    t = np.linspace(-1, 1, 57)
    legendre = sum((2 * ell + 1) * g * special.eval_legendre(ell, t) for ell, g in enumerate(filter_values, start=1))
    normaliser = sum((2 * ell + 1) * g for ell, g in enumerate(filter_values, start=1))
    np.testing.assert_allclose(
        kernel.phi(torch.from_numpy(t), 3).numpy(), 81.0 * legendre / normaliser, rtol=1e-12, atol=1e-12
    )


def test_bandlimited_on_s2_weighs_each_degree_equally():
    # equal b_ℓ = the harmonic filter g(ℓ) = 4π / (2ℓ + 1) (one over the degree's dimension), times scale / L
    degree = 4
    u, v = random_sphere(8, 3, seed=2).numpy(), random_sphere(6, 3, seed=3).numpy()
    filter_values = [4 * math.pi / (2 * ell + 1) for ell in range(1, degree + 1)]
    expected = (DEFAULT_PHI_AT_ONE / degree) * harmonic_kernel(filter_values, u, v)
    ours = BandlimitedKernel(degree=degree).phi(torch.from_numpy(u @ v.T), 3).numpy()
    np.testing.assert_allclose(ours, expected, rtol=1e-11, atol=1e-11)


# ---- small q in float64: Gegenbauer polynomials and exact harmonic dimensions ----


@pytest.mark.parametrize("q", [2, 3, 4, 5, 16, 300, 32768])
def test_harmonic_dimension_matches_the_integer_count(q):
    for ell in (0, 1, 2, 3, 7, 40):
        assert harmonic_dimension_log(q, ell) == pytest.approx(
            math.log(exact_harmonic_dimension(q, ell)), rel=1e-12, abs=1e-12
        )


@pytest.mark.parametrize("q", [4, 5])
@pytest.mark.parametrize("tau", [0.05, 0.4])
def test_heat_matches_a_direct_gegenbauer_sum_and_its_tail_bound_holds(q, tau):
    kernel = HeatKernel(tau=tau)
    degree = kernel.degree_for(q)
    weights = np.array(kernel.weights_for(q))
    np.testing.assert_allclose(weights, heat_weights_reference(q, tau, degree), rtol=1e-12)
    t = np.linspace(-1, 1, 41)
    ours = kernel.phi(torch.from_numpy(t), q).numpy()
    np.testing.assert_allclose(ours, gegenbauer_series(t, weights, q), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        ours, gegenbauer_series(t, heat_weights_reference(q, tau, degree), q), rtol=1e-10, atol=1e-10
    )

    # the untruncated series, scaled like the kept weights: what the truncation leaves out
    long = heat_weights_reference(q, tau, 300)
    long *= 81.0 / long[:degree].sum()
    true_tail = long[degree:].sum()
    bound = kernel.tail_bound(q)
    assert true_tail <= bound <= 3 * true_tail
    assert bound <= kernel.tolerance * 81.0
    gap = np.abs(gegenbauer_series(t, long, q) - ours).max()
    assert gap <= bound + 1e-12
    # L is the smallest degree that meets the tolerance: one degree less does not
    assert HeatKernel(tau=tau, degree=degree - 1).tail_bound(q) > kernel.tolerance * 81.0 if degree > 1 else True


def test_a_fixed_degree_with_growing_weights_still_gets_a_true_bound():
    # q = 5, τ = 0.005: the weights grow up to ℓ ≈ 9, so the bound sums them before the geometric tail
    q, tau, degree = 5, 0.005, 3
    kernel = HeatKernel(tau=tau, degree=degree)
    long = heat_weights_reference(q, tau, 2000)
    long *= 81.0 / long[:degree].sum()
    assert long[degree:].sum() <= kernel.tail_bound(q) <= 1.5 * long[degree:].sum()


def test_scale_is_phi_at_one_for_every_q():
    for kernel in (
        HeatKernel(tau=0.3),
        HeatKernel(tau=1e-3, degree=5, scale=2.0),
        BandlimitedKernel(3),
        BandlimitedKernel(1, scale=7.0),
    ):
        for q in (2, 3, 64, 8192):
            value = float(kernel.phi(torch.ones(1, dtype=torch.float64), q)[0])
            assert value == pytest.approx(kernel.scale, rel=1e-12)
            assert sum(kernel.weights_for(q)) == pytest.approx(kernel.scale, rel=1e-12)
            assert kernel.uniform_mean(q) == 0.0
    assert DEFAULT_PHI_AT_ONE == sum(TruncatedLegendreKernel().weights) == 81.0


# ---- q = 32768: log space ----


@pytest.mark.parametrize(
    "kernel",
    [
        HeatKernel(tau=HeatKernel.tau_for(32768, rate=2.0)),
        HeatKernel(tau=0.1, degree=3),  # exp(-τ ℓ(ℓ+q-2)) underflows float64 from ℓ = 1
        HeatKernel(tau=1e-5, degree=160),  # N(q, ℓ) overflows float64 past ℓ ≈ 150
        BandlimitedKernel(degree=6),
    ],
    ids=["rate-2", "underflow", "overflow", "bandlimited"],
)
def test_weights_and_values_are_finite_at_q_32768(kernel):
    q = 32768
    weights = np.array(kernel.weights_for(q))
    assert np.isfinite(weights).all() and (weights >= 0).all()
    assert weights.sum() == pytest.approx(81.0, rel=1e-12)
    assert not math.isnan(kernel.tail_bound(q))
    z = random_sphere(16, q, seed=4, dtype=torch.float32)
    for method in ("gram", "reference"):
        value = kernel_mean(z, kernel, method=method)
        assert torch.isfinite(value)
    values, derivatives = kernel.phi_and_derivative(torch.linspace(-1, 1, 101, dtype=torch.float64), q)
    assert torch.isfinite(values).all() and torch.isfinite(derivatives).all()


def test_tau_for_rate_gives_the_poisson_shape_at_large_q():
    for q in (8192, 32768):
        weights = HeatKernel(tau=HeatKernel.tau_for(q, rate=2.0)).weights_for(q)
        ratios = [weights[ell] / weights[ell - 1] for ell in range(1, 5)]  # b_{ℓ+1} / b_ℓ ≈ 2 / (ℓ + 1)
        np.testing.assert_allclose(ratios, [2 / (ell + 1) for ell in range(1, 5)], rtol=1e-2)


# ---- every path computes the plain mean of φ over the Gram matrix ----

PATH_KERNELS = {
    "heat-auto": HeatKernel(tau=HeatKernel.tau_for(12, rate=2.0)),
    "heat-degree-3": HeatKernel(tau=0.05, degree=3),
    "bandlimited-2": BandlimitedKernel(degree=2),
    "bandlimited-6": BandlimitedKernel(degree=6),
}


@pytest.mark.parametrize("name", sorted(PATH_KERNELS))
@pytest.mark.parametrize("estimator", ["v", "u"])
def test_every_path_gives_the_mean_of_phi_over_the_gram_matrix(name, estimator):
    kernel, q, n = PATH_KERNELS[name], 12, 21
    z = random_sphere(n, q, seed=5)
    gram = (z @ z.T).clamp(-1, 1).numpy()
    values = gegenbauer_series(gram, kernel.weights_for(q), q)  # scipy's φ, not ours
    expected = values.mean() if estimator == "v" else (values.sum() - np.trace(values)) / (n * (n - 1))
    methods = ["gram", "blocked", "reference", "auto"] + (["feature"] if kernel.degree_for(q) <= 2 else [])
    gradients = {}
    for method in methods:
        leaf = z.clone().requires_grad_()
        options = {"block_size": 4} if method == "blocked" else {}
        value = mmd_to_uniform(leaf, kernel, method=method, estimator=estimator, **options)
        assert float(value.detach()) == pytest.approx(expected, rel=1e-10, abs=1e-12), method
        (gradients[method],) = torch.autograd.grad(value, leaf)
    for method, gradient in gradients.items():
        torch.testing.assert_close(gradient, gradients["reference"], rtol=1e-9, atol=1e-12, msg=method)


def test_the_feature_form_exists_exactly_at_degree_two_or_less():
    assert BandlimitedKernel(2).feature_space_coefficients(64) is not None
    assert BandlimitedKernel(3).feature_space_coefficients(64) is None
    # a heat kernel whose automatic degree is 1 at large τ: φ(t) = scale · t
    assert HeatKernel(tau=1.0).feature_space_coefficients(64) == (0.0, 81.0, 0.0)


# ---- registry and errors ----


def test_selectable_by_name():
    assert {"heat", "bandlimited"} <= set(KERNELS)
    heat = build_kernel("heat", tau=0.01, degree=4)
    assert isinstance(heat, HeatKernel) and heat.degree_for(100) == 4
    assert build_kernel("bandlimited", degree=5).weights_for(100) == (81.0 / 5,) * 5
    assert isinstance(kernel_mean(random_sphere(5, 8, seed=6), "bandlimited"), torch.Tensor)


@pytest.mark.parametrize(
    "name, kwargs, message",
    [
        ("heat", {}, r"kernel 'heat': missing a required argument: 'tau'; its parameters: \['tau', 'degree'"),
        ("heat", {"tau": 0.1, "degre": 3}, "unexpected keyword argument 'degre'"),
        ("heat", {"tau": 0.0}, r"tau must be a finite number > 0, got 0.0"),
        ("heat", {"tau": float("nan")}, r"tau must be a finite number > 0"),
        ("heat", {"tau": 0.1, "degree": 0}, r"degree must be an integer >= 1, got 0"),
        ("heat", {"tau": 0.1, "tolerance": 1.0}, r"tolerance must be in \(0, 1\)"),
        ("heat", {"tau": 0.1, "scale": -1.0}, r"scale must be a finite number > 0"),
        ("bandlimited", {"degree": 2.5}, r"degree must be an integer >= 1, got 2.5"),
        ("bandlimited", {"degree": True}, r"degree must be an integer >= 1, got True"),
    ],
)
def test_bad_parameters_are_one_clear_error(name, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_kernel(name, **kwargs)


def test_a_tail_that_does_not_fit_max_degree_says_what_to_change():
    kernel = HeatKernel(tau=1e-5)
    with pytest.raises(ValueError, match=r"heat kernel tau=1e-05 at q=32768: .* max_degree=64 .*raise tau"):
        kernel.weights_for(32768)
    with pytest.raises(ValueError, match=r"rate must be below q = 8"):
        HeatKernel.tau_for(8, rate=8.0)

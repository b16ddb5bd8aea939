import math

import numpy as np
import pytest
import torch
from reference import legendre_closed_form
from scipy import special

from sfrik_plugin import legendre_polynomial, legendre_series


def normalised_gegenbauer(degree, q, t):
    alpha = (q - 2) / 2
    return special.eval_gegenbauer(degree, alpha, t) / special.eval_gegenbauer(degree, alpha, 1.0)


@pytest.mark.parametrize("q", [3, 16, 8192])
@pytest.mark.parametrize("degree", range(0, 9))
def test_matches_scipy_normalised_gegenbauer(q, degree):
    t = np.linspace(-1, 1, 401)
    ours = legendre_polynomial(torch.tensor(t, dtype=torch.float64), degree, q).numpy()
    np.testing.assert_allclose(ours, normalised_gegenbauer(degree, q, t), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("q", [2, 3, 7, 8192, 65536])
@pytest.mark.parametrize("degree", range(0, 5))
def test_matches_the_closed_forms(q, degree):
    t = torch.linspace(-1, 1, 101, dtype=torch.float64)
    torch.testing.assert_close(legendre_polynomial(t, degree, q), legendre_closed_form(t, degree, q))


def test_dimension_two_gives_chebyshev_polynomials():
    theta = torch.linspace(0, math.pi, 50, dtype=torch.float64)
    for degree in range(7):
        torch.testing.assert_close(legendre_polynomial(torch.cos(theta), degree, 2), torch.cos(degree * theta))


@pytest.mark.parametrize("q", [2, 3, 16, 8192, 65536, 1 << 20])
def test_value_at_one_is_one_and_bounded_on_the_interval(q):
    t = torch.linspace(-1, 1, 2001, dtype=torch.float32)
    for degree in range(0, 12):
        values = legendre_polynomial(t, degree, q)
        assert torch.isfinite(values).all()
        assert values.abs().max() <= 1 + 1e-5  # |P_ℓ(q; t)| <= 1 on [-1, 1]
        assert abs(float(values[-1]) - 1.0) < 1e-5


@pytest.mark.parametrize("q", [3, 5, 16, 200])
def test_orthogonality_under_the_sphere_weight(q):
    # with t = cos θ the weight (1 - t²)^((q-3)/2) dt becomes sin^(q-2) θ dθ
    theta = np.linspace(0, np.pi, 200_001)
    weight = np.sin(theta) ** (q - 2)
    t = torch.tensor(np.cos(theta))
    polys = [legendre_polynomial(t, degree, q).numpy() for degree in range(6)]
    gram = np.array([[np.trapezoid(a * b * weight, theta) for b in polys] for a in polys])
    off_diagonal = gram - np.diag(np.diag(gram))
    assert np.abs(off_diagonal).max() < 1e-8 * np.abs(np.diag(gram)).max()
    assert (np.diag(gram) > 0).all()


@pytest.mark.parametrize("q", [2, 3, 64, 8192])
def test_series_derivative_matches_autograd(q):
    coefficients = [0.3, 1.0, 40.0, 40.0, 2.0, 0.0, 5.0]
    t = torch.linspace(-1, 1, 57, dtype=torch.float64, requires_grad=True)
    value, derivative = legendre_series(t, coefficients, q, with_derivative=True)
    (autograd_derivative,) = torch.autograd.grad(value.sum(), t)
    torch.testing.assert_close(derivative, autograd_derivative)
    torch.testing.assert_close(value, legendre_series(t, coefficients, q))


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(degree=-1, dim=3), "degree must be an integer >= 0"),
        (dict(degree=1.5, dim=3), "degree must be an integer >= 0"),
        (dict(degree=2, dim=1), "dim .* must be an integer >= 2"),
        (dict(degree=2, dim=2.0), "dim .* must be an integer >= 2"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        legendre_polynomial(torch.zeros(3), **kwargs)

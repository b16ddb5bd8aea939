import pytest
import torch
import torch.nn.functional as F
from reference import kernel_mean_reference

from sfrik_plugin import GaussianKernel, TruncatedLegendreKernel, kernel_mean, mmd_to_uniform
from sfrik_plugin.maths.options import GRAM_BLOCK_ELEMENTS
from sfrik_plugin.maths.statistics import choose_method


def sphere(n, q, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    return F.normalize(torch.randn(n, q, generator=generator, dtype=dtype), dim=1)


@pytest.mark.parametrize("unbiased", [False, True])
@pytest.mark.parametrize("method", ["gram", "blocked"])
def test_kernel_mean_matches_the_formula_value_and_gradient(method, unbiased):
    z = sphere(40, 24).requires_grad_()
    weights = (1.0, 40.0, 40.0)
    ours = kernel_mean(
        z, TruncatedLegendreKernel(weights), method=method, block_size=7, estimator="u" if unbiased else "v"
    )
    expected = kernel_mean_reference(z, weights, unbiased)
    torch.testing.assert_close(ours, expected, rtol=1e-10, atol=0)
    (g_ours,) = torch.autograd.grad(ours, z)
    (g_expected,) = torch.autograd.grad(expected, z)
    torch.testing.assert_close(g_ours, g_expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("estimator", ["v", "u"])
@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("weights", [(1.0, 40.0), (2.0,), (0.0, 1.0)])
def test_gram_feature_and_blocked_paths_agree_for_degree_two(weights, normalize, estimator):
    z = torch.randn(30, 12, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    z = z if normalize else F.normalize(z, dim=1)
    kernel = TruncatedLegendreKernel(weights)
    values, grads = [], []
    for method, block_size in [("gram", None), ("feature", None), ("blocked", 4), ("blocked", 1), ("blocked", 100)]:
        zz = z.clone().requires_grad_()
        value = kernel_mean(zz, kernel, method=method, block_size=block_size, estimator=estimator, normalize=normalize)
        values.append(value)
        grads.append(torch.autograd.grad(value, zz)[0])
    for value, grad in zip(values[1:], grads[1:]):
        torch.testing.assert_close(value, values[0], rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(grad, grads[0], rtol=1e-9, atol=1e-12)


def _path_taken(z, kernel, **options):
    """Which path computed the value, told apart by behaviour: only the autograd paths (feature,
    reference) have a second derivative; the fused gram/blocked paths refuse one by name."""
    z = z.clone().requires_grad_()
    value = kernel_mean(z, kernel, **options)
    try:  # the fused backward refuses as soon as a differentiable gradient is asked for
        (grad,) = torch.autograd.grad(value, z, create_graph=True)
        torch.autograd.grad(grad.sum(), z)
    except RuntimeError as error:
        assert "method='reference'" in str(error) and "method='feature'" in str(error)
        return "fused"
    return "autograd"


def test_auto_picks_feature_space_exactly_when_it_is_cheaper():
    kernel = TruncatedLegendreKernel((1.0, 40.0))
    wide = sphere(16, 64)  # q > N: O(N² q) beats O(N q²), the Gram path
    tall = sphere(64, 8)  # q < N: the feature path
    assert _path_taken(wide, kernel) == "fused"
    assert _path_taken(tall, kernel) == "autograd"
    assert _path_taken(tall, TruncatedLegendreKernel((1.0, 40.0, 40.0))) == "fused"  # degree 3: no feature form
    for z in (wide, tall):
        torch.testing.assert_close(kernel_mean(z, kernel), kernel_mean(z, kernel, method="gram"))


def test_choose_method_rules():
    assert choose_method("auto", True, dim=8, local_rows=64, total_rows=64) == "feature"
    assert choose_method("auto", True, dim=64, local_rows=64, total_rows=64) == "gram"  # q = N: not cheaper
    assert choose_method("auto", False, dim=8, local_rows=64, total_rows=64) == "gram"
    rows = int(GRAM_BLOCK_ELEMENTS**0.5)
    assert choose_method("auto", False, dim=8, local_rows=rows, total_rows=rows) == "gram"
    assert choose_method("auto", False, dim=8, local_rows=rows + 1, total_rows=rows + 1) == "blocked"
    assert choose_method("blocked", True, dim=8, local_rows=4, total_rows=4) == "blocked"


def test_the_reference_path_has_second_derivatives_and_the_fused_paths_say_where_to_find_them():
    z = sphere(12, 6)
    for method in ("gram", "blocked"):
        assert _path_taken(z, "legendre", method=method, block_size=5) == "fused"
    assert _path_taken(z, "legendre", method="reference") == "autograd"
    assert _path_taken(z, GaussianKernel(1.0), method="reference") == "autograd"
    # and the second derivative of the reference path is right (gradgradcheck in float64)
    zz = z.clone().requires_grad_()
    torch.autograd.gradgradcheck(lambda x: kernel_mean(x, "legendre", method="reference", normalize=True), (zz,))


@pytest.mark.parametrize("q", [3, 64, 1024])
def test_degree_two_mean_is_the_distance_of_the_covariance_to_isotropy(q):
    # mean_ij P_2(q; z_iᵀz_j) = q/(q-1) · ||C - I/q||²_F with C = ZᵀZ / N
    z = sphere(50, q, seed=q)
    kernel = TruncatedLegendreKernel((0.0, 1.0))
    covariance = z.T @ z / z.shape[0]
    expected = q / (q - 1) * (covariance - torch.eye(q, dtype=z.dtype) / q).pow(2).sum()
    for method in ("gram", "feature"):
        torch.testing.assert_close(kernel_mean(z, kernel, method=method), expected)


def test_degree_one_mean_is_the_squared_norm_of_the_mean_embedding():
    z = sphere(50, 7)
    torch.testing.assert_close(kernel_mean(z, TruncatedLegendreKernel((1.0,))), z.mean(0).pow(2).sum())


@pytest.mark.parametrize("kernel", [TruncatedLegendreKernel((1.0, 40.0, 40.0)), GaussianKernel(2.5)])
def test_uniform_samples_have_vanishing_mmd_and_collapse_does_not(kernel):
    q = 64
    unbiased = []
    for n in (256, 1024, 4096):
        z = sphere(n, q, seed=n, dtype=torch.float32)
        value_u = float(mmd_to_uniform(z, kernel, estimator="u"))
        value_v = float(mmd_to_uniform(z, kernel, estimator="v"))
        # the U-statistic is unbiased (its spread shrinks like 1/N); the V one adds (φ(1) - m_U)/N
        bias = (float(kernel.phi(torch.ones(1), q)) - kernel.uniform_mean(q)) / n
        assert abs(value_u) < 20.0 / n * (float(kernel.phi(torch.ones(1), q)) + 1)
        assert value_v == pytest.approx(value_u * (n - 1) / n + bias, abs=1e-4)
        unbiased.append(abs(value_u))
    collapsed = F.normalize(torch.ones(256, q), dim=1)
    concentrated = F.normalize(torch.randn(256, q, generator=torch.Generator().manual_seed(0)) + 5.0, dim=1)
    assert float(mmd_to_uniform(collapsed, kernel)) > 100 * max(unbiased)
    assert float(mmd_to_uniform(concentrated, kernel)) > 100 * max(unbiased)


def test_collapse_reaches_the_kernel_maximum():
    collapsed = F.normalize(torch.ones(64, 32, dtype=torch.float64), dim=1)
    assert float(mmd_to_uniform(collapsed)) == pytest.approx(81.0)


def test_half_precision_input_is_computed_in_float32_under_autocast():
    z = sphere(64, 256, dtype=torch.float32)
    expected = kernel_mean(z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        value = kernel_mean(z.to(torch.bfloat16), normalize=True)
        value_from_float = kernel_mean(z)
    assert value.dtype == torch.float32 and value_from_float.dtype == torch.float32
    torch.testing.assert_close(value_from_float, expected)
    torch.testing.assert_close(value, expected, rtol=0.05, atol=0.02)  # only the bf16 rounding of z


def test_zero_vectors_give_finite_values_and_gradients():
    z = torch.randn(8, 16, dtype=torch.float64)
    z[3] = 0
    z.requires_grad_()
    for method in ("gram", "blocked"):
        value = kernel_mean(z, normalize=True, method=method, block_size=3)
        (grad,) = torch.autograd.grad(value, z)
        assert torch.isfinite(value) and torch.isfinite(grad).all()


@pytest.mark.parametrize("normalize", [False, True])
@pytest.mark.parametrize("kernel", [TruncatedLegendreKernel((1.0, 40.0, 40.0, 3.0)), GaussianKernel(1.5)])
@pytest.mark.parametrize("method, estimator", [("gram", "v"), ("gram", "u"), ("blocked", "u")])
def test_gradcheck(kernel, method, estimator, normalize):
    # moderate norms keep exp(2τ(t - 1)) in the range where finite differences are accurate
    z = (torch.randn(9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7)) / 2).requires_grad_()
    torch.autograd.gradcheck(
        lambda x: kernel_mean(x, kernel, method=method, estimator=estimator, normalize=normalize, block_size=4), (z,)
    )


@pytest.mark.parametrize(
    "z, kwargs, error, message",
    [
        (torch.randn(4), {}, ValueError, r"must be 2-D \(batch, dim\), got shape \(4,\)"),
        (torch.randn(4, 1), {}, ValueError, r"q = 1; the sphere S\^\(q-1\) needs q >= 2"),
        (torch.randn(1, 8), {}, ValueError, "at least 2 embeddings"),
        (torch.ones(4, 8, dtype=torch.long), {}, TypeError, "floating dtype"),
        (torch.tensor([[1.0, float("nan")], [0.0, 1.0]]), {}, ValueError, r"1 non-finite value\(s\)"),
        (torch.randn(4, 8), {"estimator": "w"}, ValueError, r"estimator must be one of \['v', 'u'\], got 'w'"),
        (torch.randn(4, 8), {"method": "fast"}, ValueError, r"method must be one of"),
        (torch.randn(4, 8), {"method": "feature"}, ValueError, "needs a kernel of degree <= 2"),
        (torch.randn(4, 8), {"block_size": 0}, ValueError, "block_size must be a positive integer"),
        (torch.randn(4, 8), {"distributed": "yes"}, ValueError, "distributed must be one of"),
        (torch.randn(4, 8), {"kernel": "rbf"}, ValueError, "unknown kernel 'rbf'"),
        ([[1.0, 2.0]], {}, TypeError, "must be a torch.Tensor"),
    ],
)
def test_bad_inputs_raise_clear_errors(z, kwargs, error, message):
    with pytest.raises(error, match=message):
        kernel_mean(z, **kwargs)


def test_blocked_path_never_holds_the_full_gram_matrix():
    from sfrik_plugin.profiler.measure import peak_memory_bytes

    n, q, block = 4096, 16, 128
    z = sphere(n, q, dtype=torch.float32).requires_grad_()
    full_gram_bytes = n * n * 4

    def step(method):
        z.grad = None
        kernel_mean(z, method=method, block_size=block).backward()

    gram_peak = peak_memory_bytes(lambda: step("gram"))
    blocked_peak = peak_memory_bytes(lambda: step("blocked"))
    assert gram_peak > full_gram_bytes  # the whole-matrix path keeps N × N for the backward
    # blocked: a few block × N buffers (Gram, φ, φ') and the N × q gradient, nowhere near N × N
    assert blocked_peak < 8 * block * n * 4 + 4 * n * q * 4 < full_gram_bytes / 2

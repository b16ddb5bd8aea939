import pytest
import torch
import torch.nn.functional as F
from reference import kernel_mean_reference, sfrik_loss_reference, uniformity_loss_reference

from sfrik_plugin import (
    SFRIK_LOSS_DEFAULTS,
    SFRIKLoss,
    UniformityLoss,
    sfrik_loss_func,
    sfrik_multicrop_loss_func,
    uniformity_loss_func,
)


def views(n=48, q=96, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    z1 = torch.randn(n, q, generator=generator, dtype=dtype)
    z2 = z1 + 0.5 * torch.randn(n, q, generator=generator, dtype=dtype)
    return z1.requires_grad_(), z2.requires_grad_()


def relative_error(a, b):
    return float((a - b).detach().abs().max() / b.detach().abs().max().clamp_min(1e-30))


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-10), (torch.float32, 1e-6)])
@pytest.mark.parametrize("method", ["auto", "gram", "blocked"])
def test_loss_matches_the_paper_formula_in_value_and_gradient(method, dtype, tolerance):
    z1, z2 = views(dtype=dtype)
    out = sfrik_loss_func(z1, z2, method=method, block_size=5)
    loss, invariance, mmd = sfrik_loss_reference(z1, z2)
    for ours, expected in zip(out, (loss, invariance, mmd)):
        assert relative_error(ours, expected) < tolerance
    ours_grads = torch.autograd.grad(out.loss, (z1, z2))
    expected_grads = torch.autograd.grad(loss, (z1, z2))
    for ours, expected in zip(ours_grads, expected_grads):
        assert relative_error(ours, expected) < tolerance


def test_defaults_are_the_papers():
    assert SFRIK_LOSS_DEFAULTS["weights"] == (1.0, 40.0, 40.0)
    assert SFRIK_LOSS_DEFAULTS["mmd_coeff"] == 1.0 and SFRIK_LOSS_DEFAULTS["estimator"] == "v"


@pytest.mark.parametrize("weights", [(1.0,), (1.0, 40.0), (2.0, 0.5, 3.0, 4.0)])
def test_unbiased_estimator_and_other_weights_match_the_reference(weights):
    padded = tuple(weights) + (0.0,) * (4 - len(weights))
    z1, z2 = views(n=20, q=10)
    out = sfrik_loss_func(z1, z2, weights=weights, estimator="u", sim_coeff=7.0, mmd_coeff=0.5, method="gram")
    loss, _, _ = sfrik_loss_reference(z1, z2, 7.0, 0.5, padded, unbiased=True)
    torch.testing.assert_close(out.loss, loss)
    torch.testing.assert_close(torch.autograd.grad(out.loss, z1)[0], torch.autograd.grad(loss, z1)[0])


def test_gradcheck_of_the_whole_loss():
    z1 = torch.randn(7, 6, dtype=torch.float64, requires_grad=True)
    z2 = torch.randn(7, 6, dtype=torch.float64, requires_grad=True)
    for method in ("gram", "blocked"):

        def loss(a, b, method=method):
            return sfrik_loss_func(a, b, sim_coeff=3.0, method=method, block_size=2).loss

        torch.autograd.gradcheck(loss, (z1, z2))


def test_multicrop_with_two_large_views_is_the_two_view_loss():
    z1, z2 = views(n=16, q=32)
    two = sfrik_loss_func(z1, z2)
    multi = sfrik_multicrop_loss_func([z1, z2])
    for a, b in zip(two, multi):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("regularize_small", [True, False])
def test_multicrop_matches_a_direct_implementation(regularize_small):
    generator = torch.Generator().manual_seed(3)
    crops = [torch.randn(12, 20, generator=generator, dtype=torch.float64, requires_grad=True) for _ in range(5)]
    large, small = crops[:2], crops[2:]
    out = sfrik_multicrop_loss_func(large, small, regularize_small=regularize_small, sim_coeff=10.0, method="gram")
    x = [F.normalize(c, dim=1) for c in crops]
    invariance = sum(sum(F.mse_loss(x[i], x[j]) for j in range(5) if j != i) / 4 for i in range(2)) / 2
    regularized = x if regularize_small else x[:2]
    mmd = sum(kernel_mean_reference(e, (1.0, 40.0, 40.0)) for e in regularized) / len(regularized)
    expected = 10.0 * invariance + mmd
    torch.testing.assert_close(out.loss, expected)
    for ours, reference in zip(torch.autograd.grad(out.loss, crops), torch.autograd.grad(expected, crops)):
        torch.testing.assert_close(ours, reference)


def test_uniformity_loss_matches_wang_and_isola():
    z1, z2 = views(n=30, q=16)
    out = uniformity_loss_func(z1, z2)
    expected = uniformity_loss_reference(z1, z2)
    for a, b in zip(out, expected):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(torch.autograd.grad(out.loss, z1)[0], torch.autograd.grad(expected[0], z1)[0])
    module = UniformityLoss()
    torch.testing.assert_close(module(z1, z2), expected[0])


def test_module_keeps_the_parts_and_validates_early():
    z1, z2 = views(n=8, q=16)
    criterion = SFRIKLoss(sim_coeff=2.0, mmd_coeff=3.0, weights=(1.0, 2.0, 3.0))
    loss = criterion(z1, z2)
    reference, invariance, mmd = sfrik_loss_reference(z1, z2, 2.0, 3.0, (1.0, 2.0, 3.0))
    torch.testing.assert_close(loss, reference)
    torch.testing.assert_close(criterion.last_output.invariance, invariance)
    torch.testing.assert_close(criterion.last_output.mmd, mmd)
    with pytest.raises(ValueError, match="b_3 = -1.0"):
        SFRIKLoss(weights=(1.0, 2.0, -1.0))


def test_collapse_is_penalised_and_spread_is_not():
    collapsed = torch.ones(64, 128)
    spread = torch.randn(64, 128)
    assert float(sfrik_loss_func(collapsed, collapsed).loss) == pytest.approx(81.0, rel=1e-5)
    assert float(sfrik_loss_func(spread, spread).loss) < 2.0  # ≈ φ(1)/N = 81/64


def test_half_precision_under_autocast_gives_a_float32_loss():
    z1, z2 = views(n=32, q=64, dtype=torch.float32)
    expected = sfrik_loss_func(z1, z2).loss
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = sfrik_loss_func(z1.bfloat16(), z2.bfloat16())
    assert out.loss.dtype == torch.float32
    torch.testing.assert_close(out.loss, expected, rtol=0.02, atol=0.02)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ((torch.randn(4, 8), torch.randn(5, 8)), {}, r"z1 is \(4, 8\) but z2 is \(5, 8\)"),
        ((torch.randn(1, 8), torch.randn(1, 8)), {}, "at least 2 embeddings"),
        ((torch.randn(4, 1), torch.randn(4, 1)), {}, "needs q >= 2"),
        ((torch.randn(4, 8, 2), torch.randn(4, 8, 2)), {}, "must be 2-D"),
        ((torch.randn(4, 8), torch.randn(4, 8)), {"weights": (1.0, -2.0)}, "b_2 = -2.0"),
        ((torch.randn(4, 8), torch.randn(4, 8)), {"weights": ()}, "at least one value"),
        ((torch.randn(4, 8), torch.randn(4, 8)), {"sim_coeff": -1.0}, "sim_coeff must be a finite number >= 0"),
        ((torch.full((4, 8), float("inf")), torch.randn(4, 8)), {}, r"z1 holds 32 non-finite"),
    ],
)
def test_bad_inputs(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        sfrik_loss_func(*args, **kwargs)


def test_unknown_options_are_named_and_the_module_validates_them_at_construction():
    with pytest.raises(TypeError, match=r"unknown option 'methd'; the MMD options are: estimator, method"):
        sfrik_loss_func(torch.randn(4, 8), torch.randn(4, 8), methd="gram")
    with pytest.raises(
        ValueError, match=r"method must be one of \['auto', 'gram', 'blocked', 'feature', 'reference'\]"
    ):
        SFRIKLoss(method="fast")


@pytest.mark.parametrize("method", ["gram", "blocked", "feature"])
def test_the_reference_path_is_the_official_formula_and_the_fast_paths_equal_it(method):
    z1, z2 = views()
    weights = (1.0, 40.0) if method == "feature" else (1.0, 40.0, 40.0)
    reference = sfrik_loss_func(z1, z2, weights=weights, method="reference")
    expected = sfrik_loss_reference(z1, z2, weights=weights)
    for ours, paper in zip(reference, expected):  # reference = the paper's formula, by autograd
        assert relative_error(ours, paper) < 1e-12
    fast = sfrik_loss_func(z1, z2, weights=weights, method=method, block_size=7)
    assert relative_error(fast.loss, reference.loss) < 1e-10
    for ours, theirs in zip(torch.autograd.grad(fast.loss, (z1, z2)), torch.autograd.grad(reference.loss, (z1, z2))):
        assert relative_error(ours, theirs) < 1e-9


def test_retained_graph_gives_the_same_gradients_twice():
    # the fused function keeps what its backward needs through save_for_backward: a second
    # backward over a retained graph must see the same tensors, unmodified
    z1, z2 = views()
    for method in ("gram", "blocked"):
        loss = sfrik_loss_func(z1, z2, method=method, block_size=5).loss
        first = torch.autograd.grad(loss, (z1, z2), retain_graph=True)
        second = torch.autograd.grad(loss, (z1, z2))
        for a, b in zip(first, second):
            assert torch.equal(a, b)


def test_loss_settings_are_checked_once_and_give_the_functions_values():
    # SFRIKLossSettings: the pre-built, pre-checked form of sfrik_loss_func's keywords (what a
    # training method builds once); a bad value is an InvalidOption naming the setting
    from sfrik_plugin import SFRIKLossSettings, sfrik_multicrop_loss_func
    from sfrik_plugin.maths.options import InvalidOption

    torch.manual_seed(0)
    large, small = [torch.randn(16, 8) for _ in range(2)], [torch.randn(16, 8) for _ in range(2)]
    keywords = dict(sim_coeff=25.0, mmd_coeff=2.0, weights=(1.0, 40.0), estimator="u", method="gram")
    settings = SFRIKLossSettings.from_keywords(**keywords)
    for got, expected in (
        (settings.loss(*large), sfrik_loss_func(*large, **keywords)),
        (
            settings.multicrop_loss(large, small, regularize_small=False),
            sfrik_multicrop_loss_func(large, small, regularize_small=False, **keywords),
        ),
    ):
        for a, b in zip(got, expected):
            assert torch.equal(a, b)
    for bad, name in (
        (dict(mmd_coeff=float("nan")), "mmd_coeff"),
        (dict(block_size=0), "block_size"),
        (dict(estimator="x"), "estimator"),
    ):
        with pytest.raises(InvalidOption, match=f"^{name} must be") as caught:
            SFRIKLossSettings.from_keywords(**bad)
        assert caught.value.name == name
    with pytest.raises(TypeError, match="kernel must be a RotationInvariantKernel"):
        SFRIKLossSettings(kernel=(1.0, 40.0))  # type: ignore[arg-type]

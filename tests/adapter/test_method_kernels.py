"""``method_kwargs.kernel``: the sphere's kernel families selectable from a solo-learn config (issue 18).

The loss SFRIK builds from ``kernel: {name: heat, ...}`` must equal the loss of the Legendre kernel
with the heat kernel's weights at that q (a heat or band-limited kernel *is* a Legendre series),
computed by the plain function; a bad kernel is one line naming ``method_kwargs.kernel``; ``weights``
given with another kernel is refused rather than silently ignored."""

from __future__ import annotations

import pytest
from _tiny_runs import tiny_pretrain_args

pytestmark = pytest.mark.requires_solo


@pytest.mark.parametrize(
    "spec",
    [{"name": "heat", "tau": 0.02}, {"name": "bandlimited", "degree": 5}, "bandlimited"],
    ids=["heat", "bandlimited-5", "by-name"],
)
def test_a_named_kernel_gives_the_loss_of_its_legendre_weights(spec):
    import torch

    from sfrik_plugin import build_kernel, sfrik_loss_func
    from sfrik_plugin.solo.method import _loss_settings, check_sfrik_method_kwargs

    q = 32
    kwargs = check_sfrik_method_kwargs({"kernel": spec, "proj_output_dim": q, "sim_coeff": 50.0, "mmd_method": "gram"})
    settings = _loss_settings(kwargs)
    name, params = (
        (spec, {}) if isinstance(spec, str) else (spec["name"], {k: v for k, v in spec.items() if k != "name"})
    )
    weights = build_kernel(name, **params).weights_for(q)
    assert weights != (1.0, 40.0, 40.0)  # not the default kernel by accident
    z1, z2 = torch.randn(24, q, dtype=torch.float64), torch.randn(24, q, dtype=torch.float64)
    expected = sfrik_loss_func(z1, z2, sim_coeff=50.0, weights=weights, method="reference")
    got = settings.loss(z1, z2)
    torch.testing.assert_close(got.loss, expected.loss, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(got.mmd, expected.mmd, rtol=1e-10, atol=1e-12)


def test_the_default_is_the_legendre_kernel_of_weights():
    from sfrik_plugin.solo.method import _loss_settings, check_sfrik_method_kwargs

    kernel = _loss_settings(check_sfrik_method_kwargs({"weights": [2.0, 3.0]})).kernel
    assert tuple(kernel.weights) == (2.0, 3.0)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"kernel": "nope"}, "method_kwargs.kernel: unknown kernel 'nope'"),
        ({"kernel": {"name": "heat", "tua": 0.1}}, "method_kwargs.kernel: kernel 'heat'"),
        ({"kernel": {"tau": 0.1}}, "method_kwargs.kernel must be a kernel name or a mapping"),
        ({"kernel": "heat", "weights": [1.0, 2.0]}, "method_kwargs.weights applies to kernel 'legendre' only"),
        # a heat kernel so flat at this q that its tail does not fit 64 degrees: refused when the method is built
        ({"kernel": {"name": "heat", "tau": 1e-9}, "proj_output_dim": 8}, "method_kwargs.kernel:"),
    ],
)
def test_a_bad_kernel_is_one_error_naming_the_key(kwargs, fragment):
    from sfrik_plugin.solo.method import _loss_settings, check_sfrik_method_kwargs

    with pytest.raises(ValueError) as caught:
        _loss_settings(check_sfrik_method_kwargs(kwargs))
    assert fragment in str(caught.value) and "\n" not in str(caught.value)


def test_the_launcher_trains_with_a_heat_kernel(cli, tiny_overrides, tiny_data, tmp_path):
    proc = cli(
        "pretrain",
        [
            *tiny_overrides,
            *tiny_pretrain_args(tiny_data, tmp_path, "custom/sfrik"),
            "method_kwargs.kernel={name: heat, tau: 0.05}",
        ],
        cwd=tmp_path,
    )
    assert "pretraining done" in proc.stdout + proc.stderr
    import json

    (args,) = list((tmp_path / "ckpt").rglob("args.json"))
    assert json.loads(args.read_text())["method_kwargs"]["kernel"] == {"name": "heat", "tau": 0.05}

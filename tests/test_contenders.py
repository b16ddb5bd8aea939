"""The contender registry and the memory model: entries, errors, predictions against exact measured
peaks, the budget, and a new baseline added in one place and carried through the whole profiler."""

from __future__ import annotations

import math

import pytest
import torch

from sfrik_plugin import contenders as C
from sfrik_plugin.contenders.memory import BackboneSize, read_meminfo
from sfrik_plugin.contenders.registry import LossContender, PlotStyle, TrainMethod
from sfrik_plugin.profiler import isolation, workers
from sfrik_plugin.profiler.analysis import loss_summary, result_row
from sfrik_plugin.profiler.measure import peak_memory_bytes
from sfrik_plugin.profiler.plots import plot_loss, style_and_label

# ------------------------------------------------------------------------------------ the registry


def test_the_builtin_contenders_and_methods_are_registered():
    assert list(C.CONTENDERS) == ["sfrik-gram", "sfrik-blocked", "sfrik-feature", "vicreg", "barlow", "sigreg"]
    assert {name: c.needs_solo for name, c in C.CONTENDERS.items()} == {
        "sfrik-gram": False,
        "sfrik-blocked": False,
        "sfrik-feature": False,
        "vicreg": True,
        "barlow": True,
        "sigreg": False,  # lightly, imported by its step builder (tests/test_sigreg_contender.py)
    }
    # the complexity claims: SFRIK's Gram paths O(N² q), the q x q contenders O(N q²)
    assert (C.get_contender("sfrik-gram").q_exponent, C.get_contender("sfrik-gram").n_exponent) == (1.0, 2.0)
    assert all(C.get_contender(c).q_exponent == 2.0 for c in ("sfrik-feature", "vicreg", "barlow"))
    methods = {m.name: (m.solo_method, m.config, m.loss) for m in C.TRAIN_METHODS.values()}
    assert methods == {
        "sfrik": ("sfrik", "sfrik", "sfrik-gram"),
        "vicreg": ("vicreg", "vicreg", "vicreg"),
        "barlow": ("barlow_twins", "barlow", "barlow"),
        "lejepa": ("lejepa", "lejepa", "sigreg"),
    }
    styles = [c.style for c in C.CONTENDERS.values()]
    assert len({(s.color, s.marker) for s in styles}) == len(styles)  # every curve tells itself apart


def test_unknown_names_list_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown contender 'simclr'; known: \['barlow', 'sfrik-blocked'"):
        C.get_contender("simclr")
    with pytest.raises(
        ValueError, match=r"unknown training method 'byol'; known: \['barlow', 'lejepa', 'sfrik', 'vicreg'\]"
    ):
        C.get_train_method("byol")
    with pytest.raises(ValueError, match="unknown contender 'simclr'"):
        C.unregister_contender("simclr")


def test_the_registry_refuses_duplicates_and_malformed_entries():
    vicreg = C.get_contender("vicreg")
    with pytest.raises(ValueError, match="'vicreg' is already registered; pass replace=True"):
        C.register_contender(vicreg)
    assert C.register_contender(vicreg, replace=True) is vicreg and list(C.CONTENDERS)[3] == "vicreg"
    with pytest.raises(TypeError):
        C.CONTENDERS["x"] = vicreg  # type: ignore[index]  (read-only: go through register_contender)
    with pytest.raises(ValueError, match="q_exponent of contender 'x' must be a positive number, got 0"):
        LossContender("x", "X", 0, 1.0, False, "", mse_step, mse_memory, PlotStyle("k"))
    with pytest.raises(ValueError, match="memory of contender 'x' must be callable, got 3"):
        LossContender("x", "X", 1.0, 1.0, False, "", mse_step, 3, PlotStyle("k"))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="a contender name must be a non-empty string"):
        LossContender(" x", "X", 1.0, 1.0, False, "", mse_step, mse_memory, PlotStyle("k"))
    with pytest.raises(ValueError, match="takes a LossContender, got str"):
        C.register_contender("vicreg")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown contender 'mse'"):  # a method's loss must be registered
        C.register_train_method(TrainMethod("m", "M", "vicreg", "vicreg", "mse", PlotStyle("k")))
    assert "m" not in C.TRAIN_METHODS


# ------------------------------------------------------------------------------------ the budget


def test_read_meminfo_parses_kilobytes(tmp_path):
    fake = tmp_path / "meminfo"
    fake.write_text("MemTotal:       24684092 kB\nMemAvailable:   20817748 kB\nHugePages_Total:       0\n")
    info = read_meminfo(fake)
    assert info["MemTotal"] == 24684092 * 1024
    assert info["MemAvailable"] == 20817748 * 1024
    assert info["HugePages_Total"] == 0
    assert read_meminfo(tmp_path / "missing") == {}


def test_parse_and_format_bytes():
    assert C.parse_bytes("8GiB") == 8 * 2**30
    assert C.parse_bytes("512M") == 512 * 2**20
    assert C.parse_bytes("1.5g") == 3 * 2**29
    assert C.parse_bytes(1000) == 1000
    with pytest.raises(ValueError, match="not a memory size: 'lots'"):
        C.parse_bytes("lots")
    assert C.format_bytes(3 * 2**30) == "3.0 GiB"
    assert C.format_bytes(1536 * 2**10) == "1.5 MiB"
    assert C.format_bytes(None) == "–" and C.format_bytes(math.nan) == "–"


def test_memory_budget_cpu_is_half_the_available_memory_capped_at_8_gib():
    assert C.memory_budget("cpu", available=4 * C.GIB)[0] == 2 * C.GIB
    value, text = C.memory_budget("cpu", available=40 * C.GIB)
    assert value == 8 * C.GIB and "8.0 GiB" in text
    value, text = C.memory_budget("cpu", override="12GiB", available=1 * C.GIB)
    assert value == 12 * C.GIB and "--memory-budget" in text
    with pytest.raises(ValueError, match="positive"):
        C.memory_budget("cpu", override="0")


def test_memory_budget_reads_this_machine():
    value, text = C.memory_budget("cpu")
    assert 0 < value <= 8 * C.GIB
    assert "available" in text


# ------------------------------------------------------------------------------------ predictions


def test_prediction_scales_as_claimed():
    n = 256
    for contender in ("vicreg", "barlow", "sfrik-feature"):  # O(q²) memory
        small, large = (C.predict_loss_peak_bytes(contender, n, q) for q in (8192, 16384))
        assert 3.8 < large / small <= 4.0
    for contender in ("sfrik-gram", "sfrik-blocked"):  # O(N q) for the gradients, O(N²) for the kernel
        small, large = (C.predict_loss_peak_bytes(contender, n, q) for q in (8192, 16384))
        assert 1.9 < large / small <= 2.0
    # the figures: q x q float32 is 4 GiB at q = 32768, and VICReg holds several
    assert C.predict_loss_peak_bytes("vicreg", 256, 32768) > 6 * 4 * C.GIB
    assert C.predict_loss_peak_bytes("sfrik-gram", 256, 32768) < 200 * C.MIB
    # half precision halves the solo-learn matrices; SFRIK's N² terms stay float32
    assert C.predict_loss_peak_bytes("vicreg", 256, 4096, torch.bfloat16) * 2 == pytest.approx(
        C.predict_loss_peak_bytes("vicreg", 256, 4096), rel=1e-3
    )
    assert C.predict_loss_peak_bytes("sfrik-gram", 8192, 64, torch.bfloat16) > 0.9 * C.predict_loss_peak_bytes(
        "sfrik-gram", 8192, 64
    )
    # smaller blocks, less memory; the default block of a small batch is the whole batch
    assert C.predict_loss_peak_bytes("sfrik-blocked", 4096, 1024, block_size=64) < C.predict_loss_peak_bytes(
        "sfrik-blocked", 4096, 1024
    )
    assert C.predict_loss_peak_bytes("sfrik-blocked", 256, 1024) == C.predict_loss_peak_bytes(
        "sfrik-blocked", 256, 1024, block_size=256
    )
    assert (
        C.predict_loss_total_bytes("sfrik-gram", 8, 16)
        == C.predict_loss_peak_bytes("sfrik-gram", 8, 16) + 2 * 8 * 16 * 4
    )


def test_prediction_rejects_nonsense():
    with pytest.raises(ValueError, match="unknown contender 'simclr'"):
        C.predict_loss_peak_bytes("simclr", 8, 8)
    with pytest.raises(ValueError, match="N must be a positive integer, got 0"):
        C.predict_loss_peak_bytes("vicreg", 0, 8)
    with pytest.raises(ValueError, match="block_size must be a positive integer, got 0"):
        C.predict_loss_peak_bytes("sfrik-blocked", 8, 8, block_size=0)
    with pytest.raises(ValueError, match="dtype must be a torch.dtype"):
        C.predict_loss_peak_bytes("vicreg", 8, 8, "fp16")  # type: ignore[arg-type]


# The prediction must bound the exact allocation peak from above (it decides what may run) and not
# be vacuous (at least 0.4 of it is really allocated). The measure replays the call's own
# allocations only, so the figure is the same whatever ran before in this process.
@pytest.mark.parametrize(
    "contender, block_size",
    [("sfrik-gram", None), ("sfrik-blocked", None), ("sfrik-blocked", 16), ("sfrik-feature", None)],
)
@pytest.mark.parametrize("n, q", [(64, 256), (32, 512), (256, 1024), (512, 128)])
def test_prediction_bounds_the_measured_allocation_peak_of_sfrik(contender, block_size, n, q):
    torch.manual_seed(0)
    z1, z2 = (torch.randn(n, q, requires_grad=True) for _ in range(2))
    step = workers.loss_step(contender, z1, z2, {"block_size": block_size})
    step()  # warm-up
    measured = peak_memory_bytes(step)
    predicted = C.predict_loss_peak_bytes(contender, n, q, block_size=block_size)
    assert 0.4 * predicted <= measured <= predicted
    assert peak_memory_bytes(step) == measured  # deterministic


def test_fit_verdict_and_the_q_32768_case():
    budget = 8 * C.GIB
    fits, reason = C.fit_verdict(C.predict_loss_total_bytes("vicreg", 256, 32768), budget)
    assert not fits and reason.startswith("does not fit (predicted 39.2 GiB x 1.5") and "budget 8.0 GiB" in reason
    fits, reason = C.fit_verdict(C.predict_loss_total_bytes("sfrik-gram", 256, 32768), budget)
    assert fits and reason.startswith("fits")
    assert not C.fit_verdict(6 * C.GIB, budget)[0]  # 6 x 1.5 > 8: the safety factor counts
    assert C.fit_verdict(5 * C.GIB, budget)[0]


def test_training_prediction_refuses_vicreg_at_32768_but_not_sfrik():
    budget = 8 * C.GIB
    assert not C.fit_verdict(C.predict_train_bytes("vicreg", 64, 32768, 2048), budget)[0]
    assert not C.fit_verdict(C.predict_train_bytes("barlow", 64, 32768, 2048), budget)[0]
    assert C.fit_verdict(C.predict_train_bytes("sfrik", 64, 32768, 2048), budget)[0]
    with pytest.raises(ValueError, match="unknown training method 'byol'"):
        C.predict_train_bytes("byol", 64, 8, 8)
    with pytest.raises(ValueError, match="no size known for backbone 'vit_small'"):
        C.predict_train_bytes("sfrik", 64, 8, 8, backbone="vit_small")


def test_training_prediction_takes_any_backbone_by_its_size():
    resnet18 = C.predict_train_bytes("sfrik", 64, 2048, 1024, backbone="resnet18")
    same = BackboneSize(parameters=11_176_512, features=512, activation_bytes=40 * 1024)
    assert C.predict_train_bytes("sfrik", 64, 2048, 1024, backbone=same) == resnet18
    # 10 M more parameters: 4 copies of 10 M floats more (weights, gradients, optimiser state)
    bigger = BackboneSize(parameters=21_176_512, features=512, activation_bytes=40 * 1024)
    assert C.predict_train_bytes("sfrik", 64, 2048, 1024, backbone=bigger) - resnet18 == 16 * 10_000_000
    with pytest.raises(ValueError, match="parameters must be a positive integer, got 0"):
        BackboneSize(parameters=0, features=384)
    # a deeper projector: one more hidden x hidden layer (with bias and BN) in 4 copies, and its activations
    deeper = C.predict_train_bytes("sfrik", 64, 2048, 1024, projector_layers=3)
    assert deeper - resnet18 == 16 * (1024 * 1024 + 3 * 1024) + 2 * 64 * 3 * 1024 * 4
    # solo-learn's VICReg fixes its 2 hidden layers: projector_layers does not change what it builds
    vicreg = C.predict_train_bytes("vicreg", 64, 2048, 1024)
    assert C.predict_train_bytes("vicreg", 64, 2048, 1024, projector_layers=3) == vicreg


def test_projector_dims_count_the_layers_as_they_are_built():
    sfrik = C.projector_dims(512, 2048, 8192, layers=2, last_bias=False)
    assert sfrik.widths == (512, 2048, 2048, 8192)
    assert sfrik.parameters() == (512 * 2048 + 3 * 2048) + (2048 * 2048 + 3 * 2048) + 2048 * 8192
    # the same widths with a bias on the last layer (solo-learn's VICReg and Barlow Twins): + q
    assert C.projector_dims(512, 2048, 8192, layers=2, last_bias=True).parameters() == sfrik.parameters() + 8192
    assert (
        C.projector_dims(512, [64, 32], 8, last_bias=True).parameters()
        == (512 * 64 + 192) + (64 * 32 + 96) + 32 * 8 + 8
    )
    assert C.projector_dims(512, 64, 8, layers=0, last_bias=True).parameters() == 512 * 8 + 8  # a linear projector
    for method, bias in (("sfrik", False), ("vicreg", True), ("barlow", True)):
        assert C.get_train_method(method).projector_last_bias is bias
    with pytest.raises(ValueError, match="proj_hidden_layers must be an integer >= 0, got -1"):
        C.projector_dims(512, 64, 8, layers=-1, last_bias=False)
    with pytest.raises(ValueError, match="proj_hidden_dim must hold positive integers"):
        C.projector_dims(512, [64, 0], 8, last_bias=False)
    with pytest.raises(ValueError, match="proj_hidden_layers must say how many layers"):
        C.projector_dims(512, 64, 8, last_bias=False)


def test_solo_overrides_translate_a_setting_once():
    from sfrik_plugin.contenders.overrides import solo_overrides

    setting = {
        "backbone": {"name": "small_cnn", "kwargs": {"width": 16, "norm": None}},
        "crop_size": 28,
        "num_views_configs": 3,
        "projector": {"hidden": 1024, "q": 512},
        "batch_size": 64,
        "common_overrides": ["optimizer.lr=0.3"],
    }
    assert solo_overrides(setting, q=2048) == [
        "backbone.name=small_cnn",
        "++backbone.kwargs.norm=null",
        "++backbone.kwargs.width=16",
        "augmentations.0.crop_size=28",
        "augmentations.1.crop_size=28",
        "augmentations.2.crop_size=28",
        "method_kwargs.proj_hidden_dim=1024",
        "method_kwargs.proj_output_dim=2048",
        "optimizer.batch_size=64",
        "optimizer.lr=0.3",
    ]
    assert "method_kwargs.proj_output_dim=512" in solo_overrides(setting)  # the setting's own q


# --------------------------------------------------------------- a new baseline, in one place


def mse_step(z1, z2, options):
    """A toy contender: plain MSE between the views (module level: the worker unpickles it)."""
    return lambda: (z1 - z2).pow(2).mean()


def mse_memory(n, q, element_size, compute_size, block_size):
    # the difference, its square, the gradient of the square, and the two input gradients
    return 5 * n * q * element_size


MAGENTA = "#ff00ff"
TOY = LossContender(
    name="toy-mse",
    label="toy MSE",
    q_exponent=1.0,
    n_exponent=1.0,
    needs_solo=False,
    description="(z1 - z2).pow(2).mean()",
    build_step=mse_step,
    memory=mse_memory,
    style=PlotStyle(MAGENTA, "P", "-."),
)


def _magenta_pixels(path) -> int:
    import matplotlib.image

    pixels = matplotlib.image.imread(str(path))[..., :3]
    return int(((pixels[..., 0] > 0.95) & (pixels[..., 1] < 0.05) & (pixels[..., 2] > 0.95)).sum())


def test_a_registered_contender_runs_through_the_worker_the_summary_and_the_plot(tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib (a dev extra) is not installed")
    context = isolation.isolation_context(["torch", "sfrik_plugin.profiler"])
    C.register_contender(TOY)
    try:
        rows = []
        for q in (256, 512):
            predicted = C.predict_loss_total_bytes("toy-mse", 64, q)
            assert C.fit_verdict(predicted, 1 * C.GIB)[0]
            # the entry itself goes to the child, which never saw this registration
            spec = dict(contender=TOY, n=64, q=q, max_repeats=3, threads=1)
            result = isolation.run_isolated(workers.loss_worker, spec, timeout=300, context=context)
            assert result["status"] == "ok", result
            assert 0.4 * C.predict_loss_peak_bytes("toy-mse", 64, q) <= result["peak_bytes"] <= predicted
            base = dict(contender="toy-mse", N=64, q=q, predicted_mib=predicted / C.MIB)
            rows.append(result_row(base, result))
        summary = loss_summary(rows, reference="toy-mse", baseline="vicreg")
        assert summary["slopes"]["toy-mse"]["64"]["q_range"] == [256, 512]
        assert summary["slopes"]["toy-mse"]["64"]["memory"]["slope"] == pytest.approx(1.0, abs=0.01)
        assert style_and_label("toy-mse") == (TOY.style, "toy MSE")
        path = plot_loss(rows, summary, tmp_path / "registered.png")
        assert _magenta_pixels(path) > 100  # drawn in the entry's own colour
    finally:
        C.unregister_contender("toy-mse")
    assert "toy-mse" not in C.CONTENDERS
    # rows of an unregistered contender still plot, in the fallback style
    path = plot_loss(rows, summary, tmp_path / "unregistered.png")
    assert path.stat().st_size > 10_000 and _magenta_pixels(path) == 0


def test_the_blocked_loss_and_its_memory_model_share_one_block_rule(monkeypatch):
    # one rule (maths.options.auto_block_size) gives the rows per block of block_size=None to the
    # loss and to the memory model: change the largest Gram block and both follow
    import torch

    from sfrik_plugin import sfrik_loss_func
    from sfrik_plugin.contenders.losses import blocked_memory
    from sfrik_plugin.maths import options, statistics

    monkeypatch.setattr(options, "GRAM_BLOCK_ELEMENTS", 64)
    seen = []
    original = statistics.fused_statistics
    monkeypatch.setattr(statistics, "fused_statistics", lambda plan, views: seen.append(plan) or original(plan, views))
    sfrik_loss_func(torch.randn(16, 8), torch.randn(16, 8), method="blocked")
    assert [plan.block_size for plan in seen] == [options.auto_block_size(16)] == [4]  # 64 elements // 16 rows
    assert blocked_memory(16, 8, 4, 4, None) == 4.25 * 16 * 8 * 4 + 4 * 4 * 16 * 4

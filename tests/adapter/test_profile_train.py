"""The profiler against the real solo-learn: the training-step builder gives matched methods, a
training step runs through the adapter (in this process and isolated), and the memory models of
solo-learn's losses bound their exact allocation peaks. Nothing here times anything."""

from __future__ import annotations

import os

import pytest

requires_solo = pytest.mark.requires_solo

TINY = dict(q=24, hidden=16, batch_size=4, image_size=32, backbone="resnet18", device="cpu")


@requires_solo
def test_training_configs_are_matched_across_methods():
    from solo.methods import METHODS

    from sfrik_plugin.contenders import TRAIN_METHODS
    from sfrik_plugin.profiler.workers import build_train_config

    projectors = {}
    for name, method in TRAIN_METHODS.items():
        cfg = build_train_config(dict(TINY, method=name))
        assert cfg.method == method.solo_method
        assert cfg.backbone.name == "resnet18" and cfg.optimizer.batch_size == 4
        assert cfg.data.num_large_crops == 2 and cfg.accelerator == "cpu"
        model = METHODS[cfg.method](cfg)
        projectors[name] = [
            tuple(m.weight.shape) for m in model.projector if hasattr(m, "weight") and m.weight.dim() == 2
        ]
    # the same backbone features -> 16 -> 16 -> q for all three methods
    assert projectors["sfrik"] == projectors["vicreg"] == projectors["barlow"] == [(16, 512), (16, 16), (24, 16)]


@requires_solo
def test_a_training_step_runs_through_the_adapter():
    import torch

    from sfrik_plugin.profiler.workers import train_worker

    threads = torch.get_num_threads()
    try:  # in this process: the worker sets the thread count
        result = train_worker(dict(TINY, method="sfrik", warmup=1, min_repeats=2, max_repeats=2, threads=1))
    finally:
        torch.set_num_threads(threads)
    assert result["status"] == "ok", result
    assert len(result["samples"]) == 2 and len(result["warmup_s"]) == 1
    assert result["peak_bytes"] > 0 and result["parameters"] > 11_000_000  # ResNet-18 + projector
    assert result["pid"] == os.getpid()


@requires_solo
def test_an_isolated_training_step_reports_from_its_own_process(tmp_path):
    from sfrik_plugin.profiler.isolation import isolation_context, run_isolated
    from sfrik_plugin.profiler.workers import train_worker

    context = isolation_context(["torch", "lightning.pytorch", "solo.methods", "sfrik_plugin.solo"])
    spec = dict(TINY, method="vicreg", warmup=1, min_repeats=1, max_repeats=1, threads=1, log=str(tmp_path / "w.log"))
    result = run_isolated(train_worker, spec, timeout=600, context=context)
    assert result["status"] == "ok", result
    assert result["pid"] != os.getpid() and len(result["samples"]) == 1


@requires_solo
@pytest.mark.parametrize("contender", ["vicreg", "barlow"])
@pytest.mark.parametrize("n, q", [(64, 256), (32, 512), (256, 1024)])
def test_prediction_bounds_the_measured_allocation_peak_of_solo_losses(contender, n, q):
    import torch

    from sfrik_plugin.contenders import predict_loss_peak_bytes
    from sfrik_plugin.profiler.measure import peak_memory_bytes
    from sfrik_plugin.profiler.workers import loss_step

    torch.manual_seed(0)
    z1, z2 = (torch.randn(n, q, requires_grad=True) for _ in range(2))
    step = loss_step(contender, z1, z2)
    step()
    measured = peak_memory_bytes(step)
    predicted = predict_loss_peak_bytes(contender, n, q)
    assert 0.8 * predicted <= measured <= predicted

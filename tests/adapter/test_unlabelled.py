"""Unlabelled data for every method the launchers train (sfrik_plugin.solo.unlabelled): the online
classifier learns from labelled rows only, nothing turns NaN, and solo-learn's registry is untouched."""

from __future__ import annotations

import math
import shutil

import pytest

pytestmark = pytest.mark.requires_solo

METHODS_UNDER_TEST = ["sfrik", "vicreg", "barlow"]


def _cfg(compose, tiny_overrides, method, train_path, extra=(), labelled=False):
    """A parsed tiny ``custom/<method>`` config (on the flat folder; or on class folders if labelled)."""
    from solo.args.pretrain import parse_cfg

    from sfrik_plugin.solo.launch import parse_with_devices

    data = [] if labelled else ["++data.no_labels=true"]
    cfg = compose(
        f"custom/{method}", [*tiny_overrides, f"data.train_path={train_path}", "data.val_path=null", *data, *extra]
    )
    return parse_with_devices(cfg, parse_cfg)


def _batch(targets, crops=2, size=8, seed=0):
    import torch

    generator = torch.Generator().manual_seed(seed)
    n = len(targets)
    views = [torch.rand(n, 3, size, size, generator=generator) for _ in range(crops)]
    return [torch.arange(n), views, torch.tensor(targets)]


def _classifier_and_rest_grads(model, batch):
    """``(loss, classifier gradients, other gradients)`` of one training step (no optimiser step)."""
    model.zero_grad(set_to_none=True)
    loss = model.training_step(batch, 0)
    loss = loss["loss"] if isinstance(loss, dict) else loss
    loss.backward()
    named = dict(model.named_parameters())
    classifier = {k: p.grad for k, p in named.items() if k.startswith("classifier.")}
    rest = {k: p.grad.clone() for k, p in named.items() if not k.startswith("classifier.") and p.grad is not None}
    assert classifier and rest
    return loss.detach(), classifier, rest


@pytest.fixture
def flat_folder(tmp_path_factory, tiny_data):
    """The tiny training images without class folders (what ``data.no_labels=true`` reads)."""
    root = tmp_path_factory.mktemp("flat")
    for i, image in enumerate(sorted(tiny_data["train"].rglob("*.png"))):
        shutil.copy(image, root / f"{i:03d}.png")
    return root


@pytest.mark.parametrize("method", METHODS_UNDER_TEST)
def test_a_step_on_unlabelled_rows_trains_no_classifier_and_stays_finite(compose, tiny_overrides, flat_folder, method):
    import torch
    from lightning.pytorch import seed_everything
    from solo.methods import METHODS

    from sfrik_plugin.solo.unlabelled import label_masked

    cfg = _cfg(compose, tiny_overrides, method, flat_folder)
    seed_everything(0)
    model = label_masked(METHODS[cfg.method])(cfg).train()

    unlabelled = _batch([-1, -1, -1, -1])
    loss, classifier, rest = _classifier_and_rest_grads(model, unlabelled)
    assert torch.isfinite(loss), "solo-learn's own classes: NaN on unlabelled rows (what this fixes)"
    assert all(g is None or torch.count_nonzero(g) == 0 for g in classifier.values()), "classifier learnt from -1"
    assert all(torch.isfinite(g).all() for g in rest.values())
    # the backbone and projector see exactly the method's own loss: their gradient is the one of
    # the same images with real labels (the classifier reads detached features)
    labelled = _batch([i % cfg.data.num_classes for i in range(4)])
    _, _, labelled_rest = _classifier_and_rest_grads(model, labelled)
    for key, grad in rest.items():
        torch.testing.assert_close(grad, labelled_rest[key], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("method", ["vicreg"])
def test_labelled_rows_give_solo_learns_loss_and_mixed_rows_ignore_the_unlabelled(
    compose, tiny_overrides, tiny_data, method
):
    import torch
    import torch.nn.functional as F
    from lightning.pytorch import seed_everything
    from solo.methods import METHODS

    from sfrik_plugin.solo.unlabelled import label_masked

    cfg = _cfg(compose, tiny_overrides, method, tiny_data["train"], labelled=True)  # 6 classes
    seed_everything(0)
    model = label_masked(METHODS[cfg.method])(cfg).eval()
    seed_everything(0)
    plain = METHODS[cfg.method](cfg).eval()
    images = _batch([0, 1, 2, 3])[1][0]
    with torch.no_grad():
        for targets in ([0, 1, 2, 3], [0, -1, 2, -1]):
            ours = model._base_shared_step(images, torch.tensor(targets))
            solo = plain._base_shared_step(images, torch.tensor(targets))
            torch.testing.assert_close(ours["loss"], solo["loss"])  # ignore_index mean == masked mean
        logits = solo["logits"]
        labelled = torch.tensor([0, 2])
        expected = (logits[labelled].argmax(1) == torch.tensor([0, 2])).float().mean() * 100
        torch.testing.assert_close(ours["acc1"].reshape(()), expected.reshape(()))
        fully = model._base_shared_step(images, torch.tensor([0, 1, 2, 3]))
        reference = plain._base_shared_step(images, torch.tensor([0, 1, 2, 3]))
        torch.testing.assert_close(fully["acc1"].reshape(()), reference["acc1"].reshape(()))
        torch.testing.assert_close(fully["acc5"].reshape(()), reference["acc5"].reshape(()))
        assert math.isclose(
            float(F.cross_entropy(logits, torch.tensor([0, 1, 2, 3]))), float(fully["loss"]), rel_tol=1e-6
        )


def test_solo_learns_registry_keeps_its_own_classes():
    import solo.methods
    from solo.methods.barlow_twins import BarlowTwins
    from solo.methods.vicreg import VICReg

    import sfrik_plugin.solo
    from sfrik_plugin.solo.unlabelled import label_masked

    label_masked(VICReg)  # what a launcher does
    assert solo.methods.METHODS["vicreg"] is VICReg and solo.methods.METHODS["barlow_twins"] is BarlowTwins
    assert solo.methods.METHODS["sfrik"] is sfrik_plugin.solo.SFRIK


def test_a_label_masked_model_survives_pickling(compose, tiny_overrides, flat_folder):
    """Lightning's ddp_spawn pickles the model: the run-time subclass must come back as itself."""
    import pickle

    import torch
    from solo.methods import METHODS

    from sfrik_plugin.solo.unlabelled import label_masked

    cfg = _cfg(compose, tiny_overrides, "vicreg", flat_folder)
    model = label_masked(METHODS[cfg.method])(cfg)
    copy = pickle.loads(pickle.dumps(model))
    assert type(copy) is type(model)
    for key, value in model.state_dict().items():
        assert torch.equal(copy.state_dict()[key], value)


@pytest.mark.parametrize("method", METHODS_UNDER_TEST)
def test_the_launcher_trains_on_a_folder_without_labels(compose, tiny_overrides, flat_folder, tmp_path, method):
    """Two steps of ``run_pretrain`` on a flat folder: every logged value and weight finite (solo's
    own classes log a NaN class loss and return a NaN total), and the online classifier exactly as
    initialised (its weight decay is 0, its gradient must be too)."""
    import torch
    from lightning.pytorch import seed_everything
    from solo.methods import METHODS

    from sfrik_plugin.solo.config import compose_config
    from sfrik_plugin.solo.pretrain import run_pretrain
    from sfrik_plugin.solo.unlabelled import label_masked

    overrides = [
        *tiny_overrides,
        f"data.train_path={flat_folder}",
        "data.val_path=null",
        "++data.no_labels=true",
        "max_epochs=1",
        "++max_steps=2",
        "scheduler.warmup_epochs=0",
        f"checkpoint.dir={tmp_path}",
        "auto_resume.enabled=False",
    ]
    result = run_pretrain(compose_config("pretrain", f"custom/{method}", overrides))
    model = result["model"]
    assert result["trainer"].global_step == 2
    logged = {k: float(v) for k, v in result["trainer"].callback_metrics.items()}
    assert "train_class_loss" in logged
    assert all(math.isfinite(v) for v in logged.values()), f"{method}: NaN/inf logged: {logged}"
    for name, tensor in model.state_dict().items():
        if tensor.is_floating_point():
            assert torch.isfinite(tensor).all(), f"{method}: {name} holds NaN/inf after training on unlabelled data"
    cfg = _cfg(compose, tiny_overrides, method, flat_folder, ["max_epochs=1", "scheduler.warmup_epochs=0"])
    seed_everything(cfg.seed)
    initial = label_masked(METHODS[cfg.method])(cfg)
    for key in ("classifier.weight", "classifier.bias"):
        torch.testing.assert_close(model.state_dict()[key], initial.state_dict()[key], rtol=0, atol=0)
    # the method itself did train
    backbone = [k for k in initial.state_dict() if k.startswith("backbone.") and k.endswith("conv1.weight")][0]
    assert not torch.equal(model.state_dict()[backbone], initial.state_dict()[backbone])

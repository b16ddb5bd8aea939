"""The in-memory pretraining loader: solo-learn's batch format, seeded shuffling per epoch, drop_last,
and a real solo-learn method trained on it by Lightning."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sfrik_plugin.data.batch_augment import BatchAugment
from sfrik_plugin.data.fast_pretrain import FastPretrainLoader, fast_pretrain_loader
from sfrik_plugin.data.tensor_images import TensorImages

VIEWS = [
    {"crop_size": 16, "num_crops": 2, "rrc": {"crop_min_scale": 0.2}, "horizontal_flip": {"prob": 0.5}},
    {"crop_size": 8, "num_crops": 1, "solarization": {"prob": 0.5}},
]


def _data(n: int = 50) -> TensorImages:
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n, 3, 28, 28), generator=g, dtype=torch.uint8)
    return TensorImages(images, torch.arange(n) % 7, tuple(f"c{i}" for i in range(7)))


def _epoch(loader) -> list:
    return list(loader)


def test_batches_have_solo_learns_format():
    data = _data()
    loader = FastPretrainLoader(data, VIEWS, batch_size=8, seed=0)
    batches = _epoch(loader)
    assert len(loader) == len(batches) == 50 // 8  # drop_last: 6 full batches, 2 images left out
    seen = []
    for indexes, views, targets in batches:
        assert indexes.dtype == targets.dtype == torch.int64 and indexes.shape == targets.shape == (8,)
        assert torch.equal(targets, data.targets[indexes])
        assert [tuple(v.shape) for v in views] == [(8, 3, 16, 16)] * 2 + [(8, 3, 8, 8)]  # pipeline order
        assert all(v.dtype == torch.float32 for v in views)
        seen += indexes.tolist()
    assert len(set(seen)) == 48 and set(seen) <= set(range(50))


def test_views_are_the_augmentation_of_the_indexed_images():
    data = _data()
    loader = FastPretrainLoader(data, VIEWS, batch_size=8, seed=3)
    loader.set_epoch(2)
    indexes, views, _ = next(iter(loader))
    augment = BatchAugment(VIEWS)
    augment.reseed(loader.augment.generator.initial_seed())  # the seed the loader gave the epoch
    expected = augment(data.images[indexes])
    assert all(torch.equal(a, b) for a, b in zip(views, expected))


def test_order_and_augmentations_depend_only_on_seed_and_epoch():
    a, b = FastPretrainLoader(_data(), VIEWS, 8, seed=1), FastPretrainLoader(_data(), VIEWS, 8, seed=1)
    a.set_epoch(4)
    b.set_epoch(4)
    first, second = _epoch(a), _epoch(b)
    for (i1, v1, _), (i2, v2, _) in zip(first, second):
        assert torch.equal(i1, i2) and all(torch.equal(x, y) for x, y in zip(v1, v2))
    a.set_epoch(4)
    assert all(torch.equal(x[0], y[0]) for x, y in zip(_epoch(a), first))  # set_epoch(4) again: same pass
    a.set_epoch(5)
    other = _epoch(a)
    assert not torch.equal(torch.cat([x[0] for x in other]), torch.cat([x[0] for x in first]))
    c = FastPretrainLoader(_data(), VIEWS, 8, seed=2)
    c.set_epoch(4)
    assert not torch.equal(torch.cat([x[0] for x in _epoch(c)]), torch.cat([x[0] for x in first]))


def test_a_pass_without_set_epoch_moves_to_the_next_epoch():
    loader = FastPretrainLoader(_data(), VIEWS, 8, seed=1)
    passes = [torch.cat([i for i, _, _ in _epoch(loader)]) for _ in range(3)]
    assert loader.sampler.epoch == 2
    explicit = FastPretrainLoader(_data(), VIEWS, 8, seed=1)
    for epoch in range(3):
        explicit.set_epoch(epoch)
        assert torch.equal(torch.cat([i for i, _, _ in _epoch(explicit)]), passes[epoch])


def test_drop_last_false_keeps_the_tail_and_shuffle_false_keeps_the_order():
    loader = FastPretrainLoader(_data(), VIEWS, 8, seed=0, drop_last=False, shuffle=False)
    batches = _epoch(loader)
    assert len(loader) == len(batches) == 7 and batches[-1][0].tolist() == [48, 49]
    assert torch.equal(torch.cat([b[0] for b in batches]), torch.arange(50))


def test_replicas_split_each_epoch_and_augment_differently():
    parts = [FastPretrainLoader(_data(), VIEWS, 5, seed=0, num_replicas=2, rank=r) for r in range(2)]
    batches = [_epoch(p) for p in parts]
    indexes = [torch.cat([b[0] for b in run]) for run in batches]
    assert len(indexes[0]) == len(indexes[1]) == 25 and not set(indexes[0].tolist()) & set(indexes[1].tolist())
    assert parts[0].augment.generator.initial_seed() != parts[1].augment.generator.initial_seed()


def test_fast_pretrain_loader_reads_an_image_folder(tmp_path):
    from PIL import Image

    for c in range(2):
        (tmp_path / f"class{c}").mkdir()
        for i in range(6):
            Image.fromarray(np.full((28, 28, 3), 40 * c + i, np.uint8)).save(tmp_path / f"class{c}" / f"{i}.png")
    loader = fast_pretrain_loader(tmp_path, VIEWS, batch_size=4, seed=0, cache=tmp_path / "cache.npz")
    assert len(loader) == 3 and (tmp_path / "cache.npz").is_file()
    indexes, views, targets = next(iter(loader))
    assert targets.tolist() == (indexes >= 6).long().tolist()


# ---------------------------------------------------------------------------------------------
# Lightning + the real solo-learn methods


def _fashion_like_folder(root, classes: int = 6, per_class: int = 12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        (root / f"class_{c}").mkdir(parents=True)
        for i in range(per_class):
            image = np.clip(rng.normal(40 * c, 30, (28, 28)), 0, 255).astype(np.uint8)
            Image.fromarray(image).save(root / f"class_{c}" / f"{i:03d}.png")
    return root


@pytest.mark.requires_solo
@pytest.mark.parametrize("method", ["sfrik", "vicreg"])
def test_lightning_trains_a_solo_learn_method_on_the_loader(tmp_path, method):
    import warnings

    from lightning.pytorch import Trainer, seed_everything
    from lightning.pytorch.callbacks import Callback
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS

    import sfrik_plugin.solo  # noqa: F401  (registers "sfrik")
    from sfrik_plugin.solo.config import compose_config
    from sfrik_plugin.solo.launch import parse_with_devices

    warnings.filterwarnings("ignore")
    root = _fashion_like_folder(tmp_path / "train")
    overrides = [
        "backbone.name=resnet18", "accelerator=cpu", "devices=1", "strategy=auto", "precision=32",
        "optimizer.batch_size=8", "data.num_workers=0", "method_kwargs.proj_hidden_dim=32",
        "method_kwargs.proj_output_dim=16", "augmentations.0.crop_size=28", "augmentations.1.crop_size=28",
        "augmentations.0.rrc.crop_min_scale=0.2", "augmentations.1.rrc.crop_min_scale=0.2", "max_epochs=2",
        "++performance.disable_channel_last=True", "wandb=off",
    ]  # fmt: skip
    cfg = compose_config("pretrain", f"custom/{method}", overrides)
    cfg.data.train_path, cfg.data.val_path = str(root), None
    cfg = parse_with_devices(cfg, parse_cfg)
    seed_everything(0)
    model = METHODS[method](cfg)
    loader = fast_pretrain_loader(root, cfg.augmentations, cfg.optimizer.batch_size, seed=cfg.seed)

    seen: list[tuple[int, int, list[int]]] = []

    class Record(Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            indexes, views, targets = batch
            assert len(views) == 2 and views[0].shape == (8, 3, 28, 28)
            seen.append((trainer.current_epoch, loader.sampler.epoch, indexes.tolist()))

    trainer = Trainer(
        accelerator="cpu", devices=1, max_epochs=2, limit_train_batches=2, logger=False,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
        num_sanity_val_steps=0, callbacks=[Record()],
    )  # fmt: skip
    before = [p.detach().clone() for p in model.backbone.parameters()]
    trainer.fit(model, loader)
    assert trainer.global_step == 4
    assert [(e, s) for e, s, _ in seen] == [(0, 0), (0, 0), (1, 1), (1, 1)]  # Lightning's set_epoch reached us
    assert seen[0][2] != seen[2][2]  # a new order in epoch 1
    assert any(not torch.equal(a, b) for a, b in zip(before, model.backbone.parameters()))
    loss = trainer.callback_metrics.get(f"train_{method}_loss")
    assert loss is not None and torch.isfinite(loss)


def _probe_and_trainer():
    """A LightningModule recording (epoch, indexes, checksum of the first view) of each batch, and a
    factory of quiet CPU trainers."""
    import warnings

    from lightning.pytorch import LightningModule, Trainer

    warnings.filterwarnings("ignore")

    class Probe(LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(3, 1)
            self.seen: list[tuple[int, list[int], float]] = []

        def training_step(self, batch, batch_idx):
            indexes, views, _ = batch
            self.seen.append((self.current_epoch, indexes.tolist(), float(views[0].sum())))
            return self.layer(views[0].mean((2, 3))).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    def trainer(epochs, **kw):
        return Trainer(
            accelerator="cpu", devices=1, max_epochs=epochs, logger=False, enable_progress_bar=False,
            enable_model_summary=False, num_sanity_val_steps=0, **kw,
        )  # fmt: skip

    return Probe, trainer


def test_a_resumed_run_sees_the_batches_of_an_uninterrupted_one(tmp_path):
    from lightning.pytorch.callbacks import ModelCheckpoint

    Probe, trainer = _probe_and_trainer()
    whole = Probe()
    trainer(3, enable_checkpointing=False).fit(whole, FastPretrainLoader(_data(), VIEWS, 16, seed=7))
    first = Probe()
    checkpoint = ModelCheckpoint(dirpath=str(tmp_path), save_last=True)
    trainer(2, callbacks=[checkpoint]).fit(first, FastPretrainLoader(_data(), VIEWS, 16, seed=7))
    resumed = Probe()
    trainer(3, enable_checkpointing=False).fit(
        resumed, FastPretrainLoader(_data(), VIEWS, 16, seed=7), ckpt_path=str(tmp_path / "last.ckpt")
    )
    assert [s[0] for s in resumed.seen] == [2, 2, 2]
    assert resumed.seen == [s for s in whole.seen if s[0] == 2]
    assert first.seen == [s for s in whole.seen if s[0] < 2]


def test_lightnings_epoch_wins_over_earlier_passes():
    """Lightning makes its first iterator before it calls set_epoch(0): a loader already iterated
    (e.g. by a profiler) must still give epoch 0, so the epoch is read when the first batch is drawn."""
    Probe, trainer = _probe_and_trainer()
    fresh, used = Probe(), Probe()
    trainer(1, enable_checkpointing=False).fit(fresh, FastPretrainLoader(_data(), VIEWS, 16, seed=7))
    loader = FastPretrainLoader(_data(), VIEWS, 16, seed=7)
    _epoch(loader)
    _epoch(loader)
    trainer(1, enable_checkpointing=False).fit(used, loader)
    assert used.seen == fresh.seen


def test_augments_with_its_own_thread_count_and_restores_the_processs():
    previous = torch.get_num_threads()
    counts: list[int] = []
    loader = FastPretrainLoader(_data(), VIEWS, 8, seed=0, threads=1)
    real = loader.augment.__call__
    loader.augment = type("Spy", (), {"__call__": lambda self, b: counts.append(torch.get_num_threads()) or real(b),
                                      "reseed": lambda self, s: None, "num_views": 3})()  # fmt: skip
    torch.set_num_threads(2)
    try:
        for _ in loader:
            assert torch.get_num_threads() == 2  # the model step runs with the process's setting
    finally:
        torch.set_num_threads(previous)
    assert counts == [1] * 6
    loader.threads = None
    torch.set_num_threads(2)
    try:
        loader.batch(torch.arange(8))
    finally:
        torch.set_num_threads(previous)
    assert counts[-1] == 2

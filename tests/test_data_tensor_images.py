"""Decoding an ImageFolder once into a uint8 tensor, its cache, and the seeded index batch sampler."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.datasets import ImageFolder

from sfrik_plugin.console import InputError
from sfrik_plugin.data import tensor_images as ti


def _write_folder(root: Path, per_class: int = 5, size: tuple[int, int] = (12, 10), grey_class: int | None = 1) -> Path:
    rng = np.random.default_rng(0)
    for c, name in enumerate(["b_second", "a_first", "c_third"]):  # folder names out of order on purpose
        (root / name).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            if c == grey_class:
                array = rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8)
            else:
                array = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
            Image.fromarray(array).save(root / name / f"{(per_class - i) * 7:03d}.png")  # names out of order too
    return root


def test_folder_decodes_like_torchvisions_imagefolder(tmp_path):
    root = _write_folder(tmp_path / "train")
    data = ti.load_image_folder(root)
    reference = ImageFolder(str(root))
    assert data.images.shape == (15, 3, 10, 12) and data.images.dtype == torch.uint8
    assert data.classes == tuple(reference.classes) == ("a_first", "b_second", "c_third")
    assert data.targets.tolist() == reference.targets
    for i, (image, target) in enumerate(reference):  # PIL image converted to RGB, label
        assert torch.equal(data.images[i], torch.from_numpy(np.array(image)).permute(2, 0, 1)), i
        index, item, label = data[i]
        assert index == i and label == target and torch.equal(item, data.images[i])


def test_fashion_mnist_arrays_match_the_idx_files():
    from sfrik_plugin.data.fashion_mnist import FASHION_MNIST_DIR, load_fashion_mnist

    if not any(FASHION_MNIST_DIR.glob("t10k-images-idx3-ubyte*")):
        pytest.skip(f"Fashion-MNIST idx files not in {FASHION_MNIST_DIR}")
    images, labels = load_fashion_mnist("test")
    data = ti.fashion_mnist_images("test", indices=[5, 0, 9999])
    assert data.images.shape == (3, 3, 28, 28)
    for channel in range(3):  # grey repeated into RGB, as PIL's convert("RGB") does
        assert torch.equal(data.images[:, channel], torch.from_numpy(images[[5, 0, 9999]]))
    assert data.targets.tolist() == labels[[5, 0, 9999]].tolist()
    assert len(data.classes) == 10


def test_from_arrays_accepts_grey_and_rgb_and_rejects_the_rest():
    grey = ti.from_arrays(np.full((2, 4, 5), 9, np.uint8), [0, 1])
    rgb = ti.from_arrays(np.zeros((2, 4, 5, 3), np.uint8), [0, 1])
    assert grey.images.shape == rgb.images.shape == (2, 3, 4, 5) and int(grey.images.min()) == 9
    with pytest.raises(InputError, match="uint8"):
        ti.from_arrays(np.zeros((2, 4, 5), np.float32), [0, 1])
    with pytest.raises(InputError, match="shape"):
        ti.from_arrays(np.zeros((2, 4, 5, 2), np.uint8), [0, 1])
    with pytest.raises(InputError, match="targets"):
        ti.from_arrays(np.zeros((2, 4, 5), np.uint8), [0, 1, 2])


def test_images_of_different_sizes_are_an_input_error(tmp_path):
    root = _write_folder(tmp_path / "train", per_class=2)
    Image.fromarray(np.zeros((11, 12, 3), np.uint8)).save(root / "c_third" / "999.png")
    with pytest.raises(InputError, match="999.png is 12x11 px"):
        ti.load_image_folder(root)


def test_missing_or_empty_folders_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        ti.load_image_folder(tmp_path / "nowhere")
    (tmp_path / "empty" / "a").mkdir(parents=True)
    with pytest.raises(InputError):
        ti.load_image_folder(tmp_path / "empty")


def test_cache_is_reused_and_rebuilt_when_the_files_change(tmp_path, monkeypatch):
    root = _write_folder(tmp_path / "train")
    cache = tmp_path / "cache" / "train.npz"
    first = ti.load_image_folder(root, cache=cache)
    assert cache.is_file()

    decoded: list[int] = []
    real_decode = ti._decode
    monkeypatch.setattr(ti, "_decode", lambda samples: decoded.append(len(samples)) or real_decode(samples))
    again = ti.load_image_folder(root, cache=cache)
    assert decoded == []  # read from the cache
    assert torch.equal(again.images, first.images) and torch.equal(again.targets, first.targets)
    assert again.classes == first.classes

    Image.fromarray(np.zeros((10, 12, 3), np.uint8)).save(root / "a_first" / "new.png")  # one more file
    grown = ti.load_image_folder(root, cache=cache)
    assert decoded == [16] and len(grown) == 16

    path = root / "a_first" / "new.png"  # same name, other content of another byte size
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (10, 12, 3), dtype=np.uint8)).save(path)
    changed = ti.load_image_folder(root, cache=cache)
    assert decoded == [16, 16] and not torch.equal(changed.images, grown.images)
    assert sorted(os.listdir(cache.parent)) == ["train.npz"]  # no temporary files left behind


def test_a_corrupt_cache_is_ignored_and_replaced(tmp_path):
    root = _write_folder(tmp_path / "train")
    cache = tmp_path / "train.npz"
    cache.write_bytes(b"not an npz file")
    data = ti.load_image_folder(root, cache=cache)
    assert len(data) == 15 and np.load(cache)["images"].shape == (15, 3, 10, 12)


def test_folder_key_depends_on_names_and_sizes_only(tmp_path):
    root = _write_folder(tmp_path / "train")
    key = ti.folder_key(root)
    assert ti.folder_key(root) == key
    os.utime(root / "a_first" / "007.png", (0, 0))  # touching a file keeps the key
    assert ti.folder_key(root) == key
    (root / "a_first" / "007.png").rename(root / "a_first" / "008.png")
    assert ti.folder_key(root) != key


# ---------------------------------------------------------------------------------------------
# sampler


def test_sampler_shuffles_a_permutation_per_seed_and_epoch():
    sampler = ti.IndexBatchSampler(103, batch_size=10, seed=4, drop_last=False)
    epoch0 = torch.cat(list(sampler))
    assert sorted(epoch0.tolist()) == list(range(103))  # every index once
    assert torch.equal(torch.cat(list(sampler)), epoch0)  # same epoch, same order
    sampler.set_epoch(1)
    epoch1 = torch.cat(list(sampler))
    assert not torch.equal(epoch1, epoch0) and sorted(epoch1.tolist()) == list(range(103))
    again = ti.IndexBatchSampler(103, batch_size=10, seed=4, drop_last=False)
    again.set_epoch(1)
    assert torch.equal(torch.cat(list(again)), epoch1)  # reproducible from (seed, epoch)
    other_seed = ti.IndexBatchSampler(103, batch_size=10, seed=5, drop_last=False)
    assert not torch.equal(torch.cat(list(other_seed)), epoch0)


def test_sampler_drop_last_like_a_dataloader():
    for drop_last in (True, False):
        sampler = ti.IndexBatchSampler(103, batch_size=10, shuffle=False, drop_last=drop_last)
        loader = torch.utils.data.DataLoader(range(103), batch_size=10, drop_last=drop_last)
        assert len(sampler) == len(loader) == len(list(sampler))
        assert [b.tolist() for b in sampler] == [b.tolist() for b in loader]
    with pytest.raises(InputError, match="no complete batch"):
        ti.IndexBatchSampler(5, batch_size=8)


def test_replicas_share_one_permutation_and_split_it():
    shards = [ti.IndexBatchSampler(10, batch_size=2, seed=1, num_replicas=3, rank=r, drop_last=False) for r in range(3)]
    parts = [torch.cat(list(s)) for s in shards]
    assert [len(p) for p in parts] == [4, 4, 4]  # 10 indices padded to 12 by wrapping
    assert set(torch.cat(parts).tolist()) == set(range(10))
    full = ti.IndexBatchSampler(10, batch_size=10, seed=1, drop_last=False)
    assert torch.equal(parts[0], torch.cat([torch.cat(list(full)), torch.cat(list(full))[:2]])[0::3])
    with pytest.raises(InputError, match="rank"):
        ti.IndexBatchSampler(10, batch_size=2, num_replicas=2, rank=2)


def test_epoch_seed_streams_differ():
    seeds = {ti.epoch_seed(0, epoch, stream) for epoch in range(20) for stream in range(3)}
    assert len(seeds) == 60 and all(0 <= s < 2**63 for s in seeds)


def test_an_image_that_does_not_decode_is_named(tmp_path):
    root = _write_folder(tmp_path / "train")
    broken = root / "a_first" / "broken.png"
    broken.write_bytes(b"not a png at all")
    with pytest.raises(InputError, match=f"cannot decode image {broken}"):
        ti.load_image_folder(root)

"""Fashion-MNIST idx -> ImageFolder preparation (no solo-learn, no torch needed)."""

from __future__ import annotations

import gzip
import json
import struct

import numpy as np
import pytest

from sfrik_plugin.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    per_class_subset,
    prepare_fashion_mnist,
    read_idx,
)


def _write_idx(path, array: np.ndarray, type_code: int = 0x08, compress: bool = True) -> None:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if compress:
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


@pytest.fixture
def fake_source(tmp_path):
    """A miniature Fashion-MNIST in the real file format: 10 classes, 6 train / 3 test images each."""
    rng = np.random.default_rng(0)
    src = tmp_path / "src"
    src.mkdir()
    for split, per in (("train", 6), ("t10k", 3)):
        labels = np.repeat(np.arange(10, dtype=np.uint8), per)
        rng.shuffle(labels)
        images = rng.integers(0, 256, size=(labels.size, 28, 28), dtype=np.uint8)
        _write_idx(src / f"{split}-images-idx3-ubyte.gz", images)
        _write_idx(src / f"{split}-labels-idx1-ubyte.gz", labels)
    return src


def test_read_idx_roundtrip_plain_and_gzip(tmp_path):
    a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.gz", a)
    _write_idx(tmp_path / "a", a, compress=False)
    assert np.array_equal(read_idx(tmp_path / "a.gz"), a)
    assert np.array_equal(read_idx(tmp_path / "a"), a)
    b = np.array([1, -2, 300], dtype=np.int32)
    _write_idx(tmp_path / "b", b, type_code=0x0C, compress=False)
    assert read_idx(tmp_path / "b").tolist() == [1, -2, 300]


def test_read_idx_rejects_bad_files(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + b"\x00" * 8)
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    a = np.zeros((4,), dtype=np.uint8)
    _write_idx(tmp_path / "short", a, compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(ValueError, match="expected 4 bytes"):
        read_idx(tmp_path / "short")


def test_per_class_subset_is_balanced_deterministic_and_checked():
    labels = np.array([0, 1, 2] * 10)
    idx = per_class_subset(labels, 4, seed=3)
    assert np.array_equal(idx, per_class_subset(labels, 4, seed=3))
    assert np.bincount(labels[idx]).tolist() == [4, 4, 4]
    assert not np.array_equal(idx, per_class_subset(labels, 4, seed=4))
    assert per_class_subset(labels, None).size == 30
    with pytest.raises(ValueError, match="class 0 has only 10 samples, 11 requested"):
        per_class_subset(labels, 11)


def test_prepare_writes_an_image_folder_and_reuses_it(fake_source, tmp_path):
    from PIL import Image

    root = tmp_path / "fm"
    paths = prepare_fashion_mnist(root, train_per_class=4, val_per_class=2, source=fake_source)
    assert sorted(p.name for p in paths["train"].iterdir()) == sorted(FASHION_MNIST_CLASSES)
    assert sum(1 for _ in paths["train"].rglob("*.png")) == 40
    assert sum(1 for _ in paths["val"].rglob("*.png")) == 20
    some = next(paths["train"].rglob("*.png"))
    with Image.open(some) as img:
        assert img.size == (28, 28) and img.mode == "L"
    # the written pixels are the idx pixels
    images = read_idx(fake_source / "train-images-idx3-ubyte.gz")
    assert np.array_equal(np.asarray(Image.open(some)), images[int(some.stem)])
    # labels follow the folder: the class of image i is its folder
    labels = read_idx(fake_source / "train-labels-idx1-ubyte.gz")
    assert some.parent.name == FASHION_MNIST_CLASSES[labels[int(some.stem)]]

    stamp = json.loads((root / "prepared.json").read_text())
    assert stamp["train_per_class"] == 4
    mtime = some.stat().st_mtime_ns
    prepare_fashion_mnist(root, train_per_class=4, val_per_class=2, source=fake_source)
    assert some.stat().st_mtime_ns == mtime  # reused, not rewritten

    prepare_fashion_mnist(root, train_per_class=2, val_per_class=1, source=fake_source)
    assert sum(1 for _ in paths["train"].rglob("*.png")) == 20  # other settings: rebuilt


def test_missing_source_names_the_debian_package(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset-fashion-mnist"):
        prepare_fashion_mnist(tmp_path / "out", source=tmp_path / "nowhere")


@pytest.mark.skipif(not FASHION_MNIST_DIR.exists(), reason="Debian package dataset-fashion-mnist is not installed")
def test_real_fashion_mnist_files_are_read():
    from sfrik_plugin.data.fashion_mnist import load_fashion_mnist

    images, labels = load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10

"""Fashion-MNIST from wherever it is: --data (idx files or an ImageFolder), the Debian package, or a
verified download from a real HTTP server on 127.0.0.1; and its preparation as an ImageFolder tree."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import re
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from sfrik_plugin.console import InputError
from sfrik_plugin.data import fashion_mnist_sources as sources
from sfrik_plugin.data.download import ChecksumMismatchError, DownloadError
from sfrik_plugin.data.fashion_mnist import (
    FASHION_MNIST_CLASSES,
    FASHION_MNIST_DIR,
    load_fashion_mnist,
    per_class_subset,
    prepare_fashion_mnist,
    read_idx,
)
from sfrik_plugin.data.fashion_mnist_sources import download_fashion_mnist, fashion_mnist_source

NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


# a miniature Fashion-MNIST in the real file format ---------------------------------------------


def _idx_bytes(array: np.ndarray, type_code: int = 0x08) -> bytes:
    header = bytes([0, 0, type_code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def _gz(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as f:  # mtime=0: the same bytes every run
        f.write(payload)
    return buffer.getvalue()


def _write_idx(path, array: np.ndarray, type_code: int = 0x08, compress: bool = True) -> None:
    payload = _idx_bytes(array, type_code)
    Path(path).write_bytes(_gz(payload) if compress else payload)


def _release(per_train: int = 6, per_test: int = 3, seed: int = 0) -> dict[str, bytes]:
    """The four .gz files of a fake release: 10 classes, ``per_*`` images each, random pixels."""
    rng = np.random.default_rng(seed)
    files = {}
    for split, per in (("train", per_train), ("t10k", per_test)):
        labels = np.repeat(np.arange(10, dtype=np.uint8), per)
        rng.shuffle(labels)
        images = rng.integers(0, 256, size=(labels.size, 28, 28), dtype=np.uint8)
        files[f"{split}-images-idx3-ubyte.gz"] = _gz(_idx_bytes(images))
        files[f"{split}-labels-idx1-ubyte.gz"] = _gz(_idx_bytes(labels))
    return files


def _md5s(files: dict[str, bytes]) -> dict[str, str]:
    return {name: hashlib.md5(data).hexdigest() for name, data in files.items()}


@pytest.fixture
def release() -> dict[str, bytes]:
    return _release()


@pytest.fixture
def fake_source(tmp_path, release):
    src = tmp_path / "src"
    src.mkdir()
    for name, data in release.items():
        (src / name).write_bytes(data)
    return src


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    """No test reads the user's cache or mirror settings."""
    monkeypatch.setenv(sources.CACHE_ENV, str(tmp_path / "user-cache"))
    monkeypatch.delenv(sources.MIRRORS_ENV, raising=False)


# a real HTTP server on 127.0.0.1 ---------------------------------------------------------------


class Server:
    """Serves ``files`` under ``/fm/``; honours ``Range``; records requests; can cut a response short."""

    def __init__(self, files: dict[str, bytes]):
        self.files = dict(files)
        self.requests: list[tuple[str, str | None]] = []
        self.cut: dict[str, int] = {}  # file name -> bytes sent before the next response of it dies
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.rsplit("/", 1)[-1]
                owner.requests.append((name, self.headers.get("Range")))
                data = owner.files.get(name) if self.path.startswith("/fm/") else None
                if data is None:
                    self.send_error(404)
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match:
                    start = int(match.group(1))
                self.send_response(206 if match else 200)
                self.send_header("Content-Length", str(len(data) - start))
                if match:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                limit = owner.cut.pop(name, None)
                self.wfile.write(data[start:] if limit is None else data[start : start + limit])
                if limit is not None:
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/fm/"

    def stop(self) -> None:
        if self.thread.is_alive():
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()


@pytest.fixture
def server(release):
    srv = Server(release)
    yield srv
    srv.stop()


def _refused_base() -> str:
    """A 127.0.0.1 URL where nothing listens (the port was free a moment ago)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/fm/"


def _visible(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def _one_line(excinfo: pytest.ExceptionInfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, f"the message must be one line: {text!r}"
    return text


# the idx format and the subset -----------------------------------------------------------------


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
    with pytest.raises(InputError, match="not an IDX file"):
        read_idx(tmp_path / "bad")
    a = np.zeros((4,), dtype=np.uint8)
    _write_idx(tmp_path / "short", a, compress=False)
    (tmp_path / "short").write_bytes((tmp_path / "short").read_bytes()[:-1])
    with pytest.raises(InputError, match="expected 4 bytes"):
        read_idx(tmp_path / "short")
    (tmp_path / "broken.gz").write_bytes(b"\x1f\x8b" + b"\x00" * 20)
    with pytest.raises(InputError, match=r"cannot read .*broken\.gz"):
        read_idx(tmp_path / "broken.gz")


def test_per_class_subset_is_balanced_deterministic_and_checked():
    labels = np.array([0, 1, 2] * 10)
    idx = per_class_subset(labels, 4, seed=3)
    assert np.array_equal(idx, per_class_subset(labels, 4, seed=3))
    assert np.bincount(labels[idx]).tolist() == [4, 4, 4]
    assert not np.array_equal(idx, per_class_subset(labels, 4, seed=4))
    assert per_class_subset(labels, None).size == 30
    with pytest.raises(InputError, match="class 0 has only 10 samples, 11 requested"):
        per_class_subset(labels, 11)
    with pytest.raises(InputError, match="class 'cat' has only 10 samples"):
        per_class_subset(labels, 11, class_names=["cat", "dog", "eel"])


# preparation from idx files --------------------------------------------------------------------


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

    stamp = (root / "prepared.json").read_text()
    assert '"train_per_class": 4' in stamp
    mtime = some.stat().st_mtime_ns
    prepare_fashion_mnist(root, train_per_class=4, val_per_class=2, source=fake_source)
    assert some.stat().st_mtime_ns == mtime  # reused, not rewritten

    prepare_fashion_mnist(root, train_per_class=2, val_per_class=1, source=fake_source)
    assert sum(1 for _ in paths["train"].rglob("*.png")) == 20  # other settings: rebuilt


def test_prepare_rebuilds_when_the_data_changes(fake_source, tmp_path):
    root = tmp_path / "fm"
    prepare_fashion_mnist(root, 2, 1, source=fake_source)
    other = tmp_path / "other"
    other.mkdir()
    for name, data in _release(seed=5).items():
        (other / name).write_bytes(data)
    first = sorted(p.relative_to(root) for p in (root / "train").rglob("*.png"))
    prepare_fashion_mnist(root, 2, 1, source=other)  # other labels: the old tree must not be reused
    labels = read_idx(other / "train-labels-idx1-ubyte.gz")
    for png in (root / "train").rglob("*.png"):
        assert png.parent.name == FASHION_MNIST_CLASSES[labels[int(png.stem)]]
    assert sorted(p.relative_to(root) for p in (root / "train").rglob("*.png")) != first


def test_labels_outside_0_to_9_are_another_dataset(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for split, n in (("train", 4), ("t10k", 2)):
        _write_idx(src / f"{split}-images-idx3-ubyte.gz", np.zeros((n, 28, 28), dtype=np.uint8))
        _write_idx(src / f"{split}-labels-idx1-ubyte.gz", np.full(n, 12, dtype=np.uint8))
    with pytest.raises(InputError, match=r"holds label 12 .*labels are 0\.\.9"):
        load_fashion_mnist("train", src)


# --data -----------------------------------------------------------------------------------------


def test_data_folder_with_plain_idx_files(tmp_path, release):
    data = tmp_path / "plain"
    data.mkdir()
    for name, blob in release.items():
        (data / name.removesuffix(".gz")).write_bytes(gzip.decompress(blob))
    source = fashion_mnist_source(data)
    assert (source.kind, source.origin, source.path) == ("idx", "data", data)
    assert source.files["t10k-images-idx3-ubyte"] == data / "t10k-images-idx3-ubyte"
    images, labels = load_fashion_mnist("test", source)
    assert images.shape == (30, 28, 28) and np.bincount(labels).tolist() == [3] * 10
    paths = prepare_fashion_mnist(tmp_path / "out", 2, 1, source=source)
    assert sum(1 for _ in paths["val"].rglob("*.png")) == 10


def test_data_folder_in_torchvision_layout(tmp_path, release):
    raw = tmp_path / "root" / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name, blob in release.items():
        (raw / name).write_bytes(blob)
    source = fashion_mnist_source(tmp_path / "root")
    assert source.kind == "idx" and source.path == raw


def _image_folder(root: Path, counts: dict[str, int], val_name: str = "test") -> Path:
    from PIL import Image

    for split, per in (("train", counts), (val_name, {c: max(1, n // 2) for c, n in counts.items()})):
        for cls, n in per.items():
            (root / split / cls).mkdir(parents=True, exist_ok=True)
            for i in range(n):
                Image.fromarray(np.full((4, 4), i, dtype=np.uint8)).save(root / split / cls / f"{i:02d}.png")
    return root


def test_data_image_folder_is_used_as_is_or_subset_by_class(tmp_path):
    data = _image_folder(tmp_path / "pets", {"cat": 6, "dog": 5, "eel": 4})
    source = fashion_mnist_source(data)
    assert (source.kind, source.origin) == ("image_folder", "data")
    assert source.folders == {"train": data / "train", "val": data / "test"}
    assert "ImageFolder tree" in source.describe()

    assert prepare_fashion_mnist(tmp_path / "out", None, None, source=source) == source.folders  # as is
    assert not (tmp_path / "out").exists()

    paths = prepare_fashion_mnist(tmp_path / "out", 3, 2, seed=1, source=source)
    for cls in ("cat", "dog", "eel"):
        train = sorted((paths["train"] / cls).iterdir())
        assert len(train) == 3 and all(p.is_symlink() for p in train)
        assert all(Path(os.path.realpath(p)).parent == (data / "train" / cls).resolve() for p in train)
        assert len(list((paths["val"] / cls).iterdir())) == 2
    again = prepare_fashion_mnist(tmp_path / "again", 3, 2, seed=1, source=source)
    assert sorted(p.name for p in (again["train"] / "cat").iterdir()) == sorted(
        p.name for p in (paths["train"] / "cat").iterdir()
    )  # deterministic
    with pytest.raises(InputError, match="class 'eel' has only 4 samples, 5 requested"):
        prepare_fashion_mnist(tmp_path / "out", 5, 1, source=source)
    with pytest.raises(InputError, match="overlap"):
        prepare_fashion_mnist(data, 2, 1, source=source)  # would delete the data it reads


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda d: None, "does not exist; pass a folder holding the four Fashion-MNIST idx files"),
        (lambda d: d.write_text("x"), "is a file, not a folder"),
        (lambda d: d.mkdir(), "holds neither the four Fashion-MNIST idx files"),
        (lambda d: (d / "cat").mkdir(parents=True), "pass its parent holding train/ and val/"),
        (lambda d: (d / "train").mkdir(parents=True), "has a train/ folder but no val/ or test/ folder"),
    ],
)
def test_data_folder_problems(tmp_path, make, expected):
    data = tmp_path / "data"
    make(data)
    with pytest.raises(InputError) as excinfo:
        fashion_mnist_source(data, option="--data")
    text = _one_line(excinfo)
    assert text.startswith(f"--data {data}") and expected in text


def test_data_folder_with_three_of_four_idx_files(fake_source):
    (fake_source / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(InputError, match=r"holds only some of the Fashion-MNIST idx files: t10k-labels-idx1-ubyte"):
        fashion_mnist_source(fake_source)


def test_data_folder_with_images_of_the_wrong_shape(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for split in ("train", "t10k"):
        _write_idx(src / f"{split}-images-idx3-ubyte.gz", np.zeros((2, 32, 32), dtype=np.uint8))
        _write_idx(src / f"{split}-labels-idx1-ubyte.gz", np.zeros(2, dtype=np.uint8))
    with pytest.raises(InputError, match=r"shape \(2, 32, 32\), not Fashion-MNIST images"):
        fashion_mnist_source(src)


def test_data_image_folder_problems(tmp_path):
    data = _image_folder(tmp_path / "d", {"cat": 2, "dog": 2}, val_name="val")
    (data / "val" / "dog").rename(data / "val" / "wolf")
    with pytest.raises(InputError, match=r"only in train/: \['dog'\]; only in val/: \['wolf'\]"):
        fashion_mnist_source(data)
    (data / "val" / "wolf").rename(data / "val" / "dog")
    for png in (data / "train" / "dog").iterdir():
        png.unlink()
    with pytest.raises(InputError, match=r"--data train folder .*class folder\(s\) without image files: 'dog'"):
        fashion_mnist_source(data)


# the Debian package -----------------------------------------------------------------------------


def test_system_folder_comes_before_the_download(fake_source, tmp_path):
    source = fashion_mnist_source(system_dir=fake_source, cache_dir=tmp_path / "cache", mirrors=[_refused_base()])
    assert (source.kind, source.origin, source.path) == ("idx", "system", fake_source)
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(
    not FASHION_MNIST_DIR.exists(),
    reason="/usr/share/datasets/fashion-mnist does not exist: the Debian package dataset-fashion-mnist is not installed",
)
def test_the_debian_package_is_found_and_read(tmp_path):
    source = fashion_mnist_source(cache_dir=tmp_path / "cache", mirrors=[_refused_base()])
    assert (source.origin, source.path) == ("system", FASHION_MNIST_DIR)
    images, labels = load_fashion_mnist("test", source)
    assert images.shape == (10000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(labels).tolist() == [1000] * 10


# the download -----------------------------------------------------------------------------------


def test_download_verifies_caches_and_is_reused_offline(server, release, tmp_path, monkeypatch):
    monkeypatch.setenv(sources.MIRRORS_ENV, server.base)
    cache = tmp_path / "cache"
    kw = dict(system_dir=tmp_path / "nowhere", cache_dir=cache, checksums=_md5s(release))
    source = fashion_mnist_source(**kw)
    assert (source.kind, source.origin, source.path) == ("idx", "download", cache)
    assert _visible(cache) == sorted(release)  # the four files, no .part left
    assert all((cache / name).read_bytes() == data for name, data in release.items())
    assert sorted(name for name, _ in server.requests) == sorted(release)
    paths = prepare_fashion_mnist(tmp_path / "out", 2, 1, source=source)

    server.stop()  # from now on any network access would fail
    again = fashion_mnist_source(**kw)
    assert (again.origin, again.path) == ("cache", cache)
    png = next(paths["train"].rglob("*.png"))
    mtime = png.stat().st_mtime_ns
    prepare_fashion_mnist(tmp_path / "out", 2, 1, source=again)
    assert png.stat().st_mtime_ns == mtime  # the same data: the prepared tree is reused
    assert fashion_mnist_source(**kw, download=False).origin == "cache"  # no network needed at all


def test_corrupted_download_is_rejected_and_not_cached(server, release, tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "FASHION_MNIST_MIRRORS", (server.base,))  # the module constant, no env var
    good = release["train-labels-idx1-ubyte.gz"]
    server.files["train-labels-idx1-ubyte.gz"] = good[:-4] + b"oops"
    cache = tmp_path / "cache"
    kw = dict(system_dir=tmp_path / "nowhere", cache_dir=cache, checksums=_md5s(release))
    with pytest.raises(InputError) as excinfo:
        fashion_mnist_source(**kw)
    text = _one_line(excinfo)
    assert "could not download train-labels-idx1-ubyte.gz" in text
    assert f"expected {_md5s(release)['train-labels-idx1-ubyte.gz']} (checksum mismatch" in text
    assert "train-labels-idx1-ubyte.gz" not in _visible(cache)
    assert not list(cache.glob("*.part"))

    with pytest.raises(ChecksumMismatchError, match=r"sent train-labels-idx1-ubyte\.gz with md5 [0-9a-f]{32}"):
        download_fashion_mnist(cache, checksums=_md5s(release), progress=False)

    server.files["train-labels-idx1-ubyte.gz"] = good  # the mirror is repaired
    server.requests.clear()
    assert fashion_mnist_source(**kw).origin == "download"
    fetched = [name for name, _ in server.requests]
    assert "train-labels-idx1-ubyte.gz" in fetched and "train-images-idx3-ubyte.gz" not in fetched  # kept


def test_interrupted_download_keeps_its_part_and_resumes(server, release, tmp_path):
    name = "train-images-idx3-ubyte.gz"
    server.cut[name] = 700
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError, match=r"the 700 bytes received are kept in .*\.part"):
        download_fashion_mnist(cache, mirrors=[server.base], checksums=_md5s(release), retries=0, progress=False)
    assert not (cache / name).exists()  # a partial file never takes the final name
    assert (cache / f"{name}.part").read_bytes() == release[name][:700]
    download_fashion_mnist(cache, mirrors=[server.base], checksums=_md5s(release), retries=0, progress=False)
    assert (cache / name).read_bytes() == release[name]
    assert (name, "bytes=700-") in server.requests
    assert _visible(cache) == sorted(release)


def test_a_damaged_cached_file_is_fetched_again(server, release, tmp_path):
    cache = tmp_path / "cache"
    kw = dict(system_dir=tmp_path / "nowhere", cache_dir=cache, mirrors=[server.base], checksums=_md5s(release))
    fashion_mnist_source(**kw)
    (cache / "t10k-images-idx3-ubyte.gz").write_bytes(b"bit rot")
    server.requests.clear()
    assert fashion_mnist_source(**kw).origin == "download"
    assert (cache / "t10k-images-idx3-ubyte.gz").read_bytes() == release["t10k-images-idx3-ubyte.gz"]
    assert [name for name, _ in server.requests] == ["t10k-images-idx3-ubyte.gz"]


def test_mirrors_env_must_hold_urls(monkeypatch, tmp_path):
    monkeypatch.setenv(sources.MIRRORS_ENV, "/srv/fashion-mnist")
    with pytest.raises(InputError, match=r"SFRIK_FASHION_MNIST_MIRRORS holds '/srv/fashion-mnist'"):
        fashion_mnist_source(system_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache")


def test_default_cache_follows_the_env_var(monkeypatch, tmp_path):
    monkeypatch.setenv(sources.CACHE_ENV, str(tmp_path / "datasets"))
    assert sources.fashion_mnist_cache_dir() == tmp_path / "datasets" / "fashion-mnist"
    monkeypatch.delenv(sources.CACHE_ENV)
    assert sources.fashion_mnist_cache_dir() == Path.home() / ".cache/sfrik-plugin/datasets/fashion-mnist"


# nothing available ------------------------------------------------------------------------------


def test_nothing_available_says_what_was_tried_and_what_to_do(tmp_path):
    refused = _refused_base()
    with pytest.raises(InputError) as excinfo:
        fashion_mnist_source(system_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache", mirrors=[refused])
    text = _one_line(excinfo)
    assert text.startswith("no Fashion-MNIST data available: no --data folder was given")
    assert f"{tmp_path / 'nowhere'} does not exist (Debian package dataset-fashion-mnist not installed)" in text
    assert f"downloading into {tmp_path / 'cache'} failed" in text and "cannot reach" in text
    assert "sudo apt-get install dataset-fashion-mnist" in text
    assert "--data DIR with the four Fashion-MNIST idx files" in text and "an ImageFolder tree" in text
    assert f"allow network access to {refused}" in text


def test_nothing_available_without_download_makes_no_request(server, tmp_path):
    kw = dict(system_dir=tmp_path / "nowhere", cache_dir=tmp_path / "cache", mirrors=[server.base])
    with pytest.raises(InputError, match="is not filled and downloading is disabled") as excinfo:
        fashion_mnist_source(**kw, download=False, option="data.source")
    assert "pass data.source DIR" in _one_line(excinfo)
    assert server.requests == []


def test_prepare_with_a_missing_data_folder_fails_with_one_line(tmp_path):
    with pytest.raises(InputError, match="nowhere does not exist") as excinfo:
        prepare_fashion_mnist(tmp_path / "out", source=tmp_path / "nowhere")
    _one_line(excinfo)

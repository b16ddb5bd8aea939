"""The project's one checkpoint reader: weights only, --trust-pickle for your own files only,
never for downloads, and a clear error naming the file for anything unreadable."""

import os
import pickle
import warnings

import pytest
import torch

from sfrik_plugin.console import InputError
from sfrik_plugin.files.checkpoints import (
    CACHE_MARKER,
    CheckpointReadError,
    UntrustedCheckpointError,
    download_cache_root,
    is_download,
    load_checkpoint,
    mark_download_cache,
    save_checkpoint,
)

try:
    from tests._zoo_helpers import MarkerPayload
except ImportError:  # tests/ is not a package: pytest put this folder on sys.path
    from _zoo_helpers import MarkerPayload


class Opaque:  # any non-tensor object needs the full unpickler
    def __init__(self):
        self.value = 7


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFRIK_ZOO_CACHE", str(tmp_path / "zoo-cache"))


@pytest.fixture(params=[True, False], ids=["zip", "legacy"])
def malicious(request, tmp_path):
    """(file whose unpickling would create ``marker``, marker) in both torch formats."""
    marker = tmp_path / "PAYLOAD-RAN"
    path = tmp_path / "mine" / "evil.pth"
    path.parent.mkdir()
    torch.save({"w": torch.ones(3), "x": MarkerPayload(marker)}, path, _use_new_zipfile_serialization=request.param)
    return path, marker


def test_the_payload_is_real_when_fully_unpickled(malicious):
    path, marker = malicious
    # what an unrestricted torch.load does: proves the refusals below are meaningful
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_malicious_file_is_refused_and_never_runs(malicious):
    path, marker = malicious
    with pytest.raises(UntrustedCheckpointError) as err:
        load_checkpoint(path)
    message = str(err.value)
    assert str(path) in message and "--trust-pickle" in message and "run code" in message
    assert err.value.path == path and isinstance(err.value, InputError)
    assert not marker.exists()


def test_trust_pickle_loads_your_own_file(tmp_path):
    path = tmp_path / "mine.ckpt"
    torch.save({"state_dict": {"w": torch.ones(2)}, "callbacks": Opaque()}, path)
    with pytest.raises(UntrustedCheckpointError, match="--trust-pickle"):
        load_checkpoint(path)
    obj = load_checkpoint(path, trust_pickle=True)
    assert obj["callbacks"].value == 7 and torch.equal(obj["state_dict"]["w"], torch.ones(2))


def test_downloads_are_refused_even_with_trust_pickle(malicious, tmp_path):
    path, marker = malicious
    with pytest.raises(UntrustedCheckpointError) as err:
        load_checkpoint(path, trust_pickle=True, downloaded=True)
    assert str(path) in str(err.value) and "never applies to downloads" in str(err.value)
    # by location: the default cache, and any folder marked as a download cache (--cache DIR)
    for folder in (tmp_path / "zoo-cache" / "some-model", mark_download_cache(tmp_path / "other") / "m"):
        folder.mkdir(parents=True)
        copy = folder / "evil.pth"
        copy.write_bytes(path.read_bytes())
        assert is_download(copy)
        with pytest.raises(UntrustedCheckpointError, match="never applies to downloads"):
            load_checkpoint(copy, trust_pickle=True)
    assert not marker.exists()


def _links(tmp_path, own):
    """Symbolic links that reach ``own`` (a file outside any cache) through a marked cache, or that
    reach a copy of it inside the cache from outside: {description: link path}."""
    cache = mark_download_cache(tmp_path / "cache")
    (cache / "m").mkdir()
    inside = cache / "m" / "copy.pth"
    inside.write_bytes(own.read_bytes())
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    links = {
        "in the cache, to a file outside": cache / "m" / "out.pth",
        "in the cache, relative, to a file outside": cache / "m" / "rel.pth",
        "a folder in the cache, to a folder outside": cache / "m" / "folder" / own.name,
        "outside, to a file in the cache": outside / "in.pth",
        "outside, to a link in the cache, to a file outside": outside / "chain.pth",
        "a folder outside, to a folder in the cache": outside / "folder" / "copy.pth",
        "a folder outside, to a sub-folder of the cache, then ..": outside / "sub" / ".." / "copy.pth",
    }
    links["in the cache, to a file outside"].symlink_to(own)
    links["in the cache, relative, to a file outside"].symlink_to(os.path.relpath(own, cache / "m"))
    (cache / "m" / "folder").symlink_to(own.parent, target_is_directory=True)
    links["outside, to a file in the cache"].symlink_to(inside)
    links["outside, to a link in the cache, to a file outside"].symlink_to(links["in the cache, to a file outside"])
    (outside / "folder").symlink_to(cache / "m", target_is_directory=True)
    (cache / "m" / "deeper").mkdir()  # outside/sub/.. is cache/m to the kernel, outside/ when read as text
    (outside / "sub").symlink_to(cache / "m" / "deeper", target_is_directory=True)
    return links


def test_the_cache_rule_holds_for_the_path_as_given_and_as_resolved(malicious, tmp_path):
    """Before issue 19 the rule looked at the resolved path only: a link in the cache to a file outside escaped it."""
    path, marker = malicious
    for what, link in _links(tmp_path, path).items():
        assert is_download(link), what
        with pytest.raises(UntrustedCheckpointError, match="never applies to downloads"):
            load_checkpoint(link, trust_pickle=True)
        assert not marker.exists(), what
    # the same rule by the default cache ($SFRIK_ZOO_CACHE), which carries no marker of its own
    default = tmp_path / "zoo-cache" / "some-model"
    default.mkdir(parents=True)
    (default / "out.pth").symlink_to(path)
    with pytest.raises(UntrustedCheckpointError, match="never applies to downloads"):
        load_checkpoint(default / "out.pth", trust_pickle=True)
    assert not marker.exists()


def test_links_that_never_touch_a_cache_keep_trust_pickle(tmp_path):
    path = tmp_path / "mine" / "own.ckpt"
    path.parent.mkdir()
    torch.save({"callbacks": Opaque()}, path)
    link = tmp_path / "link.ckpt"
    link.symlink_to(path)
    mark_download_cache(tmp_path / "cache")  # a cache elsewhere changes nothing
    assert not is_download(link) and load_checkpoint(link, trust_pickle=True)["callbacks"].value == 7


def test_download_cache_root_and_marker(tmp_path):
    root = mark_download_cache(tmp_path / "c")
    assert (root / CACHE_MARKER).is_file()
    assert download_cache_root(root / "m" / "w.pth") == root.resolve()
    assert download_cache_root(tmp_path / "elsewhere" / "w.pth") is None
    assert download_cache_root(tmp_path / "zoo-cache" / "m" / "w.pth") == (tmp_path / "zoo-cache").resolve()


def _good_bytes(zip_format=True):
    import io

    buf = io.BytesIO()
    torch.save({"a": torch.randn(500), "b": [1, 2, torch.zeros(4)]}, buf, _use_new_zipfile_serialization=zip_format)
    return buf.getvalue()


@pytest.mark.parametrize(
    "kind",
    ["truncated zip", "truncated legacy", "empty", "text", "html", "random", "zeroed central directory", "missing"],
)
def test_unreadable_files_name_the_file(kind, tmp_path):
    path = tmp_path / "bad.pth"
    good, legacy = _good_bytes(), _good_bytes(zip_format=False)
    content = {
        "truncated zip": good[: len(good) // 2],
        "truncated legacy": legacy[: len(legacy) - 300],
        "empty": b"",
        "text": b"hello, I am not a checkpoint\n",
        "html": b"<html><body>404 Not Found</body></html>",
        "random": os.urandom(4096),
        "zeroed central directory": good[:-200] + bytes(200),
    }.get(kind)
    if content is not None:
        path.write_bytes(content)
    for trust in (False, True):  # damaged, not "untrusted"; and trust changes nothing for it
        with pytest.raises(CheckpointReadError) as err:
            load_checkpoint(path, trust_pickle=trust, downloaded=not trust)
        assert str(path) in str(err.value) and err.value.path == path
        assert "\n" not in str(err.value)


def test_save_checkpoint_is_atomic_and_round_trips(tmp_path):
    path = save_checkpoint({"w": torch.arange(3)}, tmp_path / "sub" / "w.pt")
    assert torch.equal(load_checkpoint(path)["w"], torch.arange(3))
    assert sorted(p.name for p in path.parent.iterdir()) == ["w.pt"]  # no temporary file left


# ------------------------------------------------------------------ pickles torch does not write (issue 19)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_a_plain_pickle_is_one_clear_error_without_torchs_warning(protocol, tmp_path):
    """Before issue 19, torch printed a two-line UserWarning about the protocol before our refusal."""
    path = tmp_path / "plain.pth"
    with open(path, "wb") as handle:
        pickle.dump({"w": [1.0, 2.0]}, handle, protocol=protocol)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for trust in (False, True):
            with pytest.raises(CheckpointReadError) as err:
                load_checkpoint(path, trust_pickle=trust)
            assert str(err.value) == (
                f"{path} is not a PyTorch checkpoint: it is a plain pickle (protocol {protocol}), not a file written "
                "by torch.save; save the weights with torch.save (a state_dict of tensors)"
            )
    assert [str(w.message) for w in caught] == []


@pytest.mark.parametrize("zip_format", [True, False], ids=["zip", "legacy"])
@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_torch_files_with_any_pickle_protocol_load_or_fail_quietly(protocol, zip_format, tmp_path):
    path = tmp_path / "w.pt"
    torch.save({"w": torch.arange(3)}, path, pickle_protocol=protocol, _use_new_zipfile_serialization=zip_format)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            loaded = load_checkpoint(path)
        except CheckpointReadError as err:  # torch 2.14's weights-only reader has no FRAME (protocol >= 4)
            assert protocol >= 4 and str(path) in str(err) and "plain pickle" not in str(err)
        else:
            assert torch.equal(loaded["w"], torch.arange(3))
    assert [str(w.message) for w in caught] == []

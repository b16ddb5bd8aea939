"""Issue 13: what the zoo refuses and how it recovers, against a real HTTP server on 127.0.0.1.

* a malicious weights file from a download is never unpickled (its payload would create a file);
* a wrong ``--sha256`` for a cached file fails without touching the file or the network;
* a transfer without ``Content-Length`` that is cut never becomes final, and resumes later;
* an unreadable cached file gives one line, exit status 2, and ``--force`` repairs it;
* ``add`` never writes into the packaged manifest; the first copy of a model without a published
  hash is trusted loudly and its size and sha256 recorded in the user manifest.
"""

import hashlib
import json

import pytest
import torch
import torchvision

from sfrik_plugin.files.checkpoints import UntrustedCheckpointError
from sfrik_plugin.zoo import catalog, load_pretrained
from sfrik_plugin.zoo.cli import main
from sfrik_plugin.zoo.download import download as zoo_download
from sfrik_plugin.zoo.errors import (
    ChecksumError,
    CorruptCacheError,
    PinMismatchError,
    TrustOnFirstUseWarning,
    ZooDownloadError,
)
from sfrik_plugin.zoo.manifest import MANIFEST_PATH, ManifestError

try:
    from tests._zoo_helpers import (
        FileServer,
        MarkerPayload,
        entry_dict,
        randomize_,
        split_bytes,
        targz_bytes,
        torch_bytes,
        write_manifest,
    )
except ImportError:  # tests/ is not a package: pytest put this folder on sys.path
    from _zoo_helpers import (
        FileServer,
        MarkerPayload,
        entry_dict,
        randomize_,
        split_bytes,
        targz_bytes,
        torch_bytes,
        write_manifest,
    )

# the test server is plain http on 127.0.0.1: every download opts in to http explicitly
NET = ["--no-progress", "--timeout", "5", "--retries", "0", "--allow-http"]
FAST = dict(progress=False, timeout=5.0, backoff=0.0, allow_http=True)


def sha(b):
    return hashlib.sha256(b).hexdigest()


@pytest.fixture(autouse=True)
def _isolated(tmp_path, monkeypatch):
    monkeypatch.setenv("SFRIK_ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SFRIK_ZOO_OFFLINE", raising=False)
    monkeypatch.delenv("SFRIK_ZOO_MANIFEST", raising=False)


@pytest.fixture(scope="module")
def r18():
    """A random ResNet-18 backbone saved like the official code saves its backbone (no fc)."""
    model = randomize_(torchvision.models.resnet18(weights=None), seed=5)
    return torch_bytes({k: v for k, v in model.state_dict().items() if not k.startswith("fc.")})


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def one_model(tmp_path, srv, path, name="m", **spec):
    """A user manifest with one model served at ``path`` (size and sha256 unknown by default)."""
    f = {"filename": path.lstrip("/"), "url": srv.url(path), "size": None, "sha256": None, **spec}
    return write_manifest(tmp_path / "m.json", [entry_dict(name, [f], architecture="resnet18")])


# ------------------------------------------------------------------ 1. malicious downloads


@pytest.fixture
def evil(tmp_path):
    marker = tmp_path / "PAYLOAD-RAN"
    data = torch_bytes({"conv1.weight": torch.zeros(64, 3, 7, 7), "x": MarkerPayload(marker)})
    with FileServer({"/evil.pth": data}) as srv:
        yield srv, one_model(tmp_path, srv, "/evil.pth", "evil"), marker


@pytest.mark.parametrize("trust", [[], ["--trust-pickle"]], ids=["plain", "trust-pickle"])
def test_convert_refuses_a_malicious_download(evil, trust, capsys, tmp_path):
    srv, manifest, marker = evil
    out = tmp_path / "out.pth"
    code, stdout, err = run(capsys, "--manifest", manifest, "convert", "evil", "--to", "timm", "-o", out, *trust, *NET)
    cached = tmp_path / "cache" / "evil" / "evil.pth"
    assert code == 2 and stdout == ""
    last = err.strip().splitlines()[-1]  # after the trust-on-first-use banner of the first download
    assert last.startswith(f"sfrik-zoo: error: {cached} came from a download") and "never applies to downloads" in last
    assert "Traceback" not in err
    assert not marker.exists() and not out.exists()
    # the cached file, named directly, is still a download
    code, _, err = run(capsys, "convert", cached, "--to", "timm", "-o", out, "--trust-pickle")
    assert code == 2 and "never applies to downloads" in err
    assert not marker.exists() and not out.exists()


def test_load_pretrained_refuses_a_malicious_download(evil):
    _, manifest, marker = evil
    with pytest.warns(TrustOnFirstUseWarning), pytest.raises(UntrustedCheckpointError, match="came from a download"):
        load_pretrained("evil", target="state_dict", manifest=manifest, progress=False, allow_http=True)
    assert not marker.exists()


# ------------------------------------------------------------------ 2. wrong --sha256 for a cached file


def test_wrong_sha256_for_a_cached_file_touches_neither_file_nor_network(r18, capsys, tmp_path):
    with FileServer({"/r18.pth": r18}) as srv:
        manifest = one_model(tmp_path, srv, "/r18.pth", "tiny")
        assert run(capsys, "--manifest", manifest, "download", "tiny", *NET)[0] == 0
        cached = tmp_path / "cache" / "tiny" / "r18.pth"
        before = (cached.read_bytes(), cached.stat().st_mtime_ns)
        wrong = "ab" * 32
        code, out, err = run(capsys, "--manifest", manifest, "download", "tiny", "--sha256", wrong, *NET)
        assert code == 2 and out == ""
        assert f"expected sha256 {wrong}" in err and f"actual sha256 {sha(r18)}" in err and "was kept" in err
        code, _, err = run(
            capsys,
            "--manifest",
            manifest,
            "convert",
            "tiny",
            "--to",
            "timm",
            "-o",
            tmp_path / "o.pth",
            "--sha256",
            wrong,
            *NET,
        )
        assert code == 2 and wrong in err
        with pytest.raises(PinMismatchError, match=wrong):
            load_pretrained(
                "tiny", target="state_dict", manifest=manifest, sha256=wrong, progress=False, allow_http=True
            )
        assert (cached.read_bytes(), cached.stat().st_mtime_ns) == before
        assert len(srv.requests) == 1  # only the first download ever reached the server
        # --force with the wrong hash downloads, fails the check, and still keeps the good copy
        code, _, err = run(capsys, "--manifest", manifest, "download", "tiny", "--sha256", wrong, "--force", *NET)
        assert code == 1 and "checksum mismatch" in err and len(srv.requests) == 2
        assert (cached.read_bytes(), cached.stat().st_mtime_ns) == before


# ------------------------------------------------------------------ 3. no Content-Length, cut transfer


def test_cut_download_without_content_length_stays_part_and_resumes(r18, capsys, tmp_path):
    with FileServer({"/r18.pth": r18}) as srv:
        srv.no_length.add("/r18.pth")
        srv.cut["/r18.pth"] = [1_000_000, 1]  # closes after 1 MB: to HTTP/1.0, a normal end
        manifest = one_model(tmp_path, srv, "/r18.pth", "tiny")
        cached = tmp_path / "cache" / "tiny" / "r18.pth"
        part = cached.with_name("r18.pth.part")
        code, out, err = run(capsys, "--manifest", manifest, "download", "tiny", *NET)
        assert code == 1 and out == ""
        assert "the transfer was cut" in err and "no Content-Length" in err and f"kept in {part}" in err
        assert not cached.exists() and part.read_bytes() == r18[:1_000_000]
        code, out, err = run(capsys, "--manifest", manifest, "download", "tiny", *NET)
        assert code == 0 and out.strip() == str(cached) and cached.read_bytes() == r18 and not part.exists()
        assert srv.requests[-1] == ("/r18.pth", "bytes=1000000-")  # resumed, not restarted
        assert "TRUST ON FIRST USE" in err and sha(r18) in err
        recorded = json.loads(manifest.read_text())["models"][0]["files"][0]
        assert (recorded["size"], recorded["sha256"]) == (len(r18), sha(r18))
        code, _, err = run(
            capsys, "--manifest", manifest, "convert", "tiny", "--to", "timm", "-o", tmp_path / "t.pth", *NET
        )
        assert code == 0 and "WARNING" not in err  # verified against the recorded hash from now on


def test_cut_download_resumes_within_one_call_when_retries_allow(tmp_path):
    data = torch_bytes({"w": torch.randn(100_000)})
    with FileServer({"/w.pth": data}) as srv:
        srv.no_length.add("/w.pth")
        srv.cut["/w.pth"] = [50_000, 1]
        manifest = one_model(tmp_path, srv, "/w.pth")
        with pytest.warns(TrustOnFirstUseWarning):
            path = zoo_download("m", manifest=manifest, retries=1, **FAST)
    assert path.read_bytes() == data and [r for _, r in srv.requests] == [None, "bytes=50000-"]


def test_a_page_that_is_no_checkpoint_is_refused_and_dropped(tmp_path):
    with FileServer({"/w.pth": b"<html>please log in</html>"}) as srv:
        srv.no_length.add("/w.pth")
        manifest = one_model(tmp_path, srv, "/w.pth")
        with pytest.raises(ZooDownloadError, match="did not send a zip file"):
            zoo_download("m", manifest=manifest, retries=0, **FAST)
    assert sorted(p.name for p in (tmp_path / "cache" / "m").iterdir()) == []


def test_multi_part_without_content_length_is_checked_whole(tmp_path):
    whole = targz_bytes({"exp/last_ckp.pth": torch_bytes({"w": torch.randn(60_000)})})
    chunks = dict(zip(("/ckpaa", "/ckpab", "/ckpac"), split_bytes(whole)))
    with FileServer(chunks) as srv:
        srv.no_length.update(chunks)
        srv.cut["/ckpab"] = [20_000, 2]  # a middle part, cut twice
        files = [{"filename": p[1:], "url": srv.url(p), "size": None, "sha256": None} for p in chunks]
        assembled = {"filename": "ckp.tar.gz", "size": None, "sha256": None}
        manifest = write_manifest(
            tmp_path / "m.json",
            [entry_dict("full", files, assembled, kind="full-checkpoint", format="official-full-checkpoint-targz")],
        )
        folder = tmp_path / "cache" / "full"
        with pytest.raises(ZooDownloadError, match="the transfer of a part was cut") as err:
            zoo_download("full", manifest=manifest, retries=0, **FAST)
        assert "ckpab.part" in str(err.value)
        assert sorted(p.name for p in folder.iterdir()) == ["ckpaa.part", "ckpab.part", "ckpac.part"]
        with pytest.warns(TrustOnFirstUseWarning, match=sha(whole)):
            path = zoo_download("full", manifest=manifest, retries=1, **FAST)  # one more cut, then resumed
    assert path.read_bytes() == whole and sorted(p.name for p in folder.iterdir()) == ["ckp.tar.gz"]
    assert [r for p, r in srv.requests if p == "/ckpab"][-1] is not None  # resumed with Range


# ------------------------------------------------------------------ 4. corrupt cache


def test_corrupt_cached_file_is_one_line_exit_2_and_force_repairs_it(r18, capsys, tmp_path):
    with FileServer({"/r18.pth": r18}) as srv:
        manifest = one_model(tmp_path, srv, "/r18.pth", "tiny")
        cached = tmp_path / "cache" / "tiny" / "r18.pth"
        cached.parent.mkdir(parents=True)
        cached.write_bytes(r18[: len(r18) // 2])  # e.g. copied by hand, or left by an older version
        expected = f"cache file {cached} is corrupt: delete it or run `sfrik-zoo download tiny --force`"
        code, out, err = run(
            capsys, "--manifest", manifest, "convert", "tiny", "--to", "timm", "-o", tmp_path / "o.pth", *NET
        )
        assert (code, out, err) == (2, "", f"sfrik-zoo: error: {expected}\n")
        with pytest.raises(CorruptCacheError) as exc:
            load_pretrained("tiny", target="state_dict", manifest=manifest, progress=False, allow_http=True)
        assert str(exc.value) == expected
        assert srv.requests == []
        code, out, _ = run(capsys, "--manifest", manifest, "download", "tiny", "--force", *NET)
        assert code == 0 and cached.read_bytes() == r18 and len(srv.requests) == 1
        assert (
            run(capsys, "--manifest", manifest, "convert", "tiny", "--to", "timm", "-o", tmp_path / "o.pth", *NET)[0]
            == 0
        )


def test_verified_file_that_torch_cannot_read_gives_the_same_message(capsys, tmp_path):
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "a zip archive, but no PyTorch checkpoint")
    data = buf.getvalue()
    with FileServer({"/w.pth": data}) as srv:
        manifest = one_model(tmp_path, srv, "/w.pth", "tiny", size=len(data), sha256=sha(data))
        code, _, err = run(
            capsys, "--manifest", manifest, "convert", "tiny", "--to", "timm", "-o", tmp_path / "o.pth", *NET
        )
    cached = tmp_path / "cache" / "tiny" / "w.pth"
    assert code == 2
    assert (
        err == f"sfrik-zoo: error: cache file {cached} is corrupt: delete it or run `sfrik-zoo download tiny --force`\n"
    )


def test_damaged_extracted_checkpoint_is_reported_and_force_extracts_again(r18, tmp_path):
    whole = targz_bytes({"exp/last_ckp.pth": r18})
    chunks = dict(zip(("/ckpaa", "/ckpab", "/ckpac"), split_bytes(whole)))
    with FileServer(chunks) as srv:
        files = [{"filename": p[1:], "url": srv.url(p), "size": len(c), "sha256": None} for p, c in chunks.items()]
        assembled = {"filename": "ckp.tar.gz", "size": len(whole), "sha256": sha(whole)}
        manifest = write_manifest(
            tmp_path / "m.json",
            [
                entry_dict(
                    "full",
                    files,
                    assembled,
                    architecture="resnet18",
                    kind="full-checkpoint",
                    format="official-full-checkpoint-targz",
                )
            ],
        )
        sd = load_pretrained("full", target="state_dict", manifest=manifest, progress=False, allow_http=True)
        extracted = tmp_path / "cache" / "full" / "ckp_extracted" / "exp" / "last_ckp.pth"
        extracted.write_bytes(b"\0" * 100)
        with pytest.raises(CorruptCacheError, match=r"run `sfrik-zoo download full --force`"):
            load_pretrained("full", target="state_dict", manifest=manifest, progress=False, allow_http=True)
        zoo_download("full", manifest=manifest, force=True, **FAST)
        again = load_pretrained("full", target="state_dict", manifest=manifest, progress=False, allow_http=True)
    assert all(torch.equal(sd[k], again[k]) for k in sd)


# ------------------------------------------------------------------ 5. user manifest, trust on first use


def test_add_writes_the_user_manifest_never_the_packaged_one(r18, capsys, tmp_path):
    packaged = MANIFEST_PATH.read_bytes()
    local = tmp_path / "mine.pth"
    local.write_bytes(r18)
    with FileServer({"/mine.pth": r18}) as srv:
        args = [
            "--file",
            local,
            "--url",
            srv.url("/mine.pth"),
            "--dataset",
            "cifar100",
            "--epochs",
            "3",
            "--license",
            "MIT",
            "--allow-http",
        ]
        code, out, _ = run(capsys, "add", "my-r18", *args)
        user = tmp_path / "cache" / "manifest.json"
        assert code == 0 and f"added my-r18 to {user}" in out
        assert MANIFEST_PATH.read_bytes() == packaged
        assert [m["name"] for m in json.loads(user.read_text())["models"]] == ["my-r18"]
        assert (tmp_path / "cache" / "cards" / "my-r18.md").is_file()
        code, out, _ = run(capsys, "list")
        assert code == 0 and "my-r18" in out and "sfrik-r50-in1k-200ep-q32768" in out
        code, out, err = run(capsys, "download", "my-r18", *NET)
        assert code == 0 and "WARNING" not in err  # add recorded size and sha256
        # the packaged manifest, even named explicitly, and packaged names are refused
        code, _, err = run(capsys, "add", "other", *args, "--manifest", MANIFEST_PATH)
        assert code == 2 and "shipped inside the package" in err
        code, _, err = run(capsys, "add", "sfrik-r50-in1k-200ep-q32768", *args)
        assert code == 2 and "is a packaged model" in err
    assert MANIFEST_PATH.read_bytes() == packaged


@pytest.fixture
def packaged(tmp_path, monkeypatch):
    """A stand-in for the packaged manifest whose model is served locally, with no size or sha256."""
    data = torch_bytes({"w": torch.randn(5_000)})
    with FileServer({"/rel.pth": data}) as srv:
        path = write_manifest(
            tmp_path / "packaged.json",
            [
                entry_dict(
                    "official", [{"filename": "rel.pth", "url": srv.url("/rel.pth"), "size": None, "sha256": None}]
                )
            ],
        )
        monkeypatch.setattr(catalog, "MANIFEST_PATH", path)
        yield srv, path, data


def test_first_copy_of_a_packaged_model_is_recorded_then_enforced(packaged, capsys, tmp_path):
    srv, path, data = packaged
    before = path.read_bytes()
    with pytest.warns(TrustOnFirstUseWarning, match=f"TRUST ON FIRST USE for official.*{sha(data)}"):
        cached = zoo_download("official", **FAST)
    user = tmp_path / "cache" / "manifest.json"
    record = json.loads(user.read_text())["models"]
    assert record[0]["name"] == "official" and "trust on first use" in record[0]["recorded"]
    assert record[0]["files"] == [{"filename": "rel.pth", "size": len(data), "sha256": sha(data)}]
    assert path.read_bytes() == before
    spec = catalog.get_entry("official").files[0]
    assert (spec.size, spec.sha256, spec.recorded_in) == (len(data), sha(data), user)
    code, out, _ = run(capsys, "info", "official")
    assert f"{sha(data)} (recorded on first use in {user})" in out
    # the release changes (or is tampered with): the recorded hash catches it, the old copy stays
    srv.files["/rel.pth"] = torch_bytes({"w": torch.zeros(5_000)})
    cached.write_bytes(data[:-1])
    with pytest.raises(ChecksumError, match=f"expected sha256 {sha(data)}.*recorded in {user}"):
        zoo_download("official", **FAST)


def test_user_entries_may_only_record_hashes_for_packaged_names(packaged, capsys, tmp_path):
    _, _, data = packaged
    user = tmp_path / "cache" / "manifest.json"
    user.parent.mkdir(parents=True)
    write_manifest(user, [{"name": "official", "files": [{"filename": "rel.pth", "size": 1}], "license": "MIT"}])
    code, _, err = run(capsys, "list")
    assert code == 2 and "may only record the size and sha256" in err and "license" in err
    write_manifest(user, [{"name": "official", "files": [{"filename": "other.pth", "size": 1}]}])
    with pytest.raises(ManifestError, match="has no file 'other.pth'"):
        catalog.get_entry("official")


# ------------------------------------------------------------------ 6. strict manifests (issue 19)


def _file(**over):
    return {"filename": "w.pth", "url": "https://h/w.pth", "size": None, "sha256": None, **over}


def _multi(assembled, **entry):
    files = [_file(filename="w.aa"), _file(filename="w.ab")]
    return entry_dict("x", files, assembled, kind="full-checkpoint", format="official-full-checkpoint-targz", **entry)


def _without(d, key):
    return {k: v for k, v in d.items() if k != key}


@pytest.mark.parametrize(
    "model, expected",
    [
        (
            entry_dict("x", [_file(sha265="ab" * 32)]),
            "model 'x'.files[0]: unknown key `sha265`; did you mean `sha256`?",
        ),
        (entry_dict("x", [_without(_file(urll="https://h/w.pth"), "url")]), "unknown key `urll`; did you mean `url`?"),
        (entry_dict("x", [_file()], licence="MIT"), "model 'x': unknown key `licence`; did you mean `license`?"),
        (
            _multi({"filename": "w.tar.gz", "size": None, "sha265": None}),
            "model 'x'.assembled: unknown key `sha265`; did you mean `sha256`?",
        ),
        (
            entry_dict("x", [_file()], metrics=[{"name": "top-1", "valeu": 1.0, "source": "me"}]),
            "model 'x'.metrics[0]: unknown key `valeu`; did you mean `value`?",
        ),
        (entry_dict("x", [_file(zzz=1)]), "unknown key `zzz`; known keys: filename, url, size, sha256"),
    ],
    ids=["sha265", "urll", "licence", "assembled-sha265", "metric-valeu", "no-close-key"],
)
def test_unknown_manifest_keys_name_the_key_the_entry_and_the_closest_known_key(model, expected, capsys, tmp_path):
    manifest = write_manifest(tmp_path / "m.json", [model])
    with pytest.raises(ManifestError) as err:
        catalog.load_catalog(manifest)
    assert str(err.value).startswith(f"user manifest {manifest}: ") and expected in str(err.value)
    code, out, err_text = run(capsys, "--manifest", manifest, "download", "x", *NET)
    assert (code, out) == (2, "") and err_text.count("\n") == 1 and expected in err_text
    assert not (tmp_path / "cache" / "x").exists()  # refused before any download


def test_unknown_keys_at_the_top_and_in_records_of_packaged_models(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"schema_version": 1, "modles": []}))
    with pytest.raises(ManifestError, match=r"unknown key `modles`; did you mean `models`\?"):
        catalog.load_catalog(path)
    official = "sfrik-r50-in1k-200ep-q32768"
    filename = catalog.get_entry(official).files[0].filename
    write_manifest(path, [{"name": official, "files": [{"filename": filename, "sha265": "ab" * 32}]}])
    with pytest.raises(ManifestError, match=r"file '.*': unknown key `sha265`; did you mean `sha256`\?"):
        catalog.load_catalog(path)
    write_manifest(path, [{"name": official, "file": [{"filename": filename, "sha256": "ab" * 32}]}])
    with pytest.raises(ManifestError, match=r"also sets file \(did you mean `files`\?\)"):
        catalog.load_catalog(path)


BAD_NAMES = ["", ".", "..", "/tmp/w.pth", "sub/w.pth", "sub\\w.pth", "C:w.pth", "w\npth", "w.pth.part"]


@pytest.mark.parametrize("bad", BAD_NAMES)
def test_file_names_that_are_not_plain_are_refused(bad, tmp_path):
    for model, where in (
        (entry_dict("x", [_file(filename=bad)]), "model 'x'.files[0].filename"),
        (_multi({"filename": bad, "size": None, "sha256": None}), "model 'x'.assembled.filename"),
    ):
        with pytest.raises(ManifestError) as err:
            catalog.load_catalog(write_manifest(tmp_path / "m.json", [model]))
        assert f"{where}: {bad!r} " in str(err.value) and "\n" not in str(err.value)


def test_dot_dot_as_assembled_file_is_one_line_and_leaves_nothing(capsys, tmp_path):
    """Before issue 19, `..` passed validation and the download ended in an OSError traceback, leaving a .part."""
    chunks = {"/w.aa": b"a" * 100, "/w.ab": b"b" * 100}
    with FileServer(chunks) as srv:
        files = [{"filename": p[1:], "url": srv.url(p), "size": 100, "sha256": None} for p in chunks]
        manifest = write_manifest(
            tmp_path / "m.json",
            [
                entry_dict(
                    "x",
                    files,
                    {"filename": "..", "size": None, "sha256": None},
                    kind="full-checkpoint",
                    format="official-full-checkpoint-targz",
                )
            ],
        )
        code, out, err = run(capsys, "--manifest", manifest, "download", "x", *NET)
    assert (code, out) == (2, "") and "Traceback" not in err
    assert (
        err == f"sfrik-zoo: error: user manifest {manifest}: model 'x'.assembled.filename: '..' must be a plain "
        "file name (not empty, '.' or '..', no folder, drive or path separator)\n"
    )
    assert (
        srv.requests == [] and not (tmp_path / "cache" / "x").exists() and not (tmp_path / "cache" / "..part").exists()
    )


def test_add_refuses_a_bad_assembled_file_name(capsys, tmp_path):
    parts = []
    for i in range(2):
        parts.append(tmp_path / f"p{i}")
        parts[-1].write_bytes(bytes([i]) * 10)
    argv = ["add", "mine", "--file", parts[0], "--file", parts[1], "--url", "https://h/p0", "--url", "https://h/p1"]
    argv += ["--architecture", "resnet18", "--dataset", "d", "--epochs", "1", "--license", "MIT"]
    code, out, err = run(capsys, *argv, "--assembled-filename", "..")
    assert (code, out) == (2, "") and "assembled.filename: '..' must be a plain file name" in err
    assert err.count("\n") == 1 and not (tmp_path / "cache" / "manifest.json").exists()
    assert run(capsys, *argv, "--assembled-filename", "whole.tar.gz")[0] == 0


def test_the_packaged_manifest_is_strictly_valid_and_all_https():
    for entry in catalog.load_manifest(MANIFEST_PATH).values():
        assert all(f.url.startswith("https://") for f in entry.files)


def test_a_link_in_the_cache_to_a_file_outside_is_still_a_download(capsys, tmp_path):
    """Issue 19: --trust-pickle looked at the resolved path only, so such a link escaped the cache rule."""
    marker = tmp_path / "PAYLOAD-RAN"
    own = tmp_path / "outside" / "evil.pth"
    own.parent.mkdir()
    own.write_bytes(torch_bytes({"conv1.weight": torch.zeros(64, 3, 7, 7), "x": MarkerPayload(marker)}))
    folder = tmp_path / "cache" / "some-model"
    folder.mkdir(parents=True)
    (folder / "w.pth").symlink_to(own)
    code, out, err = run(
        capsys, "convert", folder / "w.pth", "--to", "timm", "-o", tmp_path / "o.pth", "--trust-pickle"
    )
    assert (code, out) == (2, "") and err.count("\n") == 1 and "never applies to downloads" in err
    assert not marker.exists() and not (tmp_path / "o.pth").exists()
    own.write_bytes(b"\0" * 100)  # and an unreadable one names the model whose cache holds the link
    code, _, err = run(capsys, "convert", folder / "w.pth", "--to", "timm", "-o", tmp_path / "o.pth")
    assert code == 2 and "`sfrik-zoo download some-model --force`" in err

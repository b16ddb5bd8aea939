"""The ``sfrik-zoo`` command line, run in-process through ``main(argv)`` against a local server."""

import hashlib
import json
import pickle
import subprocess
import sys

import pytest
import torch
import torchvision

from sfrik_plugin.zoo.cli import main

try:
    from tests._subprocesses import checkout_env
    from tests._zoo_helpers import FileServer, entry_dict, randomize_, refused_url, write_manifest
except ImportError:  # tests/ is not a package: pytest put this folder on sys.path
    from _subprocesses import checkout_env
    from _zoo_helpers import FileServer, entry_dict, randomize_, refused_url, write_manifest

# the test server is plain http on 127.0.0.1: every download opts in to http explicitly
NET = ["--no-progress", "--timeout", "5", "--retries", "1", "--allow-http"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SFRIK_ZOO_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("SFRIK_ZOO_OFFLINE", raising=False)
    monkeypatch.delenv("SFRIK_ZOO_MANIFEST", raising=False)


@pytest.fixture(scope="module")
def r18_bytes(tmp_path_factory):
    """A random ResNet-18 backbone saved like the official code saves its backbone (no fc)."""
    model = randomize_(torchvision.models.resnet18(weights=None), seed=11)
    sd = {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    p = tmp_path_factory.mktemp("r18") / "b.pth"
    torch.save(sd, p)
    return p.read_bytes()


@pytest.fixture
def served(r18_bytes, tmp_path):
    with FileServer({"/r18.pth": r18_bytes}) as srv:
        manifest = write_manifest(
            tmp_path / "m.json",
            [
                entry_dict(
                    "tiny-r18",
                    [{"filename": "r18.pth", "url": srv.url("/r18.pth"), "size": None, "sha256": None}],
                    architecture="resnet18",
                    card="zoo/cards/tiny-r18.md",
                )
            ],
        )
        yield srv, manifest


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_and_info_of_the_packaged_manifest(capsys):
    code, out, _ = run(capsys, "list")
    assert code == 0
    assert "sfrik-r50-in1k-200ep-q32768 " in out and "70.3" in out and "32768" in out
    code, out, _ = run(capsys, "info", "sfrik-r50-in1k-200ep-q32768-full")
    assert code == 0
    assert out.count("/releases/download/v0.1.0/sfrik_32k_in1000_200ep_r50_last_ckpa") == 3
    assert "sfrik_32k_in1000_200ep_r50_last_ckp.tar.gz" in out and "UNKNOWN (not verifiable)" in out
    assert "not downloaded" in out
    code, out, _ = run(capsys, "info", "sfrik-r50-in1k-200ep-q32768", "--json")
    assert json.loads(out)["q"] == 32768


def test_unknown_name_lists_known_models(capsys):
    code, _, err = run(capsys, "info", "nope")
    assert code == 2
    assert "unknown model 'nope'; known models: sfrik-r50-in1k-200ep-q32768, sfrik-r50-in1k-200ep-q32768-full" in err


def test_unknown_target_lists_the_choices(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["convert", "x.pth", "--to", "keras", "-o", "y"])
    assert exc.value.code == 2
    assert "invalid choice: 'keras' (choose from" in capsys.readouterr().err


def test_download_trusts_first_copy_loudly_then_verifies_quietly(served, r18_bytes, capsys, tmp_path):
    srv, manifest = served
    digest = hashlib.sha256(r18_bytes).hexdigest()
    code, out, err = run(capsys, "--manifest", manifest, "download", "tiny-r18", *NET)
    assert code == 0
    path = tmp_path / "cache" / "tiny-r18" / "r18.pth"
    assert out.strip() == str(path) and path.read_bytes() == r18_bytes
    assert "WARNING: TRUST ON FIRST USE for tiny-r18" in err and digest in err and str(manifest) in err
    recorded = json.loads(manifest.read_text())["models"][0]["files"][0]
    assert (recorded["size"], recorded["sha256"]) == (len(r18_bytes), digest)
    # cached, recorded, and pinned or not: verified, quiet, and no request made
    for pin in ([], ["--sha256", digest]):
        code, out, err = run(capsys, "--manifest", manifest, "download", "tiny-r18", *pin, *NET)
        assert code == 0 and "WARNING" not in err and len(srv.requests) == 1


def test_a_pinned_first_download_is_recorded_without_a_banner(served, r18_bytes, capsys, tmp_path):
    _, manifest = served
    digest = hashlib.sha256(r18_bytes).hexdigest()
    code, _, err = run(capsys, "--manifest", manifest, "download", "tiny-r18", "--sha256", digest, *NET)
    assert code == 0 and "WARNING" not in err
    assert json.loads(manifest.read_text())["models"][0]["files"][0]["sha256"] == digest


def test_download_with_wrong_pin_fails_cleanly(served, capsys, tmp_path):
    _, manifest = served
    code, out, err = run(capsys, "--manifest", manifest, "download", "tiny-r18", "--sha256", "e" * 64, *NET)
    assert code == 1 and out == ""
    assert "download failed: checksum mismatch" in err
    assert not (tmp_path / "cache" / "tiny-r18" / "r18.pth").exists()


def test_download_from_unreachable_host(tmp_path, capsys):
    manifest = write_manifest(
        tmp_path / "m.json",
        [entry_dict("gone", [{"filename": "g.pth", "url": refused_url("/g.pth"), "size": None, "sha256": None}])],
    )
    code, _, err = run(capsys, "--manifest", manifest, "download", "gone", *NET)
    assert code == 1 and "download failed: cannot reach http://127.0.0.1:" in err


def test_convert_a_zoo_name_to_timm(served, r18_bytes, capsys, tmp_path):
    timm = pytest.importorskip("timm")
    _, manifest = served
    out_file = tmp_path / "r18_timm.pth"
    code, out, err = run(capsys, "--manifest", manifest, "convert", "tiny-r18", "--to", "timm", "-o", out_file, *NET)
    assert code == 0 and out.strip() == str(out_file)
    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    model.load_state_dict(torch.load(out_file, weights_only=True), strict=True)


def test_convert_solo_and_back_then_add_to_a_manifest(served, r18_bytes, capsys, tmp_path):
    srv, manifest = served
    src = tmp_path / "official.pth"
    src.write_bytes(r18_bytes)
    code, out, _ = run(
        capsys,
        "convert",
        src,
        "--to",
        "solo",
        "-o",
        tmp_path / "solo",
        "--name",
        "mine",
        "--epochs",
        "7",
        "--set",
        "data.num_classes=100",
        "--set",
        "method_kwargs.proj_output_dim=256",
    )
    assert code == 0
    ckpt = tmp_path / "solo" / "mine-ep=7.ckpt"
    assert out.strip() == str(ckpt)
    args = json.loads((tmp_path / "solo" / "args.json").read_text())
    assert args["data"]["num_classes"] == 100 and args["method_kwargs"]["proj_output_dim"] == 256

    back = tmp_path / "back.pth"
    assert run(capsys, "convert", ckpt, "--to", "official", "-o", back)[0] == 0
    a, b = torch.load(src, weights_only=True), torch.load(back, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # a solo checkpoint is not publishable as is: the error says how to convert it
    code, _, err = run(
        capsys,
        "--manifest",
        manifest,
        "add",
        "bad",
        "--file",
        ckpt,
        "--url",
        "https://h/x",
        "--dataset",
        "d",
        "--epochs",
        "1",
        "--license",
        "MIT",
        "--cards-dir",
        tmp_path / "cards",
    )
    assert code == 2 and "--to official" in err

    srv.files["/back.pth"] = back.read_bytes()
    code, out, _ = run(
        capsys,
        "--manifest",
        manifest,
        "add",
        "my-r18",
        "--file",
        back,
        "--url",
        srv.url("/back.pth"),
        "--allow-http",
        "--dataset",
        "cifar100",
        "--epochs",
        "7",
        "--license",
        "CC-BY-4.0",
        "--q",
        "256",
        "--L",
        "3",
        "--kernel-weights",
        "1,40,40",
        "--metric",
        "cifar100 linear top-1 (%)=12.5@test run",
        "--cards-dir",
        tmp_path / "cards",
    )
    assert code == 0
    entry = json.loads(manifest.read_text())["models"][-1]
    digest = hashlib.sha256(back.read_bytes()).hexdigest()
    assert entry["name"] == "my-r18" and entry["architecture"] == "resnet18"
    assert entry["files"][0]["sha256"] == digest and entry["files"][0]["size"] == back.stat().st_size
    assert entry["metrics"] == [{"name": "cifar100 linear top-1 (%)", "value": 12.5, "source": "test run"}]
    card = (tmp_path / "cards" / "my-r18.md").read_text()
    assert digest in card and "cifar100" in card

    # the new entry is downloadable and verified (no warning), and listed
    code, out, err = run(capsys, "--manifest", manifest, "download", "my-r18", *NET)
    assert code == 0 and "WARNING" not in err
    assert "my-r18" in run(capsys, "--manifest", manifest, "list")[1]
    # adding the same name twice needs --replace
    code, _, err = run(
        capsys,
        "--manifest",
        manifest,
        "add",
        "my-r18",
        "--file",
        back,
        "--url",
        "https://h/x",
        "--dataset",
        "d",
        "--epochs",
        "1",
        "--license",
        "MIT",
        "--cards-dir",
        tmp_path / "cards",
    )
    assert code == 2 and "--replace" in err


def test_convert_missing_source_is_explained(capsys, tmp_path):
    code, _, err = run(capsys, "convert", tmp_path / "nothing.pth", "--to", "timm", "-o", tmp_path / "o.pth")
    assert code == 2 and "is neither an existing file nor a zoo model" in err


# ----------------------------------------------------------------------------- Python API


def test_load_pretrained_hands_over_torchvision_and_state_dict(served, r18_bytes, tmp_path):
    from sfrik_plugin.zoo import UnverifiedDownloadWarning, load_pretrained
    from sfrik_plugin.zoo.convert import ConversionError

    _, manifest = served
    src = torchvision.models.resnet18(weights=None)
    src.fc = torch.nn.Identity()
    src.load_state_dict(_load_bytes(r18_bytes))
    x = torch.randn(2, 3, 32, 32)
    with pytest.warns(UnverifiedDownloadWarning):
        model = load_pretrained("tiny-r18", target="torchvision", manifest=manifest, progress=False, allow_http=True)
    with torch.no_grad():
        assert torch.allclose(model(x), src.eval()(x), rtol=1e-4, atol=1e-5)
    digest = hashlib.sha256(r18_bytes).hexdigest()
    sd = load_pretrained(
        "tiny-r18", target="state_dict", manifest=manifest, sha256=digest, progress=False, allow_http=True
    )
    assert "fc.weight" not in sd and len(sd) == len(_load_bytes(r18_bytes))
    with pytest.raises(ConversionError, match="unknown target 'keras'; allowed: timm, torchvision, state_dict"):
        load_pretrained("tiny-r18", target="keras", manifest=manifest)


def _load_bytes(b):
    import io

    return torch.load(io.BytesIO(b), weights_only=True)


def test_load_pretrained_from_a_multi_part_full_checkpoint(r18_bytes, tmp_path):
    """Official full checkpoint: tar.gz split in three parts, DDP keys (module.backbone.*)."""
    import io
    import tarfile

    from sfrik_plugin.zoo import load_pretrained

    backbone = _load_bytes(r18_bytes)
    state = {
        "epoch": 200,
        "model": {
            **{f"module.backbone.{k}": v for k, v in backbone.items()},
            "module.projector.0.weight": torch.zeros(8, 512),
        },
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.1, "params": [0]}]},
    }
    buf = io.BytesIO()
    torch.save(state, buf)
    tar_buf = io.BytesIO()
    with tarfile.open(fileobj=tar_buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("exp/last_ckp.pth")
        info.size = len(buf.getvalue())
        tar.addfile(info, io.BytesIO(buf.getvalue()))
    whole = tar_buf.getvalue()
    cut1, cut2 = len(whole) // 3, 2 * len(whole) // 3
    chunks = {"/ckpaa": whole[:cut1], "/ckpab": whole[cut1:cut2], "/ckpac": whole[cut2:]}
    with FileServer(chunks) as srv:
        manifest = write_manifest(
            tmp_path / "m.json",
            [
                entry_dict(
                    "full",
                    [{"filename": p[1:], "url": srv.url(p), "size": len(c), "sha256": None} for p, c in chunks.items()],
                    {"filename": "ckp.tar.gz", "size": len(whole), "sha256": hashlib.sha256(whole).hexdigest()},
                    architecture="resnet18",
                    kind="full-checkpoint",
                    format="official-full-checkpoint-targz",
                )
            ],
        )
        sd = load_pretrained("full", target="state_dict", manifest=manifest, progress=False, allow_http=True)
    assert sd.keys() == backbone.keys() and all(torch.equal(sd[k], backbone[k]) for k in sd)


def test_archive_with_an_escaping_member_is_refused(tmp_path):
    import io
    import tarfile

    from sfrik_plugin.zoo import extract_archive

    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(Exception, match="escaped.txt"):
        extract_archive(archive, tmp_path / "out" / "x")
    assert not (tmp_path / "out" / "escaped.txt").exists() and not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path / "out" / "x").exists() and not (tmp_path / "out" / "x.tmp").exists()


# ----------------------------------------------------------------------------- which URLs (issue 19)


def test_plain_http_needs_allow_http_and_says_so_in_one_line(served, r18_bytes, capsys, tmp_path):
    srv, manifest = served
    strict = [a for a in NET if a != "--allow-http"]
    url = srv.url("/r18.pth")
    for command in (["download", "tiny-r18"], ["convert", "tiny-r18", "--to", "timm", "-o", tmp_path / "t.pth"]):
        code, out, err = run(capsys, "--manifest", manifest, *command, *strict)
        assert (code, out) == (2, "")
        assert err == (
            f"sfrik-zoo: error: refused {url}: it is plain http, which anyone on the network path can alter, and "
            "plain http was not allowed; nothing was downloaded; if you trust the network path (e.g. your own "
            "mirror), pass --allow-http (Python: allow_http=True)\n"
        )
    assert srv.requests == [] and not (tmp_path / "cache" / "tiny-r18").exists()
    assert run(capsys, "--manifest", manifest, "download", "tiny-r18", *NET)[0] == 0


def test_a_redirect_to_ftp_is_one_line_naming_the_target(served, capsys, tmp_path):
    srv, manifest = served
    srv.redirects["/r18.pth"] = (302, "ftp://127.0.0.1:1/r18.pth")
    code, out, err = run(capsys, "--manifest", manifest, "download", "tiny-r18", *NET)
    assert (code, out) == (2, "") and err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(
        f"sfrik-zoo: error: refused the redirect from {srv.url('/r18.pth')} to ftp://127.0.0.1:1/r18.pth: "
    )
    assert "cannot reach" not in err and sorted((tmp_path / "cache" / "tiny-r18").iterdir()) == []


def test_add_refuses_a_plain_http_url_without_allow_http(r18_bytes, capsys, tmp_path):
    local = tmp_path / "b.pth"
    local.write_bytes(r18_bytes)
    argv = ["add", "mine", "--file", local, "--dataset", "d", "--epochs", "1", "--license", "MIT"]
    code, out, err = run(capsys, *argv, "--url", "http://host/b.pth")
    assert (code, out) == (2, "") and err.count("\n") == 1
    assert "--url http://host/b.pth: plain http" in err and "--allow-http" in err
    code, _, err = run(capsys, *argv, "--url", "ftp://host/b.pth", "--allow-http")
    assert code == 2 and "must be an https:// URL" in err
    assert not (tmp_path / "cache" / "manifest.json").exists()
    assert run(capsys, *argv, "--url", "http://host/b.pth", "--allow-http")[0] == 0


def test_convert_of_a_plain_pickle_prints_exactly_the_one_line_refusal(tmp_path):
    """Issue 19: the refusal came after two lines of torch's UserWarning about the pickle protocol.
    A real process, so that what reaches the terminal is what is checked."""
    path = tmp_path / "p4.pth"
    with open(path, "wb") as handle:
        pickle.dump({"conv1.weight": [0.0] * 4}, handle, protocol=4)
    argv = [sys.executable, "-m", "sfrik_plugin.zoo.cli", "convert", str(path), "--to", "timm", "-o", "o.pth"]
    r = subprocess.run(argv, capture_output=True, text=True, env=checkout_env(), cwd=tmp_path, timeout=300)
    assert (r.returncode, r.stdout) == (2, "")
    assert r.stderr == (
        f"sfrik-zoo: error: {path} is not a PyTorch checkpoint: it is a plain pickle (protocol 4), not a file "
        "written by torch.save; save the weights with torch.save (a state_dict of tensors)\n"
    )

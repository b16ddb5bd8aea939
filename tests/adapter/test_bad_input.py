"""Bad input ends a launcher with one line on standard error and exit status 2, never a traceback,
before anything is trained or written; and no weights file can run code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
from _images import make_image_folder
from _tiny_runs import tiny_linear_args, tiny_pretrain_args

pytestmark = pytest.mark.requires_solo


def _pretrain(cli, tiny_overrides, data, tmp_path, extra=()):
    return cli(
        "pretrain",
        [
            *tiny_overrides,
            *tiny_pretrain_args(data, tmp_path, "custom/sfrik"),
            *extra,
        ],
        cwd=tmp_path,
        check=False,
    )


def _one_line_error(proc, *fragments: str) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if ": error: " in line]
    assert len(errors) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]
    return errors[0]


def test_missing_and_empty_data_folders(cli, tiny_overrides, tiny_data, tmp_path):
    missing = _pretrain(cli, tiny_overrides, {**tiny_data, "train": tmp_path / "nope"}, tmp_path)
    _one_line_error(missing, "sfrik-pretrain: error:", "data.train_path", str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    empty = _pretrain(cli, tiny_overrides, {**tiny_data, "train": tmp_path / "empty"}, tmp_path)
    _one_line_error(empty, "data.train_path", "empty")
    assert not (tmp_path / "ckpt").exists()


def test_a_folder_with_one_class(cli, tiny_overrides, tiny_data, tmp_path):
    one = make_image_folder(tmp_path / "one", classes=1, per_class=6)
    proc = _pretrain(cli, tiny_overrides, {**tiny_data, "val": one}, tmp_path)
    _one_line_error(proc, "data.val_path", "at least 2 classes")


def test_an_image_that_does_not_decode_is_named(cli, tiny_overrides, tiny_data, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(tiny_data["train"], broken)
    bad = sorted((broken / "class_2").iterdir())[0]
    bad.write_bytes(b"\\x89PNG\\r\\n\\x1a\\n not really a png")
    for workers in ("0", "1"):  # in the main process and across a DataLoader worker
        proc = _pretrain(cli, tiny_overrides, {**tiny_data, "train": broken}, tmp_path, [f"data.num_workers={workers}"])
        _one_line_error(proc, str(bad))


def test_a_q_that_cannot_fit_says_how_much_it_needs(cli, tiny_overrides, tiny_data, tmp_path):
    proc = cli(
        "pretrain",
        [
            *[o for o in tiny_overrides if not o.startswith("method_kwargs.")],
            "--config-name",
            "custom/vicreg",
            f"data.train_path={tiny_data['train']}",
            f"data.val_path={tiny_data['val']}",
            "method_kwargs.proj_hidden_dim=32",
            "method_kwargs.proj_output_dim=262144",
            f"checkpoint.dir={tmp_path / 'ckpt'}",
            "auto_resume.enabled=False",
        ],
        cwd=tmp_path,
        check=False,
    )
    line = _one_line_error(proc, "proj_output_dim=262144", "cannot fit", "GiB", "method=sfrik")
    assert "available" in line


def test_unknown_method_kwargs_are_named(cli, tiny_overrides, tiny_data, tmp_path):
    proc = _pretrain(cli, tiny_overrides, tiny_data, tmp_path, ["++method_kwargs.sim_coef=1"])
    _one_line_error(proc, "unknown method_kwargs key(s) for method 'sfrik': sim_coef")
    assert not (tmp_path / "ckpt").exists()


def _linear(cli, tiny_data, tmp_path, weights: Path, extra=()):
    return cli(
        "linear",
        [
            *tiny_linear_args(tiny_data, tmp_path, weights),
            *extra,
        ],
        cwd=tmp_path,
        check=False,
    )


def test_a_file_that_is_not_a_checkpoint(cli, tiny_data, tmp_path):
    notes = tmp_path / "notes.ckpt"
    notes.write_text("these are not weights")
    _one_line_error(_linear(cli, tiny_data, tmp_path, notes), str(notes), "not a readable PyTorch checkpoint")


class _Payload:
    """Unpickling this creates a marker file: the proof that a weights file ran code."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (Path(self.marker).touch, ())


def _malicious_checkpoint(path: Path, marker: Path) -> Path:
    import torch

    torch.save({"state_dict": {"backbone.conv1.weight": torch.zeros(1)}, "payload": _Payload(str(marker))}, path)
    path.write_bytes(path.read_bytes())  # plain file on disk, nothing else
    return path


def test_a_malicious_checkpoint_is_refused_by_linear_and_knn_and_never_runs(cli, tiny_data, tmp_path):
    marker = tmp_path / "PWNED"
    weights = _malicious_checkpoint(tmp_path / "model.ckpt", marker)
    _one_line_error(_linear(cli, tiny_data, tmp_path, weights), str(weights), "--trust-pickle")
    run = tmp_path / "run"
    run.mkdir()
    (run / "args.json").write_text('{"method": "sfrik"}')
    _malicious_checkpoint(run / "m-ep=0.ckpt", marker)
    knn = cli(
        "knn",
        ["--config-name", "knn", f"pretrained_checkpoint_dir={run}", "device=cpu"],
        cwd=tmp_path,
        check=False,
    )
    assert knn.returncode == 2 and "Traceback" not in knn.stderr, knn.stderr
    assert not marker.exists()
    # pickle itself would have run it: the test's payload is real
    pickle.loads(pickle.dumps(_Payload(str(marker))))
    assert marker.exists()


def test_a_downloaded_file_is_refused_even_with_trust_pickle(cli, tiny_data, tmp_path, monkeypatch):
    cache = tmp_path / "zoo-cache"
    cache.mkdir()
    monkeypatch.setenv("SFRIK_ZOO_CACHE", str(cache))
    marker = tmp_path / "PWNED"
    weights = _malicious_checkpoint(cache / "downloaded.pth", marker)
    proc = _linear(cli, tiny_data, tmp_path, weights, ["--trust-pickle"])
    _one_line_error(proc, str(weights), "never applies to downloads")
    assert not marker.exists()


def test_a_malicious_resume_checkpoint_is_refused_before_lightning_reads_it(cli, tiny_overrides, tiny_data, tmp_path):
    marker = tmp_path / "PWNED"
    weights = _malicious_checkpoint(tmp_path / "resume.ckpt", marker)
    proc = _pretrain(cli, tiny_overrides, tiny_data, tmp_path, [f"resume_from_checkpoint={weights}"])
    _one_line_error(proc, str(weights), "--trust-pickle")
    assert not marker.exists()

"""The set-up of `make demo` / `make test` (scripts/setup.sh) fails early with one clear line when it
cannot work: no usable Python, a Python older than 3.10, a solo-learn wheel that is not the one
its SHA256SUMS names. (Its success path is what `make test` and CI run every time.)"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

SETUP = Path(__file__).resolve().parents[1] / "scripts" / "setup.sh"


def _run(tmp_path, **env):
    full = {**os.environ, "SKIP_DEMO_DATA": "1", **env}
    # a venv path that must never be created by these failing runs
    return subprocess.run(
        ["bash", str(SETUP), str(tmp_path / "venv")], env=full, capture_output=True, text=True, timeout=60
    )


def _fake_python(tmp_path, version: str) -> Path:
    fake = tmp_path / "python-old"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'if [ "$1" = "--version" ]; then echo "Python {version}"; exit 0; fi\n'
        "exit 1\n"  # the version check (-c ...) says: too old
    )
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    return fake


def test_no_python(tmp_path):
    proc = _run(tmp_path, PYTHON=str(tmp_path / "no-such-python"))
    assert proc.returncode != 0
    assert f"no '{tmp_path / 'no-such-python'}' on PATH: install Python >= 3.10" in proc.stderr
    assert not (tmp_path / "venv").exists()


def test_python_too_old(tmp_path):
    proc = _run(tmp_path, PYTHON=str(_fake_python(tmp_path, "3.9.18")))
    assert proc.returncode != 0
    assert "Python 3.9.18 is too old: sfrik-plugin needs Python >= 3.10" in proc.stderr
    assert not (tmp_path / "venv").exists()


@pytest.mark.parametrize("sums", [None, "0" * 64 + "  solo_learn-1.0.6-py3-none-any.whl\n", "other file\n"])
def test_a_wheel_that_does_not_match_its_checksums(tmp_path, sums):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "solo_learn-1.0.6-py3-none-any.whl").write_bytes(b"not the real wheel")
    if sums is not None:
        (wheels / "SHA256SUMS").write_text(sums)
    proc = _run(tmp_path, SOLO_WHEEL_DIR=str(wheels))
    assert proc.returncode != 0
    if sums is None:
        expected = "but no SHA256SUMS to check it against"
    elif sums.startswith("0"):
        expected = "checksum mismatch"
    else:
        expected = "SHA256SUMS has no line for"
    assert expected in proc.stderr, proc.stderr
    assert not (tmp_path / "venv").exists()

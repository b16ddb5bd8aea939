"""The one checkpoint reader of the project, and its trust policy.

Every tool that reads weights (launchers, zoo, benchmark, :func:`sfrik_plugin.zoo.load_pretrained`)
goes through :func:`load_checkpoint`:

* files are always read with ``torch.load(weights_only=True)``: tensors, numbers, strings and plain
  containers only, so a crafted pickle cannot run code;
* a file that needs full unpickling is refused with :class:`UntrustedCheckpointError`, which names
  the file and the one opt-in, ``trust_pickle=True`` (CLI ``--trust-pickle``), meant for files
  you made yourself;
* that opt-in never applies to a download: files under the model-zoo cache (or loaded with
  ``downloaded=True``) are refused even with it;
* a file that is not a readable checkpoint (truncated, corrupt, not PyTorch at all) raises
  :class:`CheckpointReadError` naming it, instead of torch's internal error.

:func:`save_checkpoint` is the matching writer: atomic (temporary file, then ``os.replace``), so a
crash while saving never leaves a half-written file under the final name.

Example:
    >>> import tempfile, pathlib, torch
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "w.pt"
    >>> _ = save_checkpoint({"w": torch.ones(2)}, path)
    >>> load_checkpoint(path)["w"]
    tensor([1., 1.])
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "DOWNLOAD_CACHE_ENV",
    "DEFAULT_DOWNLOAD_CACHE",
    "download_cache_dir",
    "is_download",
    "CheckpointError",
    "UntrustedCheckpointError",
    "CheckpointReadError",
    "load_checkpoint",
    "save_checkpoint",
]

#: where downloaded weights live (the model zoo's cache): files there never get ``trust_pickle``
DOWNLOAD_CACHE_ENV = "SFRIK_ZOO_CACHE"
DEFAULT_DOWNLOAD_CACHE = Path("~/.cache/sfrik-plugin/zoo")

# what torch's weights-only unpickler says when a file holds something it will not build
_UNTRUSTED_MARKERS = ("Weights only load failed", "Unsupported global", "Unsupported operand")


def download_cache_dir() -> Path:
    """The model-zoo download cache: ``$SFRIK_ZOO_CACHE`` or ``~/.cache/sfrik-plugin/zoo``."""
    return Path(os.environ.get(DOWNLOAD_CACHE_ENV) or DEFAULT_DOWNLOAD_CACHE).expanduser().resolve()


def is_download(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies inside the download cache (resolving symbolic links)."""
    try:
        Path(path).expanduser().resolve().relative_to(download_cache_dir())
    except ValueError:
        return False
    return True


class CheckpointError(ValueError):
    """A checkpoint file cannot be used; the message names the file and what to do."""

    def __init__(self, message: str, path: str | os.PathLike):
        super().__init__(message)
        self.path = Path(path)


class UntrustedCheckpointError(CheckpointError):
    """The file holds objects that only full unpickling (which can run code) would build."""


class CheckpointReadError(CheckpointError):
    """The file is missing, truncated, corrupt or not a PyTorch checkpoint."""


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def load_checkpoint(
    path: str | os.PathLike,
    *,
    trust_pickle: bool = False,
    downloaded: bool | None = None,
    map_location: Any = "cpu",
) -> Any:
    """Reads a PyTorch checkpoint with the project's trust policy (module docstring).

    Args:
        path: the file (``.pt``, ``.pth``, ``.ckpt``).
        trust_pickle: allow full unpickling for a file you made yourself; refused for downloads.
        downloaded: whether the file came from a download; ``None`` decides by its location
            (inside :func:`download_cache_dir` or not).
        map_location: passed to ``torch.load``.

    Raises:
        UntrustedCheckpointError: the file needs full unpickling and that is not allowed.
        CheckpointReadError: the file does not exist or is not a readable checkpoint.
    """
    path = Path(path)
    if downloaded is None:
        downloaded = is_download(path)
    if not path.is_file():
        raise CheckpointReadError(f"checkpoint {path} does not exist (or is not a file)", path)
    if path.stat().st_size == 0:
        raise CheckpointReadError(f"checkpoint {path} is empty (0 bytes): not a checkpoint", path)
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _first_line(error)
        if not any(marker in str(error) for marker in _UNTRUSTED_MARKERS):
            raise CheckpointReadError(f"{path} is not a readable PyTorch checkpoint ({detail})", path) from None
        if downloaded:
            raise UntrustedCheckpointError(
                f"{path} came from a download and holds objects that only full unpickling would build "
                f"(unpickling can run code). It is refused, and --trust-pickle does not apply to downloads. "
                f"Detail: {detail}",
                path,
            ) from None
        if not trust_pickle:
            raise UntrustedCheckpointError(
                f"{path} holds objects other than tensors and plain containers, which only full unpickling "
                f"would build (unpickling can run code). If you made this file yourself, pass --trust-pickle "
                f"(Python: trust_pickle=True). Detail: {detail}",
                path,
            ) from None
    except (RuntimeError, EOFError, OSError, ValueError, KeyError, IndexError) as error:
        raise CheckpointReadError(f"{path} is not a readable PyTorch checkpoint ({_first_line(error)})", path) from None
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (RuntimeError, EOFError, OSError, pickle.UnpicklingError) as error:
        raise CheckpointReadError(f"{path} is not a readable PyTorch checkpoint ({_first_line(error)})", path) from None


def save_checkpoint(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` atomically: a crash mid-write leaves only a hidden ``.tmp`` file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "wb") as handle:
            torch.save(obj, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path

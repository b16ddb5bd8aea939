"""The one checkpoint reader of the project, and its trust policy.

Every tool that reads weights (launchers, zoo, benchmark, :func:`sfrik_plugin.zoo.load_pretrained`)
goes through :func:`load_checkpoint`:

* files are always read with ``torch.load(weights_only=True)``: tensors, numbers, strings and plain
  containers only, so a crafted pickle cannot run code;
* a file that needs full unpickling is refused with :class:`UntrustedCheckpointError`, which names
  the file and the one opt-in, ``trust_pickle=True`` (CLI ``--trust-pickle``), meant for files
  you made yourself;
* that opt-in never applies to a download: files under the model-zoo cache, under any folder the
  zoo marked as a download cache (a ``.sfrik-zoo-cache`` file, see :func:`mark_download_cache`), or
  loaded with ``downloaded=True`` are refused even with it. "Under" holds for the path as given
  *and* as resolved: a symbolic link in a cache pointing out of it, or one pointing into a cache
  from outside, is still a download (:func:`cache_location`);
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

import io
import os
import pickle
import pickletools
import re
import struct
import sys
import warnings
from pathlib import Path
from typing import Any

import torch

from ..console import InputError
from .atomic import atomic_write

__all__ = [
    "DOWNLOAD_CACHE_ENV",
    "DEFAULT_DOWNLOAD_CACHE",
    "download_cache_dir",
    "is_download",
    "CACHE_MARKER",
    "mark_download_cache",
    "cache_location",
    "download_cache_root",
    "CheckpointError",
    "UntrustedCheckpointError",
    "CheckpointReadError",
    "load_checkpoint",
    "save_checkpoint",
]

#: where downloaded weights live (the model zoo's cache): files there never get ``trust_pickle``
DOWNLOAD_CACHE_ENV = "SFRIK_ZOO_CACHE"
DEFAULT_DOWNLOAD_CACHE = Path("~/.cache/sfrik-plugin/zoo")

#: a file of this name marks a folder as a download cache (the zoo writes it into every cache it
#: fills, also ``--cache DIR``): every file below it counts as a download
CACHE_MARKER = ".sfrik-zoo-cache"

#: the first object of every legacy (pre-zip) file torch.save writes
_TORCH_MAGIC_NUMBER = getattr(torch.serialization, "MAGIC_NUMBER", 0x1950A86A20F9469CFC6C)

# What torch's weights-only unpickler says when a well-formed file holds objects it will not build.
# torch prefixes *every* unpickling error with "Weights only load failed" (garbage bytes included,
# which give "Unsupported operand"), so only these reasons mean "needs full unpickling".
_UNTRUSTED_MARKERS = (
    "Unsupported global",
    "is blocked",
    "Can only create new object",
    "Can only build",
    "Trying to call reduce for unrecognized function",
    "must be imported to load",
)


def download_cache_dir() -> Path:
    """The model-zoo download cache: ``$SFRIK_ZOO_CACHE`` or ``~/.cache/sfrik-plugin/zoo``."""
    return Path(os.environ.get(DOWNLOAD_CACHE_ENV) or DEFAULT_DOWNLOAD_CACHE).expanduser().resolve()


def mark_download_cache(folder: str | os.PathLike) -> Path:
    """Marks ``folder`` (created if needed) as a download cache: files below it never get ``trust_pickle``.

    Example:
        >>> import tempfile, pathlib
        >>> root = mark_download_cache(pathlib.Path(tempfile.mkdtemp()) / "cache")
        >>> is_download(root / "model" / "w.pth")
        True
    """
    folder = Path(folder).expanduser()
    folder.mkdir(parents=True, exist_ok=True)
    marker = folder / CACHE_MARKER
    if not marker.exists():
        marker.write_text("Files below this folder were downloaded by sfrik-zoo.\n", encoding="utf-8")
    return folder


def _places(path: str | os.PathLike) -> list[Path]:
    """Every path by which ``path`` reaches its file: as given (absolute, links kept), with its folder
    resolved, each symbolic link it goes through, and fully resolved."""
    raw = Path(path).expanduser().absolute()  # ".." kept: after a link it means the link target's parent
    places = [Path(os.path.normpath(raw))]  # as a person reads it
    hop = raw
    for _ in range(40):  # a longer chain of links is a loop
        try:
            hop = hop.parent.resolve() / hop.name
            places.append(hop)
            if not hop.is_symlink():
                break
            hop = Path(os.path.abspath(hop.parent / os.readlink(hop)))
        except (OSError, RuntimeError):  # unreadable, or a loop: the places found so far still count
            break
        places.append(hop)
    try:
        places.append(raw.resolve())
    except (OSError, RuntimeError):
        pass
    return list(dict.fromkeys(places))


def cache_location(path: str | os.PathLike) -> tuple[Path, Path] | None:
    """``(cache folder, path through it)`` for the first way ``path`` lies inside a download cache, else ``None``.

    The rule holds for the path *as given and as resolved*: a symbolic link inside a cache that
    points out of it, and one outside that points into it, both count as inside (and so does a
    chain of links passing through a cache).

    Example:
        >>> cache_location("/") is None
        True
    """
    default = download_cache_dir()
    configured = Path(os.path.abspath(Path(os.environ.get(DOWNLOAD_CACHE_ENV) or DEFAULT_DOWNLOAD_CACHE).expanduser()))
    for place in _places(path):
        for root in dict.fromkeys((default, configured)):
            if place == root or root in place.parents:
                return root, place
        for folder in place.parents:
            if (folder / CACHE_MARKER).is_file():
                return folder, place
    return None


def download_cache_root(path: str | os.PathLike) -> Path | None:
    """The download cache that holds ``path`` (the default one, or a marked folder), else ``None``;
    see :func:`cache_location` for what "holds" means with symbolic links.

    Example:
        >>> download_cache_root("/") is None
        True
    """
    found = cache_location(path)
    if found is None:
        return None
    try:
        return found[0].resolve()
    except (OSError, RuntimeError):
        return found[0]


def is_download(path: str | os.PathLike) -> bool:
    """Whether ``path`` lies inside a download cache, as given or as resolved (:func:`cache_location`).

    Example:
        >>> is_download(download_cache_dir() / "some-model" / "w.pth")
        True
    """
    return cache_location(path) is not None


class CheckpointError(InputError):
    """A checkpoint file cannot be used; the message names the file and what to do."""

    def __init__(self, message: str, path: str | os.PathLike):
        super().__init__(message)
        self.path = Path(path)


class UntrustedCheckpointError(CheckpointError):
    """The file holds objects that only full unpickling (which can run code) would build."""


class CheckpointReadError(CheckpointError):
    """The file is missing, truncated, corrupt or not a PyTorch checkpoint."""


def _plain_pickle_protocol(path: Path) -> int | None:
    """The protocol of a file that is a pickle but not one torch.save wrote, else ``None``.

    A legacy (pre-zip) PyTorch file is a pickle too, but its first object is torch's magic number;
    anything else that starts with a pickle protocol mark is a plain ``pickle.dump``, which
    ``torch.load`` cannot read. The opcodes are only parsed (``pickletools``), never executed.
    """
    with open(path, "rb") as handle:
        head = handle.read(64)
    if len(head) < 2 or head[0] != pickle.PROTO[0]:
        return None  # a zip archive (torch >= 1.6), an old protocol, or no pickle at all: torch decides
    try:
        for opcode, argument, _ in pickletools.genops(io.BytesIO(head)):
            if opcode.name in ("PROTO", "FRAME", "MEMOIZE"):
                continue
            return None if (opcode.name == "LONG1" and argument == _TORCH_MAGIC_NUMBER) else head[1]
    except ValueError:  # cut inside the first opcodes, or not a pickle after all: torch decides
        return None
    return None


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


# what torch.load raises on a truncated, corrupt or foreign file (a text file gives a KeyError)
_READ_ERRORS = (
    RuntimeError,
    EOFError,
    OSError,
    ValueError,
    KeyError,
    IndexError,
    TypeError,
    AttributeError,
    AssertionError,
    struct.error,
)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {_first_line(error)}"


def _names_a_missing_global(error: BaseException) -> bool:
    """Whether the refused global is a name that does not exist below a module already imported.

    A legacy (pre-zip) checkpoint cut in the middle of a name ends with e.g.
    ``torch._utils._rebuild_tens``: that is a damaged file, not one holding foreign objects. The
    name is only looked up in modules already in ``sys.modules``; nothing it names is imported
    here (importing can run code).
    """
    match = re.search(r"GLOBAL (\S*?)(?: was not an allowed| whose module)", " ".join(str(error).split()))
    if not match:
        return False
    parts = match.group(1).split(".")
    if "" in parts:
        return True  # "torch._u." or "": cut inside the name
    for cut in range(len(parts) - 1, 0, -1):
        node: Any = sys.modules.get(".".join(parts[:cut]))
        if node is None:
            continue
        for attribute in parts[cut:]:
            if not hasattr(node, attribute):
                return True
            node = getattr(node, attribute)
        return False
    return False  # nothing of it is imported here: cannot tell, so treat it as foreign objects


def _reason(error: BaseException) -> str:
    """The weights-only unpickler's own reason, without torch's multi-line advice around it."""
    text = " ".join(str(error).split())
    for marker in ("WeightsUnpickler error:", "Trying to load unsupported", "Unsupported operand"):
        start = text.find(marker)
        if start >= 0:
            reason = text[start:].removeprefix("WeightsUnpickler error:").strip()
            return reason.split(" Check the documentation")[0].split(" Please use `torch")[0][:300]
    return _first_line(error)


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
    protocol = _plain_pickle_protocol(path)
    if protocol is not None:  # torch cannot read it at all: say so without handing it over
        raise CheckpointReadError(
            f"{path} is not a PyTorch checkpoint: it is a plain pickle (protocol {protocol}), not a file written by "
            f"torch.save; save the weights with torch.save (a state_dict of tensors)",
            path,
        )
    try:
        with warnings.catch_warnings():
            # torch's weights-only reader warns about any pickle protocol but 2, including files torch.save
            # wrote with pickle_protocol=3..5; it then either loads them or fails, which we report in one line
            warnings.filterwarnings(
                "ignore",
                message=r"Detected pickle protocol \d+ in the checkpoint",
                category=UserWarning,
                module=r"torch\.",  # reported from torch.serialization or torch._weights_only_unpickler
            )
            return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as error:
        detail = _reason(error)
        if not any(marker in str(error) for marker in _UNTRUSTED_MARKERS) or _names_a_missing_global(error):
            raise CheckpointReadError(f"{path} is not a readable PyTorch checkpoint ({detail})", path) from None
        if downloaded:
            raise UntrustedCheckpointError(
                f"{path} came from a download and holds objects that only full unpickling would build "
                f"(unpickling can run code from the file), so it was not loaded; --trust-pickle never applies "
                f"to downloads. Published weights need nothing but tensors: report the file to its publisher "
                f"(detail: {detail})",
                path,
            ) from None
        if not trust_pickle:
            raise UntrustedCheckpointError(
                f"{path} holds objects other than tensors and plain containers, which only full unpickling "
                f"would build (unpickling can run code from the file), so it was not loaded. If you made this "
                f"file yourself, pass --trust-pickle (Python: trust_pickle=True) (detail: {detail})",
                path,
            ) from None
    except _READ_ERRORS as error:
        raise CheckpointReadError(f"{path} is not a readable PyTorch checkpoint ({_describe(error)})", path) from None
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (*_READ_ERRORS, pickle.UnpicklingError, ImportError) as error:
        raise CheckpointReadError(f"{path} is not a readable PyTorch checkpoint ({_describe(error)})", path) from None


def save_checkpoint(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save(obj, path)`` atomically: a crash mid-write leaves only a hidden ``.tmp`` file."""
    with atomic_write(path, "wb") as handle:
        torch.save(obj, handle)
    return Path(path)

"""The IDX file format (MNIST, Fashion-MNIST): read a whole file, or only its header to check it.

An IDX file is a 4-byte magic number ``00 00 <type> <ndim>``, ``ndim`` big-endian uint32 sizes,
then the elements, big-endian, in C order. Files may be gzip-compressed (``.gz``). Every problem
is reported as an :class:`~sfrik_plugin.console.InputError` naming the file, because these files
come from the user (``--data``), a system package or a download.

Example:
    >>> import gzip, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "labels-idx1-ubyte.gz"
    >>> with gzip.open(path, "wb") as f:
    ...     _ = f.write(bytes([0, 0, 0x08, 1, 0, 0, 0, 3, 7, 8, 9]))
    >>> read_idx_header(path)
    ((3,), dtype('uint8'))
    >>> read_idx(path).tolist()
    [7, 8, 9]
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from pathlib import Path

import numpy as np

from ..console import InputError

__all__ = ["read_idx", "read_idx_header"]

# IDX type codes -> numpy big-endian dtypes
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}

# what a damaged gzip stream or a short file raises while reading
_READ_ERRORS = (OSError, EOFError, zlib.error, gzip.BadGzipFile)


def _open(path: Path) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _header(f: io.BufferedIOBase, path: Path) -> tuple[tuple[int, ...], np.dtype]:
    magic = f.read(4)
    if len(magic) != 4 or magic[0] != 0 or magic[1] != 0:
        raise InputError(f"{path} is not an IDX file (bad magic number {magic!r}); replace it with the original file")
    type_code, ndim = magic[2], magic[3]
    if type_code not in _IDX_DTYPES:
        raise InputError(f"{path}: unknown IDX element type 0x{type_code:02x}; replace it with the original file")
    sizes = f.read(4 * ndim)
    if len(sizes) != 4 * ndim:
        raise InputError(f"{path} ends inside its IDX header; the file is truncated, replace it with the original")
    return tuple(struct.unpack(f">{ndim}I", sizes)), np.dtype(_IDX_DTYPES[type_code])


def read_idx_header(path: str | Path) -> tuple[tuple[int, ...], np.dtype]:
    """``(shape, dtype)`` declared by an IDX file (optionally ``.gz``), reading only its header.

    Example:
        >>> read_idx_header("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
        ((10000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    try:
        with _open(path) as f:
            return _header(f, path)
    except _READ_ERRORS as exc:
        raise InputError(f"cannot read {path} ({exc}); replace it with the original file") from exc


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (optionally ``.gz``) into a numpy array of its declared shape (native byte order).

    Example:
        >>> images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")  # doctest: +SKIP
        >>> images.shape, images.dtype  # doctest: +SKIP
        ((10000, 28, 28), dtype('uint8'))
    """
    path = Path(path)
    try:
        with _open(path) as f:
            shape, dtype = _header(f, path)
            data = f.read()
    except _READ_ERRORS as exc:
        raise InputError(f"cannot read {path} ({exc}); replace it with the original file") from exc
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) != expected:
        raise InputError(
            f"{path}: expected {expected} bytes of data for shape {shape}, got {len(data)}; "
            "the file is damaged, replace it with the original"
        )
    return np.frombuffer(data, dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))

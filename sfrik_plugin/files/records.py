"""JSON and CSV records: the one writer every tool uses (profiler, benchmark, zoo).

Writes are atomic (a temporary file in the same folder, then ``os.replace``), so a reader — or a
run resumed after a crash — never sees half a file. Non-finite floats become ``null`` / ``"inf"``
and paths, dtypes and devices their string form, so results stay strict JSON.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> _ = write_json(folder / "r.json", {"acc": 71.5, "nan": float("nan")})
    >>> read_json(folder / "r.json")
    {'acc': 71.5, 'nan': None}
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .atomic import atomic_write

__all__ = ["jsonable", "write_text_atomic", "write_json", "read_json", "write_csv", "read_csv"]


def jsonable(value: Any) -> Any:
    """``value`` with non-finite floats, tuples, paths and other objects turned into JSON data."""
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        return jsonable(value.item())  # 0-d tensors and numpy scalars
    return str(value)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Writes ``text`` to ``path`` through a temporary file and ``os.replace`` (parents created)."""
    with atomic_write(path, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Writes ``data`` as indented, strict JSON (keys sorted), atomically; returns the path."""
    return write_text_atomic(path, json.dumps(jsonable(data), indent=2, sort_keys=True, allow_nan=False) + "\n")


def read_json(path: str | os.PathLike) -> Any | None:
    """The JSON in ``path``, or ``None`` when the file is missing or not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None


def write_csv(path: str | os.PathLike, rows: Iterable[Mapping[str, Any]], fields: Sequence[str] | None = None) -> Path:
    """Writes ``rows`` (dicts) as CSV, atomically. Columns: ``fields``, else every key in first-seen
    order over all rows; missing and ``None`` values are empty cells, lists are space-separated."""
    rows = list(rows)
    if fields is None:
        fields = []
        for row in rows:
            fields += [k for k in row if k not in fields]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in fields})
    return write_text_atomic(path, buffer.getvalue())


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        return " ".join(str(v) for v in value)
    return value


def read_csv(path: str | os.PathLike) -> list[dict[str, str]]:
    """The rows of a CSV file as dicts of strings (empty list when the file is missing)."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))
    except FileNotFoundError:
        return []

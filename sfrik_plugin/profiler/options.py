"""The command-line options of the profiling scripts: grids of sizes, dtypes, run control.

Example:
    >>> parse_int_list(["1k:4k", "2^13", "32768"])
    [1024, 2048, 4096, 8192, 32768]
    >>> parse_dtype("bf16")
    torch.bfloat16
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterable
from pathlib import Path

import torch

__all__ = ["parse_int_list", "parse_dtype", "add_run_control_arguments"]

_SUFFIXES = {"": 1, "k": 1024, "m": 1024**2}


def _parse_one_int(token: str) -> int:
    text = token.strip().lower()
    match = re.fullmatch(r"(\d+)\s*\^\s*(\d+)", text)
    if match:
        return int(match.group(1)) ** int(match.group(2))
    match = re.fullmatch(r"(\d+)([km]?)", text)
    if not match:
        raise ValueError(f"not an integer: {token!r} (examples: 256, 8k, 2^15)")
    return int(match.group(1)) * _SUFFIXES[match.group(2)]


def parse_int_list(values: str | int | Iterable[str | int], minimum: int = 1, name: str = "value") -> list[int]:
    """Sorted, de-duplicated integers from command-line tokens.

    Each token is an integer (``256``), a power (``2^15``), a k/m multiple (``8k`` = 8192), a
    comma-separated list of those, or a doubling range ``a:b`` (``1024:8192`` = 1024, 2048, 4096,
    8192; ``a:b:f`` multiplies by f instead of 2).

    Example:
        >>> parse_int_list(["1k:4k", "2^13", "32768"])
        [1024, 2048, 4096, 8192, 32768]
    """
    if isinstance(values, (str, int)):
        values = [values]
    result: set[int] = set()
    for value in values:
        for token in str(value).split(","):
            token = token.strip()
            if not token:
                continue
            if ":" in token:
                parts = token.split(":")
                if len(parts) not in (2, 3):
                    raise ValueError(f"bad range {token!r}: use start:stop or start:stop:factor")
                start, stop = _parse_one_int(parts[0]), _parse_one_int(parts[1])
                factor = _parse_one_int(parts[2]) if len(parts) == 3 else 2
                if factor < 2 or start < 1 or stop < start:
                    raise ValueError(f"bad range {token!r}: need 1 <= start <= stop and factor >= 2")
                current = start
                while current <= stop:
                    result.add(current)
                    current *= factor
            else:
                result.add(_parse_one_int(token))
    if not result:
        raise ValueError(f"no {name} given")
    small = sorted(v for v in result if v < minimum)
    if small:
        raise ValueError(f"every {name} must be >= {minimum}, got {small}")
    return sorted(result)


_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "float": torch.float32,
    "float64": torch.float64,
    "fp64": torch.float64,
    "double": torch.float64,
    "float16": torch.float16,
    "fp16": torch.float16,
    "half": torch.float16,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
}


def parse_dtype(name: str | torch.dtype) -> torch.dtype:
    """``"fp32"``/``"float32"``/``"bf16"``/... -> ``torch.dtype``.

    Example:
        >>> parse_dtype("bf16")
        torch.bfloat16
    """
    if isinstance(name, torch.dtype):
        return name
    key = str(name).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(f"unknown dtype {name!r}; choose from {sorted(set(_DTYPES))}")
    return _DTYPES[key]


def add_run_control_arguments(
    parser: argparse.ArgumentParser, *, out: str, config_seconds: float, max_repeats: int, unit: str = "calls"
) -> None:
    """The options both profiling scripts share: device, repeats and time budget, memory budget,
    threads, worker timeout, output folder (defaults differ per script, hence the arguments).

    Example:
        >>> parser = argparse.ArgumentParser()
        >>> add_run_control_arguments(parser, out="bench-results/x", config_seconds=10, max_repeats=25)
        >>> parser.parse_args(["--threads", "1"]).max_repeats
        25
    """
    parser.add_argument("--device", default=None, help="cpu or cuda[:i] (default: cuda if available)")
    parser.add_argument("--warmup", type=int, default=1, help=f"warm-up {unit} per configuration")
    parser.add_argument("--min-repeats", type=int, default=2, help=f"measured {unit} even when one is slow")
    parser.add_argument("--max-repeats", type=int, default=max_repeats, help=f"measured {unit} when they are cheap")
    parser.add_argument(
        "--config-seconds",
        type=float,
        default=config_seconds,
        help=f"measured {unit} per configuration: as many as fit in this time, within [min, max]",
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="run the grid this many times, order rotated, samples pooled"
    )
    parser.add_argument(
        "--memory-budget",
        default=None,
        help="e.g. 12GiB (default: min(0.5 x MemAvailable, 8 GiB) on CPU, 0.9 x free on GPU)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads per worker; default 1 on CPU (every contender alike, and stable on a shared "
        "machine, where 2-thread runs of small ops stall on descheduled threads), torch's own on GPU; "
        "0 = torch's default",
    )
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a worker is killed")
    parser.add_argument("--out", type=Path, default=Path(out))

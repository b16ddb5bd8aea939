"""Profiling SFRIK against VICReg and Barlow Twins: the reusable logic behind ``scripts/profile_*.py``.

What the paper claims, and what these tools measure on your hardware: SFRIK's regulariser costs
O(N² q) time and O(N²) memory (one N × N Gram matrix per view), solo-learn's VICReg and Barlow
Twins losses O(N q²) time and O(q²) memory (q × q covariance / cross-correlation matrices). So for
wide embeddings (q ≫ N) SFRIK is much cheaper, and q = 32768 becomes affordable.

This module holds everything that is not the measuring itself, so that it can be tested:

* grid parsing (:func:`parse_int_list`, :func:`parse_dtype`);
* memory prediction per contender from N, q, dtype (:func:`predict_loss_peak_bytes`,
  :func:`predict_train_bytes`) and the budget it is compared with (:func:`memory_budget`), so a
  configuration that would not fit is reported instead of swapping the machine to death;
* the fit of ``time ∝ q^slope`` by least squares on log–log axes (:func:`fit_power_law`);
* running each configuration in a fresh child process (:func:`run_isolated`), whose crash,
  kill or time-out becomes a reported row instead of the end of the run;
* the workers themselves (:func:`loss_worker`, :func:`train_worker`);
* writers: CSV, JSON, markdown tables and PNG plots.

Torch only at import time: solo-learn, Lightning and matplotlib are imported inside the functions
that need them.
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import os
import re
import signal
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .benchmarking import (
    machine_info,
    memory_available_bytes,
    peak_memory_bytes,
    process_memory_bytes,
    reset_peak_rss,
    summarize,
    time_call,
)

__all__ = [
    "LOSS_CONTENDERS",
    "TRAIN_METHODS",
    "GIB",
    "MIB",
    "parse_int_list",
    "parse_dtype",
    "parse_bytes",
    "format_bytes",
    "memory_budget",
    "predict_loss_peak_bytes",
    "predict_loss_total_bytes",
    "predict_train_bytes",
    "fit_verdict",
    "fit_power_law",
    "extrapolate_seconds",
    "describe_exit",
    "run_isolated",
    "isolation_context",
    "loss_worker",
    "train_worker",
    "loss_summary",
    "train_summary",
    "write_csv",
    "write_json",
    "markdown_table",
    "plot_loss",
    "plot_train",
]

MIB = 2**20
GIB = 2**30


# ----------------------------------------------------------------------------------------------
# contenders


@dataclass(frozen=True)
class LossContender:
    """One loss implementation to profile.

    ``q_exponent`` / ``n_exponent``: how its time grows with q and N (the complexity claim);
    ``label``: what tables and plots call it.
    """

    name: str
    label: str
    q_exponent: float
    needs_solo: bool
    description: str


#: The loss-level contenders: SFRIK by each exact computation path, and solo-learn's baselines.
LOSS_CONTENDERS: dict[str, LossContender] = {
    c.name: c
    for c in (
        LossContender("sfrik-gram", "SFRIK (gram)", 1.0, False, "sfrik_loss_func(method='gram'), L=3, b=(1,40,40)"),
        LossContender(
            "sfrik-blocked", "SFRIK (blocked)", 1.0, False, "sfrik_loss_func(method='blocked'), L=3, b=(1,40,40)"
        ),
        LossContender(
            "sfrik-feature",
            "SFRIK L=2 (feature)",
            2.0,
            False,
            "sfrik_loss_func(method='feature'), L=2, b=(1,40): the O(Nq²) feature-space path",
        ),
        LossContender("vicreg", "VICReg (solo-learn)", 2.0, True, "solo.losses.vicreg.vicreg_loss_func, 25/25/1"),
        LossContender("barlow", "Barlow Twins (solo-learn)", 2.0, True, "solo.losses.barlow.barlow_loss_func"),
    )
}

#: Methods of the training-step profile: our solo-learn method name -> (solo method, config file).
TRAIN_METHODS: dict[str, tuple[str, str]] = {
    "sfrik": ("sfrik", "sfrik"),
    "vicreg": ("vicreg", "vicreg"),
    "barlow": ("barlow_twins", "barlow"),
}


# ----------------------------------------------------------------------------------------------
# parsing


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


def parse_int_list(values: str | Iterable[str | int], minimum: int = 1, name: str = "value") -> list[int]:
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


def parse_bytes(text: str | int | float) -> int:
    """``"8GiB"``, ``"512M"``, ``"1.5g"``, ``"1000000"`` -> bytes (binary units: k = 1024).

    Example:
        >>> parse_bytes("1.5GiB") == 3 * 2**29
        True
    """
    if isinstance(text, (int, float)):
        return int(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
    if not match:
        raise ValueError(f"not a memory size: {text!r} (examples: 8GiB, 512M, 1.5g)")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[match.group(2)]
    return int(float(match.group(1)) * scale)


def format_bytes(value: float | None) -> str:
    """Human-readable size: ``format_bytes(3 * 2**30) == '3.0 GiB'``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{int(value)} B"


# ----------------------------------------------------------------------------------------------
# memory: budget and prediction

#: Default CPU budget: half of what the OS says is available, at most this much (shared machines).
DEFAULT_CPU_BUDGET_CAP = 8 * GIB
DEFAULT_CPU_BUDGET_FRACTION = 0.5
DEFAULT_GPU_BUDGET_FRACTION = 0.9
#: Predictions are multiplied by this before being compared with the budget: on CPU the resident
#: peak of the q x q contenders measured up to ~1.8x their tensor-allocation peak (allocator and
#: BLAS buffers), and the address-space limit of the workers is the hard stop behind it.
SAFETY_FACTOR = 1.5


def memory_budget(
    device: str | torch.device = "cpu",
    override: str | int | None = None,
    available: int | None = None,
) -> tuple[int, str]:
    """``(bytes, explanation)``: how much memory one configuration may use.

    ``override`` (``--memory-budget``) wins. Otherwise on CPU ``min(0.5 · MemAvailable, 8 GiB)``
    (other people use the machine too), on GPU 0.9 × the device's free memory. ``available``
    replaces the measured available memory (tests).

    Example:
        >>> memory_budget("cpu", available=4 * GIB)
        (2147483648, 'min(0.5 x available 4.0 GiB, 8.0 GiB) = 2.0 GiB')
    """
    device = torch.device(device)
    if override is not None:
        value = parse_bytes(override)
        if value <= 0:
            raise ValueError(f"the memory budget must be positive, got {override!r}")
        return value, f"--memory-budget {format_bytes(value)}"
    if available is None:
        available = memory_available_bytes(device)
    if device.type == "cuda":
        if available is None:
            raise RuntimeError("cannot read the free GPU memory; pass --memory-budget")
        value = int(available * DEFAULT_GPU_BUDGET_FRACTION)
        return (
            value,
            f"{DEFAULT_GPU_BUDGET_FRACTION} x free GPU memory {format_bytes(available)} = {format_bytes(value)}",
        )
    if available is None:
        return DEFAULT_CPU_BUDGET_CAP, f"available memory unknown: {format_bytes(DEFAULT_CPU_BUDGET_CAP)}"
    value = int(min(available * DEFAULT_CPU_BUDGET_FRACTION, DEFAULT_CPU_BUDGET_CAP))
    return value, (
        f"min({DEFAULT_CPU_BUDGET_FRACTION} x available {format_bytes(available)}, "
        f"{format_bytes(DEFAULT_CPU_BUDGET_CAP)}) = {format_bytes(value)}"
    )


def _element_size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def predict_loss_peak_bytes(
    contender: str, n: int, q: int, dtype: torch.dtype | str = torch.float32, block_size: int | None = None
) -> int:
    """Predicted peak of tensor memory allocated by one forward + backward of a loss, above its inputs.

    Models calibrated against ``torch.profiler`` allocation peaks on CPU (float32, N in
    {128, 256, 512}, q in {512, 1024, 2048}; exact to < 1 MiB there), with s the element size:

    * ``vicreg`` (solo-learn): 6.5 q² s + 5 N q s — per view a covariance matrix, a float identity
      and two boolean masks, the masked off-diagonal copies, and their gradients;
    * ``barlow`` (solo-learn): 5.25 q² s + 2 N q s — the cross-correlation, identity, masks, the
      squared difference and gradients;
    * ``sfrik-feature`` (degree <= 2): 3 q² s + 4 N q s — Zᵀ Z per view and its gradient;
    * ``sfrik-gram``: 2 N q s + 2 N² s — the input gradients and, per view, φ'(G) kept for the
      backward;
    * ``sfrik-blocked``: 2 N q s + 3 B N s with B rows per block.

    SFRIK computes in float32 at least, so its N² terms use max(s, 4). All get 16 (N + q) floats
    and 64 KiB more for vectors and scalars.

    Example:
        >>> round(predict_loss_peak_bytes("vicreg", 256, 32768) / GIB, 3)   # 6.5 · 4 GiB + 160 MiB
        26.158
        >>> round(predict_loss_peak_bytes("sfrik-gram", 256, 32768) / MIB, 1)
        66.6
    """
    if contender not in LOSS_CONTENDERS:
        raise ValueError(f"unknown contender {contender!r}; choose from {list(LOSS_CONTENDERS)}")
    for label, value in (("N", n), ("q", q)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    s = _element_size(parse_dtype(dtype))
    compute = max(s, 4)
    if contender == "vicreg":
        total = 6.5 * q * q * s + 5 * n * q * s
    elif contender == "barlow":
        total = 5.25 * q * q * s + 2 * n * q * s
    elif contender == "sfrik-feature":
        total = 3 * q * q * compute + 4 * n * q * compute
    elif contender == "sfrik-gram":
        total = 2 * n * q * s + 2 * n * n * compute
    else:  # sfrik-blocked
        from .maths.mmd import GRAM_BLOCK_ELEMENTS

        rows = block_size if block_size is not None else max(1, GRAM_BLOCK_ELEMENTS // n)
        total = 2 * n * q * s + 3 * min(rows, n) * n * compute
    # per-row vectors (norms, scales, variances) and scalars: negligible except at toy sizes
    total += 16 * (n + q) * compute + 64 * 1024
    return int(math.ceil(total))


def predict_loss_total_bytes(contender: str, n: int, q: int, dtype: torch.dtype | str = torch.float32, **kw) -> int:
    """Peak of the loss plus its two ``N × q`` inputs: what must fit in memory."""
    return predict_loss_peak_bytes(contender, n, q, dtype, **kw) + 2 * n * q * _element_size(parse_dtype(dtype))


#: Parameter counts of the solo-learn backbones the training profile uses (without the fc layer).
BACKBONE_PARAMETERS = {"resnet18": 11_176_512, "resnet50": 23_508_032}
BACKBONE_FEATURES = {"resnet18": 512, "resnet50": 2048}


def projector_parameters(in_dim: int, hidden: int, out_dim: int, layers: int = 2) -> int:
    """Parameters of a Linear-BN-ReLU × layers + Linear projector (biases and BN affine included)."""
    total, previous = 0, in_dim
    for _ in range(layers):
        total += previous * hidden + hidden + 2 * hidden
        previous = hidden
    return total + previous * out_dim + out_dim


def predict_train_bytes(
    method: str,
    batch_size: int,
    q: int,
    hidden: int,
    backbone: str = "resnet18",
    image_size: int = 32,
) -> int:
    """A lower bound on the memory of one training step: parameters, gradients and optimiser
    state (4 copies of the weights), the loss of :func:`predict_loss_peak_bytes` on 2 views of
    ``batch_size`` images, and a rough 40 KiB per image per (32 px)² of backbone activations
    (ResNet-18; ×4 for ResNet-50), float32.

    Only meant to refuse configurations that clearly cannot fit (e.g. VICReg at q = 32768).

    Example:
        >>> predict_train_bytes("vicreg", 64, 32768, 2048) > 26 * GIB
        True
    """
    if method not in TRAIN_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(TRAIN_METHODS)}")
    if backbone not in BACKBONE_PARAMETERS:
        raise ValueError(f"no parameter count for backbone {backbone!r}; known: {sorted(BACKBONE_PARAMETERS)}")
    params = BACKBONE_PARAMETERS[backbone] + projector_parameters(BACKBONE_FEATURES[backbone], hidden, q)
    contender = {"sfrik": "sfrik-gram", "vicreg": "vicreg", "barlow": "barlow"}[method]
    loss = predict_loss_peak_bytes(contender, batch_size, q)
    per_image = 40 * 1024 * (image_size / 32) ** 2 * (4 if backbone == "resnet50" else 1)
    activations = 2 * batch_size * (per_image + 3 * (hidden * 2 + q) * 4)
    return int(4 * 4 * params + loss + activations)


def fit_verdict(predicted: int, budget: int, safety: float = SAFETY_FACTOR) -> tuple[bool, str]:
    """``(fits, reason)``: a prediction against a budget, with a safety factor.

    Example:
        >>> fit_verdict(20 * GIB, 8 * GIB)
        (False, 'does not fit (predicted 20.0 GiB x 1.5 > budget 8.0 GiB)')
    """
    if predicted * safety > budget:
        return False, f"does not fit (predicted {format_bytes(predicted)} x {safety:g} > budget {format_bytes(budget)})"
    return True, f"fits (predicted {format_bytes(predicted)} x {safety:g} <= budget {format_bytes(budget)})"


# ----------------------------------------------------------------------------------------------
# fits


def fit_power_law(xs: Sequence[float], ys: Sequence[float]) -> dict[str, float]:
    """Least-squares fit of ``log y = intercept + slope · log x``: ``{slope, intercept, r2, points}``.

    Needs at least two points with distinct x; every value must be positive.

    Example:
        >>> fit = fit_power_law([1, 2, 4, 8], [3, 12, 48, 192])   # y = 3 x²
        >>> round(fit["slope"], 6), round(math.exp(fit["intercept"]), 6), round(fit["r2"], 6)
        (2.0, 3.0, 1.0)
    """
    xs, ys = [float(x) for x in xs], [float(y) for y in ys]
    if len(xs) != len(ys):
        raise ValueError(f"xs and ys differ in length ({len(xs)} vs {len(ys)})")
    if len(xs) < 2:
        raise ValueError(f"a slope needs at least 2 points, got {len(xs)}")
    if any(not (v > 0 and math.isfinite(v)) for v in xs + ys):
        raise ValueError("a log-log fit needs finite positive values")
    lx, ly = [math.log(x) for x in xs], [math.log(y) for y in ys]
    mx, my = sum(lx) / len(lx), sum(ly) / len(ly)
    sxx = sum((a - mx) ** 2 for a in lx)
    if sxx == 0:
        raise ValueError("a slope needs at least 2 distinct x values")
    slope = sum((a - mx) * (b - my) for a, b in zip(lx, ly)) / sxx
    intercept = my - slope * mx
    residual = sum((b - (intercept + slope * a)) ** 2 for a, b in zip(lx, ly))
    total = sum((b - my) ** 2 for b in ly)
    r2 = 1.0 - residual / total if total > 0 else 1.0
    return {"slope": slope, "intercept": intercept, "r2": r2, "points": len(xs)}


def extrapolate_seconds(measured: Mapping[int, float], q: int, min_slope: float) -> float | None:
    """Predicted seconds per call at ``q`` from calls measured at smaller q.

    Uses the log-log slope of the (up to) three largest measured q, but never less than
    ``min_slope`` (the complexity claim: small sizes are overhead-bound and would under-predict).
    ``None`` without measurements.

    Example:
        >>> round(extrapolate_seconds({1024: 0.5, 2048: 2.0}, 4096, min_slope=1.0), 9)
        8.0
    """
    points = sorted((k, v) for k, v in measured.items() if k < q and v > 0)
    if not points:
        return None
    if len(points) == 1:
        slope = min_slope
    else:
        tail = points[-3:]
        slope = max(min_slope, fit_power_law([p[0] for p in tail], [p[1] for p in tail])["slope"])
    base_q, base_t = points[-1]
    return base_t * (q / base_q) ** slope


# ----------------------------------------------------------------------------------------------
# isolation: one fresh process per configuration


def describe_exit(exitcode: int | None) -> str:
    """Why a child process ended, in words.

    Example:
        >>> describe_exit(-9)
        'killed by SIGKILL (the out-of-memory killer, or a manual kill)'
    """
    if exitcode is None:
        return "still running"
    if exitcode == 0:
        return "exited normally without a result"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return f"killed by {name} (the out-of-memory killer, or a manual kill)"
        return f"killed by {name}"
    return f"exited with status {exitcode}"


def isolation_context(preload: Sequence[str] = ()) -> multiprocessing.context.BaseContext:
    """A multiprocessing context whose every child is a fresh process.

    ``forkserver`` (Linux): one server process imports ``preload`` once (torch, solo-learn: seconds
    each) and forks a clean child per configuration, so no child inherits another's memory
    peak and a start costs milliseconds. Elsewhere ``spawn`` (a new interpreter per child).
    """
    methods = multiprocessing.get_all_start_methods()
    if "forkserver" in methods:
        context = multiprocessing.get_context("forkserver")
        if preload:
            context.set_forkserver_preload(list(preload))
        return context
    return multiprocessing.get_context("spawn")


def _child_main(connection, target, spec):
    try:
        result = target(spec)
    except BaseException as error:  # report everything, including MemoryError
        result = {"status": "failed", "reason": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
    try:
        connection.send(result)
    finally:
        connection.close()


def run_isolated(
    target: Callable[[dict], dict],
    spec: dict,
    timeout: float | None = None,
    context: multiprocessing.context.BaseContext | None = None,
) -> dict:
    """Runs ``target(spec)`` in a fresh child process and returns its result dict.

    ``target`` must be importable (a module-level function). A child that raises returns
    ``{"status": "failed", "reason": ...}``; one that dies (out-of-memory kill, segfault) or runs
    past ``timeout`` seconds gives ``{"status": "crashed"|"timeout", "reason": ...}``. This never
    raises for the child's sake.
    """
    context = context or isolation_context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(sender, target, spec), daemon=True)
    process.start()
    sender.close()
    result = None
    try:
        if receiver.poll(timeout):
            try:
                result = receiver.recv()
            except EOFError:
                result = None
        else:
            process.kill()
            process.join()
            return {"status": "timeout", "reason": f"no result after {timeout:g} s (child killed)"}
    finally:
        receiver.close()
    process.join(timeout=30)
    if process.is_alive():
        process.kill()
        process.join()
    if result is None:
        return {"status": "crashed", "reason": describe_exit(process.exitcode)}
    return result


# ----------------------------------------------------------------------------------------------
# workers (run inside the isolated child)


def _quiet_child(log_path: str | None) -> None:
    """Sends the child's stderr (library warnings, profiler chatter) to a log file."""
    if not log_path:
        return
    handle = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(handle, 2)
    os.close(handle)
    sys.stderr = open(2, "w", closefd=False, buffering=1)
    import warnings

    warnings.simplefilter("ignore")


def _limit_address_space(limit: int | None) -> None:
    """Makes allocations beyond ``limit`` more bytes of address space fail with an error, on CPU,
    instead of pushing the machine into swap or the OOM killer (the safety net under the
    prediction)."""
    if not limit:
        return
    try:
        import resource
    except ImportError:
        return
    try:
        with open("/proc/self/status") as handle:
            current = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = current + int(limit)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))


def _is_out_of_memory(error: BaseException) -> bool:
    text = str(error).lower()
    return isinstance(error, MemoryError) or "out of memory" in text or "can't allocate memory" in text


def _loss_step(contender: str, z1: torch.Tensor, z2: torch.Tensor, block_size: int | None) -> Callable[[], None]:
    from . import sfrik_loss_func

    if contender == "vicreg":
        from solo.losses.vicreg import vicreg_loss_func

        loss = lambda: vicreg_loss_func(z1, z2)  # noqa: E731
    elif contender == "barlow":
        from solo.losses.barlow import barlow_loss_func

        loss = lambda: barlow_loss_func(z1, z2)  # noqa: E731
    elif contender == "sfrik-feature":
        loss = lambda: sfrik_loss_func(z1, z2, method="feature", weights=(1.0, 40.0)).loss  # noqa: E731
    elif contender in ("sfrik-gram", "sfrik-blocked"):
        method = contender.split("-")[1]
        loss = lambda: sfrik_loss_func(z1, z2, method=method, block_size=block_size).loss  # noqa: E731
    else:
        raise ValueError(f"unknown contender {contender!r}; choose from {list(LOSS_CONTENDERS)}")

    def step() -> None:
        z1.grad = z2.grad = None
        loss().backward()

    return step


def _repeats_for(first_seconds: float, spec: Mapping[str, Any]) -> int:
    """Measured repeats after a warm-up call that took ``first_seconds``: as many as fit in
    ``config_seconds``, between ``min_repeats`` and ``max_repeats`` (cheap calls get many repeats,
    so that their median resists machine noise; expensive ones few).

    Example:
        >>> _repeats_for(0.01, {"min_repeats": 2, "max_repeats": 25, "config_seconds": 20})
        25
        >>> _repeats_for(17.0, {"min_repeats": 2, "max_repeats": 25, "config_seconds": 20})
        2
    """
    minimum, maximum = int(spec.get("min_repeats", 2)), int(spec.get("max_repeats", 25))
    if maximum < minimum:
        raise ValueError(f"max_repeats ({maximum}) < min_repeats ({minimum})")
    budget = spec.get("config_seconds")
    if not budget or first_seconds <= 0:
        return maximum
    return max(minimum, min(maximum, int(budget // first_seconds)))


def loss_worker(spec: dict) -> dict:
    """Forward + backward of one loss contender at one (N, q): times and peak memory.

    ``spec`` keys: contender, n, q, dtype, device, warmup, min_repeats, max_repeats,
    config_seconds, threads, seed, address_space_limit (bytes, CPU), log, block_size.
    On CPU ``peak_bytes`` is the profiler's tensor-allocation peak of the first (warm-up) call and
    ``rss_peak_bytes`` the resident-set peak above the inputs over all calls.
    """
    _quiet_child(spec.get("log"))
    device = torch.device(spec.get("device", "cpu"))
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    n, q, dtype = int(spec["n"]), int(spec["q"]), parse_dtype(spec.get("dtype", "float32"))
    contender = spec["contender"]
    try:
        if device.type == "cpu":
            _limit_address_space(spec.get("address_space_limit"))
        generator = torch.Generator(device="cpu").manual_seed(int(spec.get("seed", 0)))
        z1 = torch.randn(n, q, generator=generator).to(device=device, dtype=dtype).requires_grad_()
        z2 = torch.randn(n, q, generator=generator).to(device=device, dtype=dtype).requires_grad_()
        step = _loss_step(contender, z1, z2, spec.get("block_size"))

        before = process_memory_bytes()
        rss_reset = reset_peak_rss()
        result: dict[str, Any] = {"status": "ok"}
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            allocated_before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            warmup = [time_call(step, device)]
        else:
            # the first warm-up call runs under the profiler: its tensor-allocation peak is the
            # CPU analogue of max_memory_allocated (the profiler's overhead only slows a warm-up)
            begin = time.perf_counter()
            result["alloc_peak_bytes"] = int(peak_memory_bytes(step, device))
            warmup = [time.perf_counter() - begin]
        warmup += [time_call(step, device) for _ in range(max(1, int(spec.get("warmup", 1))) - 1)]
        repeats = _repeats_for(warmup[-1], spec)
        samples = [time_call(step, device) for _ in range(repeats)]
        result.update(samples=samples, warmup_s=warmup, threads=torch.get_num_threads())
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            result["peak_bytes"] = int(torch.cuda.max_memory_allocated(device) - allocated_before)
            result["memory_kind"] = "cuda max_memory_allocated above the inputs"
        else:
            after = process_memory_bytes()
            result["rss_peak_bytes"] = max(0, after["peak_rss"] - before.get("rss", before["peak_rss"]))
            result["rss_peak_clean"] = rss_reset
            result["process_peak_rss_bytes"] = after["peak_rss"]  # the whole worker: torch, inputs, loss
            result["peak_bytes"] = result["alloc_peak_bytes"]
            result["memory_kind"] = "profiler tensor-allocation peak above the inputs"
        return result
    except BaseException as error:
        if _is_out_of_memory(error):
            return {"status": "oom", "reason": f"out of memory: {str(error).splitlines()[0][:200]}"}
        raise


class _SyntheticBatches(torch.utils.data.Dataset):
    """``steps`` copies of one batch in solo-learn's format ``(indexes, [view1, view2], targets)``."""

    def __init__(self, steps: int, batch_size: int, image_size: int, num_classes: int, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.steps = steps
        self.batch = (
            torch.arange(batch_size),
            [torch.randn(batch_size, 3, image_size, image_size, generator=generator) for _ in range(2)],
            torch.randint(0, num_classes, (batch_size,), generator=generator),
        )

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        return self.batch


def build_train_config(spec: Mapping[str, Any]):
    """The solo-learn pretraining config of one training-step profile, from the packaged configs of
    the adapter (``<dataset>/<method>``) with the widths, backbone and batch size of ``spec``,
    parsed by solo-learn's own ``parse_cfg`` the way the adapter's launcher does it."""
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg

    import sfrik_plugin.solo  # noqa: F401  (registers "sfrik" in solo-learn)
    from sfrik_plugin.solo.cli import CONFIG_ROOT, _parse_with_devices

    method = spec["method"]
    if method not in TRAIN_METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {list(TRAIN_METHODS)}")
    dataset = spec.get("config_dataset", "cifar10")
    cuda = str(spec.get("device", "cpu")).startswith("cuda")
    overrides = [
        f"backbone.name={spec.get('backbone', 'resnet18')}",
        f"method_kwargs.proj_hidden_dim={int(spec['hidden'])}",
        f"method_kwargs.proj_output_dim={int(spec['q'])}",
        f"optimizer.batch_size={int(spec['batch_size'])}",
        f"accelerator={'gpu' if cuda else 'cpu'}",
        "devices=1",
        "strategy=auto",
        "sync_batchnorm=False",
        f"precision={spec.get('precision', '16-mixed' if cuda else '32')}",
        "data.num_workers=0",
        "checkpoint.enabled=False",
        "auto_resume.enabled=False",
        "max_epochs=1",
        f"++performance.disable_channel_last={not cuda}",
        "wandb=off",
    ]
    if method == "sfrik":
        overrides.append("method_kwargs.proj_hidden_layers=2")
    config_dir = CONFIG_ROOT / "pretrain" / dataset
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.2"):
        cfg = compose(config_name=TRAIN_METHODS[method][1], overrides=overrides)
    OmegaConf.set_struct(cfg, False)
    return _parse_with_devices(cfg, parse_cfg)


def train_worker(spec: dict) -> dict:
    """Full training steps (backbone + projector + loss + optimiser step) of one method through
    the solo-learn adapter and a Lightning ``Trainer``, on synthetic images: step times and peak
    memory.

    ``spec`` keys: method, q, hidden, batch_size, image_size, backbone, device, precision,
    warmup, min_repeats, max_repeats, config_seconds, threads, address_space_limit, log, config_dataset.
    """
    _quiet_child(spec.get("log"))
    device = torch.device(spec.get("device", "cpu"))
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    try:
        if device.type == "cpu":
            _limit_address_space(spec.get("address_space_limit"))
        from lightning.pytorch import Callback, Trainer, seed_everything
        from solo.methods import METHODS

        cfg = build_train_config(spec)
        seed_everything(int(spec.get("seed", 0)))
        model = METHODS[cfg.method](cfg)
        warmup = max(1, int(spec.get("warmup", 1)))
        max_repeats = int(spec.get("max_repeats", 3))

        class StepTimer(Callback):
            """Times each whole step (forward, loss, backward, optimiser) and tracks peak memory."""

            def __init__(self):
                self.times: list[float] = []
                self.target = warmup + max_repeats
                self.start = None
                self.memory_base = None

            def on_train_batch_start(self, trainer, module, batch, batch_idx):
                if batch_idx == warmup:  # measurement starts: clean peaks
                    if device.type == "cuda":
                        torch.cuda.synchronize(device)
                        torch.cuda.reset_peak_memory_stats(device)
                    else:
                        reset_peak_rss()
                        self.memory_base = process_memory_bytes().get("rss")
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                self.start = time.perf_counter()

            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                self.times.append(time.perf_counter() - self.start)
                if batch_idx == warmup - 1:
                    self.target = warmup + _repeats_for(self.times[-1], spec)
                if len(self.times) >= self.target:
                    trainer.should_stop = True

        timer = StepTimer()
        steps = warmup + max_repeats
        trainer = Trainer(
            accelerator="gpu" if device.type == "cuda" else "cpu",
            devices=[device.index or 0] if device.type == "cuda" else 1,
            precision=cfg.precision,
            max_steps=steps,
            max_epochs=1,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            num_sanity_val_steps=0,
            limit_val_batches=0,
            callbacks=[timer],
        )
        data = _SyntheticBatches(
            steps, int(spec["batch_size"]), int(spec.get("image_size", 32)), int(cfg.data.num_classes)
        )
        loader = torch.utils.data.DataLoader(data, batch_size=None, shuffle=False, num_workers=0)
        trainer.fit(model, train_dataloaders=loader)

        samples = timer.times[warmup:]
        if not samples:
            raise RuntimeError(f"no measured step (ran {len(timer.times)} steps)")
        result: dict[str, Any] = {
            "status": "ok",
            "samples": samples,
            "warmup_s": timer.times[:warmup],
            "threads": torch.get_num_threads(),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "precision": str(cfg.precision),
        }
        if device.type == "cuda":
            result["peak_bytes"] = int(torch.cuda.max_memory_allocated(device))
            result["memory_kind"] = "cuda max_memory_allocated (whole step, weights included)"
        else:
            result["peak_bytes"] = int(process_memory_bytes()["peak_rss"])
            result["memory_kind"] = "peak resident set of the process during the measured steps"
        return result
    except BaseException as error:
        if _is_out_of_memory(error):
            return {"status": "oom", "reason": f"out of memory: {str(error).splitlines()[0][:200]}"}
        raise


# ----------------------------------------------------------------------------------------------
# rows and summaries


def result_row(base: Mapping[str, Any], result: Mapping[str, Any]) -> dict:
    """One CSV row: the configuration, the status, and median/spread of the samples."""
    row = dict(base)
    row["status"] = result.get("status", "failed")
    row["reason"] = result.get("reason", "")
    samples = result.get("samples") or []
    if samples:
        stats = summarize(list(samples))
        row.update(
            median_s=stats["median"],
            min_s=stats["min"],
            max_s=stats["max"],
            spread=(stats["max"] - stats["min"]) / stats["median"] if stats["median"] > 0 else float("nan"),
            repeats=stats["repeats"],
            warmup_s=(result.get("warmup_s") or [float("nan")])[0],
        )
    else:
        row.update(median_s=None, min_s=None, max_s=None, spread=None, repeats=0, warmup_s=None)
    peak = result.get("peak_bytes")
    row["peak_mib"] = peak / MIB if peak is not None else None
    for key in ("rss_peak", "process_peak_rss"):
        value = result.get(f"{key}_bytes")
        row[f"{key}_mib"] = value / MIB if value is not None else None
    return row


def _rows_ok(rows: Iterable[Mapping[str, Any]], **match) -> list[Mapping[str, Any]]:
    return [
        r
        for r in rows
        if r.get("status") == "ok" and r.get("median_s") and all(r.get(k) == v for k, v in match.items())
    ]


def loss_summary(rows: Sequence[Mapping[str, Any]], reference: str = "sfrik-gram", baseline: str = "vicreg") -> dict:
    """Slopes of time and memory vs q per (contender, N), and baseline/reference ratios per (N, q).

    Example:
        >>> rows = [dict(contender=c, N=256, q=q, status="ok", median_s=t * q**e, peak_mib=m * q**e)
        ...         for c, t, m, e in (("sfrik-gram", 1e-5, 0.01, 1), ("vicreg", 1e-8, 1e-4, 2))
        ...         for q in (1024, 2048, 4096)]
        >>> s = loss_summary(rows)
        >>> round(s["slopes"]["vicreg"]["256"]["time"]["slope"], 6)
        2.0
    """
    slopes: dict[str, dict[str, dict]] = {}
    for contender in sorted({r["contender"] for r in rows}):
        for n in sorted({r["N"] for r in rows}):
            ok = sorted(_rows_ok(rows, contender=contender, N=n), key=lambda r: r["q"])
            entry: dict[str, Any] = {}
            if len({r["q"] for r in ok}) >= 2:
                entry["time"] = fit_power_law([r["q"] for r in ok], [r["median_s"] for r in ok])
                with_memory = [r for r in ok if r.get("peak_mib")]
                if len({r["q"] for r in with_memory}) >= 2:
                    entry["memory"] = fit_power_law([r["q"] for r in with_memory], [r["peak_mib"] for r in with_memory])
                entry["q_range"] = [ok[0]["q"], ok[-1]["q"]]
            if entry:
                slopes.setdefault(contender, {})[str(n)] = entry
    ratios = []
    for n, q in sorted({(r["N"], r["q"]) for r in rows}):
        ref = _rows_ok(rows, contender=reference, N=n, q=q)
        base = [r for r in rows if r["contender"] == baseline and r["N"] == n and r["q"] == q]
        if not ref or not base:
            continue
        entry = {"N": n, "q": q, "baseline_status": base[0].get("status"), "baseline_reason": base[0].get("reason", "")}
        if base[0].get("status") == "ok" and base[0].get("median_s"):
            entry["time_ratio"] = base[0]["median_s"] / ref[0]["median_s"]
            if base[0].get("peak_mib") and ref[0].get("peak_mib"):
                entry["memory_ratio"] = base[0]["peak_mib"] / ref[0]["peak_mib"]
        ratios.append(entry)
    return {"reference": reference, "baseline": baseline, "slopes": slopes, "ratios": ratios}


def train_summary(rows: Sequence[Mapping[str, Any]], reference: str = "sfrik", baseline: str = "vicreg") -> dict:
    """Per q: how much faster (time) and leaner (memory) ``reference`` is than ``baseline``, and
    the smallest measured q from which it stays faster (the crossover)."""
    per_q = []
    for q in sorted({r["q"] for r in rows}):
        ref = _rows_ok(rows, method=reference, q=q)
        base = [r for r in rows if r["method"] == baseline and r["q"] == q]
        if not ref or not base:
            continue
        entry: dict[str, Any] = {
            "q": q,
            "baseline_status": base[0].get("status"),
            "baseline_reason": base[0].get("reason", ""),
        }
        if base[0].get("status") == "ok" and base[0].get("median_s"):
            entry["speedup_percent"] = 100.0 * (base[0]["median_s"] / ref[0]["median_s"] - 1.0)
            if base[0].get("peak_mib") and ref[0].get("peak_mib"):
                entry["memory_saving_percent"] = 100.0 * (1.0 - ref[0]["peak_mib"] / base[0]["peak_mib"])
        else:
            entry["speedup_percent"] = math.inf  # the baseline does not run at all
        per_q.append(entry)
    crossover = None
    for i, entry in enumerate(per_q):
        if all(e["speedup_percent"] > 0 for e in per_q[i:]):
            crossover = entry["q"]
            break
    return {"reference": reference, "baseline": baseline, "per_q": per_q, "crossover_q": crossover}


# ----------------------------------------------------------------------------------------------
# writers


def write_csv(rows: Sequence[Mapping[str, Any]], path: str | os.PathLike) -> Path:
    """Writes rows (dicts) as CSV, columns in first-seen order over all rows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fields: list[str] = []
    for row in rows:
        fields += [k for k in row if k not in fields]
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in fields})
    return path


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (torch.dtype, torch.device, Path)):
        return str(value)
    return value


def write_json(payload: Mapping[str, Any], path: str | os.PathLike) -> Path:
    """Writes ``payload`` as indented JSON (non-finite floats as null / "inf")."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_jsonable(dict(payload)), indent=2, allow_nan=False) + "\n")
    return path


def markdown_table(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[tuple[str, str, Callable[[Any], str] | str]]
) -> str:
    """A GitHub markdown table: ``columns`` are ``(key, header, format)`` with a format spec
    (``".3f"``) or a function; missing values print as ``–``.

    Example:
        >>> print(markdown_table([{"q": 8, "t": 0.5}], [("q", "q", "d"), ("t", "time (s)", ".2f")]))
        | q | time (s) |
        |---|---|
        | 8 | 0.50 |
    """
    lines = ["| " + " | ".join(h for _, h, _ in columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for key, _, fmt in columns:
            value = row.get(key)
            if callable(fmt):
                cells.append(fmt(value) if value is not None else "–")
            elif value is None or value == "" or (isinstance(value, float) and math.isnan(value)):
                cells.append("–")
            else:
                cells.append(format(value, fmt))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


_STYLES = {
    "sfrik-gram": ("tab:blue", "o", "-"),
    "sfrik-blocked": ("tab:cyan", "v", "--"),
    "sfrik-feature": ("tab:purple", "D", ":"),
    "vicreg": ("tab:red", "s", "-"),
    "barlow": ("tab:orange", "^", "-"),
    "sfrik": ("tab:blue", "o", "-"),
}


def plot_loss(
    rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], path: str | os.PathLike, title: str = ""
) -> Path | None:
    """PNG with, per batch size N, time vs q and memory vs q (log–log, fitted slopes in the legend;
    configurations that do not fit are marked with ×) and the baseline/SFRIK ratios.
    Returns None without matplotlib."""
    plt = _pyplot()
    if plt is None:
        return None
    sizes = sorted({r["N"] for r in rows})
    figure, axes = plt.subplots(len(sizes), 3, figsize=(16, 4.6 * len(sizes)), squeeze=False)
    for line, n in zip(axes, sizes):
        time_axis, memory_axis, ratio_axis = line
        for contender in [c for c in LOSS_CONTENDERS if any(r["contender"] == c for r in rows)]:
            color, marker, style = _STYLES.get(contender, ("k", "o", "-"))
            ok = sorted(_rows_ok(rows, contender=contender, N=n), key=lambda r: r["q"])
            fit = summary["slopes"].get(contender, {}).get(str(n), {})
            label = LOSS_CONTENDERS[contender].label
            for axis, key, kind in ((time_axis, "median_s", "time"), (memory_axis, "peak_mib", "memory")):
                points = [(r["q"], r[key]) for r in ok if r.get(key)]
                if not points:
                    continue
                text = label + (f"  slope {fit[kind]['slope']:.2f}" if kind in fit else "")
                axis.plot(
                    [p[0] for p in points],
                    [p[1] for p in points],
                    color=color,
                    marker=marker,
                    linestyle=style,
                    label=text,
                )
                if key == "median_s":
                    low = [r["median_s"] - r["min_s"] for r in ok]
                    high = [r["max_s"] - r["median_s"] for r in ok]
                    axis.errorbar(
                        [r["q"] for r in ok],
                        [r["median_s"] for r in ok],
                        yerr=[low, high],
                        color=color,
                        linestyle="none",
                        capsize=2,
                    )
            missing = [r for r in rows if r["contender"] == contender and r["N"] == n and r.get("status") != "ok"]
            if missing and ok:
                top = max(r["median_s"] for r in ok)
                time_axis.scatter([r["q"] for r in missing], [top * 1.6] * len(missing), color=color, marker="x", s=60)
                predicted = [r for r in missing if r.get("predicted_mib")]
                memory_axis.scatter(
                    [r["q"] for r in predicted], [r["predicted_mib"] for r in predicted], color=color, marker="x", s=60
                )
        time_axis.set(
            xscale="log",
            yscale="log",
            xlabel="q (embedding dimension)",
            ylabel="forward + backward (s)",
            title=f"time, N = {n}",
        )
        memory_axis.set(
            xscale="log",
            yscale="log",
            xlabel="q (embedding dimension)",
            ylabel="peak memory (MiB)",
            title=f"memory, N = {n}  (× = not run; memory: predicted)",
        )
        for axis in (time_axis, memory_axis):
            axis.set_xscale("log", base=2)
            axis.grid(True, which="both", alpha=0.3)
            axis.legend(fontsize=8)
        ratios = [e for e in summary["ratios"] if e["N"] == n and "time_ratio" in e]
        if ratios:
            ratio_axis.plot(
                [e["q"] for e in ratios], [e["time_ratio"] for e in ratios], "o-", color="tab:green", label="time"
            )
            mem = [e for e in ratios if "memory_ratio" in e]
            ratio_axis.plot(
                [e["q"] for e in mem], [e["memory_ratio"] for e in mem], "s--", color="tab:brown", label="memory"
            )
            for e in ratios:
                ratio_axis.annotate(
                    f"{e['time_ratio']:.0f}×",
                    (e["q"], e["time_ratio"]),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=8,
                )
        for e in summary["ratios"]:
            if e["N"] == n and "time_ratio" not in e and ratios:
                ratio_axis.annotate(
                    f"q={e['q']}:\n{summary['baseline']} {e['baseline_status']}",
                    (
                        0.03,
                        0.97
                        - 0.12
                        * len(
                            [x for x in summary["ratios"] if x["N"] == n and "time_ratio" not in x and x["q"] < e["q"]]
                        ),
                    ),
                    xycoords="axes fraction",
                    va="top",
                    fontsize=8,
                    color="tab:red",
                )
        ratio_axis.set(
            yscale="log",
            xlabel="q (embedding dimension)",
            ylabel=f"{summary['baseline']} / {summary['reference']}",
            title=f"VICReg / SFRIK (gram), N = {n}",
        )
        ratio_axis.set_xscale("log", base=2)
        ratio_axis.axhline(1.0, color="k", linewidth=0.8)
        ratio_axis.grid(True, which="both", alpha=0.3)
        ratio_axis.legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def plot_train(
    rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any], path: str | os.PathLike, title: str = ""
) -> Path | None:
    """PNG: images/s vs q and peak memory vs q per method, and SFRIK's speed-up over VICReg."""
    plt = _pyplot()
    if plt is None:
        return None
    figure, (speed_axis, memory_axis, gain_axis) = plt.subplots(1, 3, figsize=(16, 4.6))
    for method in TRAIN_METHODS:
        ok = sorted(_rows_ok(rows, method=method), key=lambda r: r["q"])
        if not ok:
            continue
        color, marker, style = _STYLES.get(method, ("k", "o", "-"))
        speed_axis.plot(
            [r["q"] for r in ok],
            [r["images_per_s"] for r in ok],
            color=color,
            marker=marker,
            linestyle=style,
            label=method,
        )
        memory_axis.plot(
            [r["q"] for r in ok], [r["peak_mib"] for r in ok], color=color, marker=marker, linestyle=style, label=method
        )
    per_q = summary["per_q"]
    if per_q:
        finite = [e["speedup_percent"] if math.isfinite(e["speedup_percent"]) else 0.0 for e in per_q]
        colors = ["tab:green" if v >= 0 else "tab:red" for v in finite]
        gain_axis.bar([str(e["q"]) for e in per_q], finite, color=colors)
        for i, e in enumerate(per_q):
            if math.isfinite(e["speedup_percent"]):
                text, height = f"{e['speedup_percent']:+.0f} %", e["speedup_percent"]
            else:
                text, height = f"{summary['baseline']}:\n{e['baseline_status']}", 0.0
            gain_axis.annotate(text, (i, height), ha="center", va="bottom", fontsize=8)
    speed_axis.set(xscale="log", xlabel="q", ylabel="images / s (2 views each)", title="training throughput")
    memory_axis.set(
        xscale="log", yscale="log", xlabel="q", ylabel="peak memory (MiB)", title="training-step peak memory"
    )
    gain_axis.set(xlabel="q", ylabel="SFRIK faster than VICReg (%)", title="SFRIK step-time gain over VICReg")
    gain_axis.axhline(0, color="k", linewidth=0.8)
    for axis in (speed_axis, memory_axis):
        axis.set_xscale("log", base=2)
        axis.grid(True, which="both", alpha=0.3)
        axis.legend(fontsize=8)
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


def add_run_control_arguments(
    parser, *, out: str, config_seconds: float, max_repeats: int, unit: str = "calls"
) -> None:
    """The options both profiling scripts share: device, repeats and time budget, memory budget,
    threads, worker timeout, output folder (defaults differ per script, hence the arguments)."""
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


def describe_machine(device: str | torch.device = "cpu") -> dict:
    """:func:`sfrik_plugin.benchmarking.machine_info` plus the memory available now."""
    info = machine_info(device)
    available = memory_available_bytes(device)
    info["memory_available_gib"] = round(available / GIB, 1) if available is not None else None
    return info

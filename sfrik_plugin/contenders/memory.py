"""Will it fit? Memory predictions for a loss or a training step, and the budget they must meet.

A configuration whose prediction (times :data:`SAFETY_FACTOR`) exceeds the budget is reported
as not fitting instead of being run: the profiler uses this to avoid swapping a shared machine to
death, the launchers to refuse a q that cannot fit, the benchmark to report such configurations.
The predictions come from the memory models of the registered contenders
(:mod:`sfrik_plugin.contenders.registry`); nothing here measures anything.

Example:
    >>> budget, why = memory_budget("cpu", override="8GiB")
    >>> fit_verdict(predict_loss_total_bytes("vicreg", 256, 32768), budget)[0]
    False
    >>> fit_verdict(predict_loss_total_bytes("sfrik-gram", 256, 32768), budget)[0]
    True
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

import torch

from .registry import get_contender, get_train_method

__all__ = [
    "MIB",
    "GIB",
    "SAFETY_FACTOR",
    "DEFAULT_CPU_BUDGET_CAP",
    "DEFAULT_CPU_BUDGET_FRACTION",
    "DEFAULT_GPU_BUDGET_FRACTION",
    "read_meminfo",
    "memory_available_bytes",
    "parse_bytes",
    "format_bytes",
    "memory_budget",
    "fit_verdict",
    "predict_loss_peak_bytes",
    "predict_loss_total_bytes",
    "BackboneSize",
    "BACKBONES",
    "predict_train_bytes",
]

MIB = 2**20
GIB = 2**30

#: Default CPU budget: half of what the OS says is available, at most this much (shared machines).
DEFAULT_CPU_BUDGET_CAP = 8 * GIB
DEFAULT_CPU_BUDGET_FRACTION = 0.5
DEFAULT_GPU_BUDGET_FRACTION = 0.9
#: Predictions are multiplied by this before being compared with the budget: on CPU the resident
#: peak of a worker exceeds its tensor-allocation peak (allocator and BLAS buffers, the
#: interpreter), and the address-space limit of the workers is the hard stop behind it.
SAFETY_FACTOR = 1.5

# per-row vectors (norms, scales, variances) and scalars: negligible except at toy sizes
_VECTORS_PER_ROW_OR_COLUMN = 16
_SCALARS_BYTES = 64 * 1024


# ---------------------------------------------------------------------------------- the machine


def read_meminfo(path: str | os.PathLike = "/proc/meminfo") -> dict[str, int]:
    """``/proc/meminfo`` as ``{field: bytes}`` (``{}`` where the file does not exist, e.g. macOS).

    Example:
        >>> info = read_meminfo()
        >>> not info or info["MemTotal"] > 0
        True
    """
    values: dict[str, int] = {}
    try:
        with open(path) as handle:
            for line in handle:
                key, _, rest = line.partition(":")
                fields = rest.split()
                if not fields:
                    continue
                try:
                    number = int(fields[0])
                except ValueError:
                    continue
                scale = 1024 if len(fields) > 1 and fields[1].lower() == "kb" else 1
                values[key.strip()] = number * scale
    except OSError:
        return {}
    return values


def memory_available_bytes(device: str | torch.device = "cpu") -> int | None:
    """Memory a new allocation can use now: free device memory on GPU, ``MemAvailable`` on CPU;
    ``None`` when the platform does not tell (no ``/proc/meminfo``).

    Example:
        >>> value = memory_available_bytes("cpu")
        >>> value is None or value > 0
        True
    """
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(free)
    info = read_meminfo()
    for field in ("MemAvailable", "MemFree"):  # MemFree on kernels older than 3.14
        if field in info:
            return info[field]
    return None


# ---------------------------------------------------------------------------------- sizes as text


def parse_bytes(text: str | int | float) -> int:
    """``"8GiB"``, ``"512M"``, ``"1.5g"``, ``"1000000"`` -> bytes (binary units: k = 1024).

    Example:
        >>> parse_bytes("1.5GiB") == 3 * 2**29
        True
    """
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return int(text)
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kmgt]?)(i?b)?\s*", str(text).lower())
    if not match:
        raise ValueError(f"not a memory size: {text!r} (examples: 8GiB, 512M, 1.5g)")
    scale = {"": 1, "k": 2**10, "m": 2**20, "g": 2**30, "t": 2**40}[match.group(2)]
    return int(float(match.group(1)) * scale)


def format_bytes(value: float | None) -> str:
    """Human-readable size, ``–`` for a missing value.

    Example:
        >>> format_bytes(3 * 2**30), format_bytes(1536 * 2**10), format_bytes(None)
        ('3.0 GiB', '1.5 MiB', '–')
    """
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if abs(value) >= scale:
            return f"{value / scale:.1f} {unit}"
    return f"{int(value)} B"


# ---------------------------------------------------------------------------------- the budget


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


def fit_verdict(predicted: int, budget: int, safety: float = SAFETY_FACTOR) -> tuple[bool, str]:
    """``(fits, reason)``: a prediction against a budget, with a safety factor.

    Example:
        >>> fit_verdict(20 * GIB, 8 * GIB)
        (False, 'does not fit (predicted 20.0 GiB x 1.5 > budget 8.0 GiB)')
    """
    if predicted * safety > budget:
        return False, f"does not fit (predicted {format_bytes(predicted)} x {safety:g} > budget {format_bytes(budget)})"
    return True, f"fits (predicted {format_bytes(predicted)} x {safety:g} <= budget {format_bytes(budget)})"


# ---------------------------------------------------------------------------------- predictions


def _element_size(dtype: torch.dtype) -> int:
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"dtype must be a torch.dtype (e.g. torch.float32), got {dtype!r}")
    return torch.empty((), dtype=dtype).element_size()


def _check_positive(**values: int) -> None:
    for label, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")


def predict_loss_peak_bytes(
    contender: str, n: int, q: int, dtype: torch.dtype = torch.float32, block_size: int | None = None
) -> int:
    """Predicted peak of tensor memory one forward + backward of a loss allocates, above its inputs:
    the contender's memory model plus 16 (N + q) compute-precision elements and 64 KiB for vectors
    and scalars. Losses compute in at least float32 (``compute_size = max(element size, 4)``).

    Example:
        >>> round(predict_loss_peak_bytes("vicreg", 256, 32768) / GIB, 1)
        39.2
        >>> round(predict_loss_peak_bytes("sfrik-gram", 256, 32768) / MIB, 1)
        139.1
    """
    entry = get_contender(contender)
    _check_positive(N=n, q=q)
    if block_size is not None:
        _check_positive(block_size=block_size)
    size = _element_size(dtype)
    compute = max(size, 4)
    total = entry.memory(n=n, q=q, element_size=size, compute_size=compute, block_size=block_size)
    total += _VECTORS_PER_ROW_OR_COLUMN * (n + q) * compute + _SCALARS_BYTES
    return int(math.ceil(total))


def predict_loss_total_bytes(
    contender: str, n: int, q: int, dtype: torch.dtype = torch.float32, block_size: int | None = None
) -> int:
    """Peak of the loss plus its two ``N × q`` inputs: what must fit in memory.

    Example:
        >>> predict_loss_total_bytes("sfrik-gram", 8, 16) - predict_loss_peak_bytes("sfrik-gram", 8, 16)
        1024
    """
    peak = predict_loss_peak_bytes(contender, n, q, dtype, block_size)
    return peak + 2 * n * q * _element_size(dtype)


@dataclass(frozen=True)
class BackboneSize:
    """What the training-step prediction needs to know of a backbone: its parameter count (without
    a classifier), its output features (the projector's input) and the activation memory it keeps
    per image per (32 px)², float32 (measured for the ResNets; a rough guess elsewhere).

    Example:
        >>> BackboneSize(parameters=21_665_664, features=384).activation_bytes   # e.g. a ViT-S
        40960
    """

    parameters: int
    features: int
    activation_bytes: int = 40 * 1024

    def __post_init__(self) -> None:
        _check_positive(parameters=self.parameters, features=self.features, activation_bytes=self.activation_bytes)


#: The backbones the training profile uses by name (solo-learn's, without the fc layer).
BACKBONES: dict[str, BackboneSize] = {
    "resnet18": BackboneSize(11_176_512, 512, 40 * 1024),
    "resnet50": BackboneSize(23_508_032, 2048, 160 * 1024),
}


def predict_train_bytes(
    method: str,
    batch_size: int,
    q: int,
    hidden: int,
    backbone: str | BackboneSize = "resnet18",
    image_size: int = 32,
    projector_layers: int = 2,
) -> int:
    """A lower bound on the memory of one training step, float32: parameters, gradients and
    optimiser state (4 copies of the weights), the loss of the method's contender on 2 views of
    ``batch_size`` images, the backbone's activations and the projector's.

    ``backbone``: a name of :data:`BACKBONES` or, for any other backbone, a :class:`BackboneSize`
    with its parameter count; ``projector_layers``: hidden layers of the projector, for a method
    whose count is a setting (SFRIK's; solo-learn's methods fix theirs). The projector is counted
    as the method builds it (:meth:`~sfrik_plugin.contenders.registry.TrainMethod.projector`). Only
    meant to refuse configurations that clearly cannot fit (e.g. VICReg at q = 32768).

    Example:
        >>> predict_train_bytes("vicreg", 64, 32768, 2048) > 26 * GIB
        True
        >>> vit_small = BackboneSize(parameters=21_665_664, features=384)
        >>> predict_train_bytes("sfrik", 256, 8192, 2048, backbone=vit_small, image_size=224) < 8 * GIB
        True
    """
    entry = get_train_method(method)
    _check_positive(batch_size=batch_size, q=q, hidden=hidden, image_size=image_size)
    if isinstance(backbone, str):
        if backbone not in BACKBONES:
            raise ValueError(
                f"no size known for backbone {backbone!r}; known: {sorted(BACKBONES)} "
                "(or pass BackboneSize(parameters=..., features=...))"
            )
        backbone = BACKBONES[backbone]
    settings = {"proj_hidden_dim": hidden, "proj_output_dim": q, "proj_hidden_layers": projector_layers}
    projector = entry.projector(backbone.features, settings)
    params = backbone.parameters + projector.parameters()
    loss = predict_loss_peak_bytes(entry.loss, batch_size, q)
    per_image = backbone.activation_bytes * (image_size / 32) ** 2
    activations = 2 * batch_size * (per_image + 3 * (sum(projector.hidden) + q) * 4)
    return int(4 * 4 * params + loss + activations)

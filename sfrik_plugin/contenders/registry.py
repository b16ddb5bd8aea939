"""The registry of compared losses and training methods: one frozen entry per contender.

A loss contender holds everything the profiler, its summaries and its plots need to know about
it — its name and label, the complexity claim, whether it needs solo-learn, how to build one
forward pass (the *step builder*), how much memory that step allocates (the *memory model*) and
how to draw it. Adding a baseline is one :func:`register_contender` call; nothing else changes.
Training methods (for the training-step profiler) are entries of the same style pointing to the
solo-learn method, its packaged config and the loss contender whose memory model they use.

Entries travel to isolated worker processes by pickling, so their step builders and memory
models must be importable module-level functions (or ``functools.partial`` of them), not lambdas.

Example:
    >>> from sfrik_plugin.contenders import CONTENDERS, get_contender
    >>> get_contender("vicreg").label
    'VICReg (solo-learn)'
    >>> "sfrik-gram" in CONTENDERS
    True
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Generic, Protocol, TypeVar

from torch import Tensor

from ..console import InputError
from .projector import ProjectorDims, projector_dims

__all__ = [
    "PlotStyle",
    "StepBuilder",
    "MemoryModel",
    "LossContender",
    "TrainMethod",
    "CONTENDERS",
    "TRAIN_METHODS",
    "register_contender",
    "unregister_contender",
    "get_contender",
    "register_train_method",
    "unregister_train_method",
    "get_train_method",
]


@dataclass(frozen=True)
class PlotStyle:
    """How a contender is drawn: a matplotlib colour, marker and line style.

    Example:
        >>> PlotStyle("tab:red", "s").linestyle
        '-'
    """

    color: str
    marker: str = "o"
    linestyle: str = "-"


class StepBuilder(Protocol):
    """``build(z1, z2, options) -> loss``: a zero-argument callable returning the scalar loss of
    the two ``N × q`` views (the worker calls ``.backward()`` on it). ``options`` carries optional
    settings of the profile (e.g. ``block_size``); a builder ignores those it does not know."""

    def __call__(self, z1: Tensor, z2: Tensor, options: Mapping[str, Any]) -> Callable[[], Tensor]: ...


class MemoryModel(Protocol):
    """Bytes one forward + backward allocates above its two inputs, before the per-vector overhead
    every contender gets (:func:`sfrik_plugin.contenders.memory.predict_loss_peak_bytes`).

    ``element_size`` is the bytes per element of the inputs, ``compute_size`` those of the
    precision the loss computes in (SFRIK: at least float32), ``block_size`` the rows per block
    of a blocked computation (``None``: the contender's default)."""

    def __call__(self, n: int, q: int, element_size: int, compute_size: int, block_size: int | None) -> float: ...


def _check_name(kind: str, name: Any) -> None:
    if not isinstance(name, str) or not name or name != name.strip():
        raise InputError(f"a {kind} name must be a non-empty string without surrounding spaces, got {name!r}")


@dataclass(frozen=True)
class LossContender:
    """One loss implementation to profile.

    ``q_exponent`` / ``n_exponent``: how its time grows with q and N (the complexity claim; the
    profiler never extrapolates a slower growth). ``label``: what tables and plots call it.
    """

    name: str
    label: str
    q_exponent: float
    n_exponent: float
    needs_solo: bool
    description: str
    build_step: StepBuilder
    memory: MemoryModel
    style: PlotStyle

    def __post_init__(self) -> None:
        _check_name("contender", self.name)
        for field, value in (("q_exponent", self.q_exponent), ("n_exponent", self.n_exponent)):
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not value > 0:
                raise InputError(f"{field} of contender {self.name!r} must be a positive number, got {value!r}")
        for field, function in (("build_step", self.build_step), ("memory", self.memory)):
            if not callable(function):
                raise InputError(f"{field} of contender {self.name!r} must be callable, got {function!r}")


@dataclass(frozen=True)
class TrainMethod:
    """One method of the training-step profile, built through the solo-learn adapter.

    ``solo_method``: the key of solo-learn's ``METHODS``; ``config``: the packaged pretraining
    config (``<dataset>/<config>.yaml``); ``loss``: the loss contender whose memory model predicts
    the method's loss; ``overrides``: extra hydra overrides that make its projector match the
    others (e.g. SFRIK's number of hidden layers). How the method builds its projector:
    ``projector_layers`` (its fixed hidden-layer count, ``None``: ``method_kwargs.proj_hidden_layers``
    says) and ``projector_last_bias`` (whether its last ``Linear`` has a bias: solo-learn's
    methods yes, SFRIK no).
    """

    name: str
    label: str
    solo_method: str
    config: str
    loss: str
    style: PlotStyle
    overrides: tuple[str, ...] = ()
    projector_layers: int | None = 2
    projector_last_bias: bool = True

    def __post_init__(self) -> None:
        _check_name("training method", self.name)
        if not isinstance(self.overrides, tuple):
            raise InputError(f"overrides of method {self.name!r} must be a tuple of strings, got {self.overrides!r}")

    def projector(self, in_dim: int, method_kwargs: Mapping[str, Any]) -> ProjectorDims:
        """The projector this method builds on ``in_dim`` features from its ``method_kwargs``
        (``proj_hidden_dim``, ``proj_output_dim`` and, unless the method fixes the count,
        ``proj_hidden_layers``).

        Example:
            >>> from sfrik_plugin.contenders import get_train_method
            >>> get_train_method("vicreg").projector(512, {"proj_hidden_dim": 64, "proj_output_dim": 32}).parameters()
            39328
        """
        layers = self.projector_layers
        if layers is None:
            layers = method_kwargs.get("proj_hidden_layers")
        return projector_dims(
            in_dim,
            method_kwargs["proj_hidden_dim"],
            method_kwargs["proj_output_dim"],
            layers=layers,
            last_bias=self.projector_last_bias,
        )


Entry = TypeVar("Entry", LossContender, TrainMethod)


class _Registry(Generic[Entry]):
    """Name -> entry, with a read-only live view; errors list the known names."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.entries: dict[str, Entry] = {}
        self.view: Mapping[str, Entry] = MappingProxyType(self.entries)

    def register(self, entry: Entry, replace: bool) -> Entry:
        if entry.name in self.entries and not replace:
            raise InputError(
                f"a {self.kind} named {entry.name!r} is already registered; pass replace=True to redefine it"
            )
        self.entries[entry.name] = entry
        return entry

    def unregister(self, name: str) -> Entry:
        return self.entries.pop(self.get(name).name)

    def get(self, name: str) -> Entry:
        if name not in self.entries:
            raise InputError(f"unknown {self.kind} {name!r}; known: {sorted(self.entries)}")
        return self.entries[name]


_LOSSES: _Registry[LossContender] = _Registry("contender")
_METHODS: _Registry[TrainMethod] = _Registry("training method")

#: Every registered loss contender by name (read-only; change it with :func:`register_contender`).
CONTENDERS: Mapping[str, LossContender] = _LOSSES.view
#: Every registered training method by name (read-only; :func:`register_train_method`).
TRAIN_METHODS: Mapping[str, TrainMethod] = _METHODS.view


def register_contender(contender: LossContender, *, replace: bool = False) -> LossContender:
    """Adds a loss contender to :data:`CONTENDERS` (the profiler, summaries and plots pick it up).

    Example:
        >>> from sfrik_plugin.contenders import LossContender, PlotStyle, register_contender
        >>> def mse_step(z1, z2, options):
        ...     return lambda: (z1 - z2).pow(2).mean()
        >>> def mse_memory(n, q, element_size, compute_size, block_size):
        ...     return 3 * n * q * element_size          # the difference and two input gradients
        >>> entry = register_contender(LossContender("mse", "MSE", 1.0, 1.0, False, "plain MSE",
        ...                                          mse_step, mse_memory, PlotStyle("tab:gray")))
        >>> _ = unregister_contender("mse")
    """
    if not isinstance(contender, LossContender):
        raise InputError(f"register_contender takes a LossContender, got {type(contender).__name__}")
    return _LOSSES.register(contender, replace)


def unregister_contender(name: str) -> LossContender:
    """Removes the contender ``name`` and returns it (an error lists the known names)."""
    return _LOSSES.unregister(name)


def get_contender(name: str) -> LossContender:
    """The registered contender ``name``.

    Example:
        >>> get_contender("sfrik-gram").q_exponent
        1.0
    """
    return _LOSSES.get(name)


def register_train_method(method: TrainMethod, *, replace: bool = False) -> TrainMethod:
    """Adds a training method to :data:`TRAIN_METHODS`; its ``loss`` must be a registered contender.

    Example:
        >>> from sfrik_plugin.contenders import TrainMethod, PlotStyle
        >>> m = register_train_method(TrainMethod("vicreg-wide", "VICReg", "vicreg", "vicreg", "vicreg",
        ...                                       PlotStyle("tab:pink")))
        >>> _ = unregister_train_method("vicreg-wide")
    """
    if not isinstance(method, TrainMethod):
        raise InputError(f"register_train_method takes a TrainMethod, got {type(method).__name__}")
    get_contender(method.loss)  # its memory model must exist
    return _METHODS.register(method, replace)


def unregister_train_method(name: str) -> TrainMethod:
    """Removes the training method ``name`` and returns it."""
    return _METHODS.unregister(name)


def get_train_method(name: str) -> TrainMethod:
    """The registered training method ``name``.

    Example:
        >>> get_train_method("barlow").solo_method
        'barlow_twins'
    """
    return _METHODS.get(name)

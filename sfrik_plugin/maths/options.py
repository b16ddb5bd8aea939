"""How a kernel mean is computed: the one options object behind every MMD-based function.

:class:`MMDOptions` holds the choices that do not change the *value* of the statistic (up to float
round-off) but change how it is obtained — estimator aside, which changes the value on purpose:

``estimator``    ``"v"`` averages φ over all N² pairs (diagonal included, the official code);
                 ``"u"`` over the N(N−1) pairs i ≠ j (unbiased).
``method``       ``"gram"``: one Gram product forward, one product backward, fused with the
                 normalisation and the invariance; ``"blocked"``: the same in row blocks,
                 memory O(block · N + N q); ``"feature"``: degree ≤ 2 kernels in feature space,
                 O(N q²); ``"reference"``: the plain autograd composition of the official formula
                 (any kernel, double backward, the slowest); ``"auto"``: ``feature`` when it applies
                 and q < N, else ``gram``, or ``blocked`` when a Gram block would exceed
                 :data:`GRAM_BLOCK_ELEMENTS`.
``block_size``   rows per block of ``"blocked"`` (``None``: :func:`auto_block_size`, as many as fit
                 in GRAM_BLOCK_ELEMENTS).
``distributed``  under a process group: ``"sharded"`` (each rank computes its rows of the global
                 Gram matrix), ``"replicated"`` (the official scheme: gather, compute all of it on
                 every rank), ``"none"`` (local batch only), ``"auto"`` (= sharded).
``group``        the process group (default: the world).

The functions taking these options (:func:`~sfrik_plugin.kernel_mean`,
:func:`~sfrik_plugin.sfrik_loss_func`, :class:`~sfrik_plugin.SFRIKLoss`, ...) accept them as
keywords and build an :class:`MMDOptions` with :meth:`MMDOptions.from_keywords`, so each option is
declared, defaulted and validated here only.

Example:
    >>> MMDOptions(method="blocked", block_size=1024).estimator
    'v'
    >>> MMDOptions.from_keywords({"methd": "gram"})
    Traceback (most recent call last):
    ...
    TypeError: unknown option 'methd'; the MMD options are: estimator, method, block_size, distributed, group
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

__all__ = [
    "ESTIMATORS",
    "METHODS",
    "DISTRIBUTED_MODES",
    "GRAM_BLOCK_ELEMENTS",
    "InvalidOption",
    "MMDOptions",
    "auto_block_size",
    "check_choice",
]

ESTIMATORS = ("v", "u")
METHODS = ("auto", "gram", "blocked", "feature", "reference")
DISTRIBUTED_MODES = ("auto", "sharded", "replicated", "none")
#: largest Gram block (elements) the automatic choice builds at once: 64 Mi floats = 256 MiB
GRAM_BLOCK_ELEMENTS = 1 << 26


class InvalidOption(ValueError):
    """A setting with a bad value: ``str()`` is ``"<name> <requirement>"``; callers that know the
    setting under another name (e.g. ``method_kwargs.mmd_method``) reword it from the two parts.

    Example:
        >>> str(InvalidOption("estimator", "must be one of ['v', 'u'], got 'w'"))
        "estimator must be one of ['v', 'u'], got 'w'"
    """

    def __init__(self, name: str, requirement: str):
        super().__init__(f"{name} {requirement}")
        self.name, self.requirement = name, requirement


def check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Raises :class:`InvalidOption` ``"<name> must be one of [...], got <value>"`` unless ``value in allowed``."""
    if value not in allowed:
        raise InvalidOption(name, f"must be one of {list(allowed)}, got {value!r}")


def auto_block_size(total_rows: int) -> int:
    """Rows per block when ``block_size`` is ``None``: as many as keep a ``rows × total_rows`` Gram
    block within :data:`GRAM_BLOCK_ELEMENTS` (at least one).

    Example:
        >>> auto_block_size(4096), auto_block_size(1 << 30)
        (16384, 1)
    """
    return max(1, GRAM_BLOCK_ELEMENTS // total_rows)


@dataclass(frozen=True)
class MMDOptions:
    """How the kernel mean is computed (module docstring); validated on construction."""

    estimator: str = "v"
    method: str = "auto"
    block_size: int | None = None
    distributed: str = "auto"
    group: Any = None

    def __post_init__(self) -> None:
        check_choice("estimator", self.estimator, ESTIMATORS)
        check_choice("method", self.method, METHODS)
        check_choice("distributed", self.distributed, DISTRIBUTED_MODES)
        block = self.block_size
        if block is not None and (isinstance(block, bool) or not isinstance(block, int) or block < 1):
            raise InvalidOption("block_size", f"must be a positive integer or None, got {block!r}")

    @property
    def unbiased(self) -> bool:
        return self.estimator == "u"

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_keywords(cls, keywords: Mapping[str, Any]) -> MMDOptions:
        """Builds the options from keyword arguments, naming any keyword that is not an option."""
        unknown = sorted(set(keywords) - set(cls.names()))
        if unknown:
            raise TypeError(
                f"unknown option {', '.join(repr(k) for k in unknown)}; the MMD options are: {', '.join(cls.names())}"
            )
        return cls(**keywords)

    def defaults(self) -> dict[str, Any]:
        """The options as a plain dict, ``group`` left out (it is not a setting one writes down)."""
        return {name: getattr(self, name) for name in self.names() if name != "group"}

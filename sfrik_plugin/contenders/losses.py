"""The built-in loss contenders: SFRIK by computation path, and solo-learn's VICReg and Barlow Twins.

What the paper claims, and what the profiler measures: SFRIK's regulariser costs O(N² q) time
and O(N²) memory (one N × N Gram matrix per view), solo-learn's VICReg and Barlow Twins losses
O(N q²) time and O(q²) memory (q × q covariance / cross-correlation matrices).

The memory models bound the exact tensor-allocation peak
(:func:`sfrik_plugin.profiler.measure.peak_memory_bytes`) of one forward + backward above the
inputs, measured on CPU in float32 for N in {32, ..., 4096} and q in {32, ..., 4096} (measured /
predicted from 0.5 to 0.97; ``tests/test_contenders.py`` checks both bounds), with s the
element size of the inputs and c that of the computation (SFRIK: at least float32):

* ``vicreg``: 9.75 q² s + 5 N q s — per view the covariance matrix, the float identity and
  boolean masks, the masked off-diagonal copy and the clone autograd keeps for its in-place
  square, and in the backward their gradients;
* ``barlow``: 9.5 q² s + 2 N q s — the cross-correlation, identity, masks, the squared
  difference and their gradients;
* ``sfrik-feature`` (degree <= 2): 5.25 q² c + 9.5 N q c — Zᵀ Z per view and its gradient, the
  normalised views and their gradients;
* ``sfrik-gram``: 4.25 N q s + 4 N² c — the input gradients and the view differences the
  backward recomputes, and per view the Gram matrix and the kernel derivative φ'(G);
* ``sfrik-blocked``: 4.25 N q s + 4 B N c with B rows per block (default: as many as fit in the
  loss's largest Gram block, so B = N unless N is large).

Example:
    >>> from sfrik_plugin.contenders import get_contender
    >>> get_contender("vicreg").memory(n=256, q=1024, element_size=4, compute_size=4, block_size=None) / 2**20
    44.0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from torch import Tensor

from ..maths.losses import sfrik_loss_func
from ..maths.options import auto_block_size
from .registry import LossContender, PlotStyle, register_contender

__all__ = ["SFRIK_PROFILE_WEIGHTS", "FEATURE_PROFILE_WEIGHTS"]

#: Legendre weights of the profiled SFRIK paths (the paper's ResNet-18 setting, L = 3).
SFRIK_PROFILE_WEIGHTS = (1.0, 40.0, 40.0)
#: The feature-space path computes degree <= 2 only: L = 2 with the same first weights.
FEATURE_PROFILE_WEIGHTS = (1.0, 40.0)


# ---------------------------------------------------------------------------------- step builders


def sfrik_step(z1: Tensor, z2: Tensor, options: Mapping[str, Any], *, method: str) -> Callable[[], Tensor]:
    """SFRIK's loss through one computation path (``gram``, ``blocked`` or ``feature``)."""
    if method == "feature":
        return lambda: sfrik_loss_func(z1, z2, method="feature", weights=FEATURE_PROFILE_WEIGHTS).loss
    block_size = options.get("block_size")
    return lambda: sfrik_loss_func(z1, z2, method=method, weights=SFRIK_PROFILE_WEIGHTS, block_size=block_size).loss


def vicreg_step(z1: Tensor, z2: Tensor, options: Mapping[str, Any]) -> Callable[[], Tensor]:
    """solo-learn's ``vicreg_loss_func`` with its defaults (25 / 25 / 1)."""
    from solo.losses.vicreg import vicreg_loss_func

    return lambda: vicreg_loss_func(z1, z2)


def barlow_step(z1: Tensor, z2: Tensor, options: Mapping[str, Any]) -> Callable[[], Tensor]:
    """solo-learn's ``barlow_loss_func`` with its defaults."""
    from solo.losses.barlow import barlow_loss_func

    return lambda: barlow_loss_func(z1, z2)


# ---------------------------------------------------------------------------------- memory models


def vicreg_memory(n: int, q: int, element_size: int, compute_size: int, block_size: int | None) -> float:
    """Bytes of solo-learn's VICReg step above its inputs (module docstring)."""
    return 9.75 * q * q * element_size + 5 * n * q * element_size


def barlow_memory(n: int, q: int, element_size: int, compute_size: int, block_size: int | None) -> float:
    """Bytes of solo-learn's Barlow Twins step above its inputs (module docstring)."""
    return 9.5 * q * q * element_size + 2 * n * q * element_size


def feature_memory(n: int, q: int, element_size: int, compute_size: int, block_size: int | None) -> float:
    """Bytes of SFRIK's feature-space step (degree <= 2) above its inputs (module docstring)."""
    return 5.25 * q * q * compute_size + 9.5 * n * q * compute_size


def gram_memory(n: int, q: int, element_size: int, compute_size: int, block_size: int | None) -> float:
    """Bytes of SFRIK's Gram-path step above its inputs (module docstring)."""
    return 4.25 * n * q * element_size + 4 * n * n * compute_size


def blocked_memory(n: int, q: int, element_size: int, compute_size: int, block_size: int | None) -> float:
    """Bytes of SFRIK's blocked-path step above its inputs; ``block_size=None`` is the loss's own
    choice (as many rows as fit in its largest Gram block)."""
    rows = block_size if block_size is not None else auto_block_size(n)
    return 4.25 * n * q * element_size + 4 * min(rows, n) * n * compute_size


# ---------------------------------------------------------------------------------- the entries

_SFRIK_DESCRIPTION = "sfrik_loss_func(method={!r}), L=3, b=(1,40,40)"

for _entry in (
    LossContender(
        name="sfrik-gram",
        label="SFRIK (gram)",
        q_exponent=1.0,
        n_exponent=2.0,
        needs_solo=False,
        description=_SFRIK_DESCRIPTION.format("gram"),
        build_step=partial(sfrik_step, method="gram"),
        memory=gram_memory,
        style=PlotStyle("tab:blue", "o", "-"),
    ),
    LossContender(
        name="sfrik-blocked",
        label="SFRIK (blocked)",
        q_exponent=1.0,
        n_exponent=2.0,
        needs_solo=False,
        description=_SFRIK_DESCRIPTION.format("blocked"),
        build_step=partial(sfrik_step, method="blocked"),
        memory=blocked_memory,
        style=PlotStyle("tab:cyan", "v", "--"),
    ),
    LossContender(
        name="sfrik-feature",
        label="SFRIK L=2 (feature)",
        q_exponent=2.0,
        n_exponent=1.0,
        needs_solo=False,
        description="sfrik_loss_func(method='feature'), L=2, b=(1,40): the O(Nq²) feature-space path",
        build_step=partial(sfrik_step, method="feature"),
        memory=feature_memory,
        style=PlotStyle("tab:purple", "D", ":"),
    ),
    LossContender(
        name="vicreg",
        label="VICReg (solo-learn)",
        q_exponent=2.0,
        n_exponent=1.0,
        needs_solo=True,
        description="solo.losses.vicreg.vicreg_loss_func, 25/25/1",
        build_step=vicreg_step,
        memory=vicreg_memory,
        style=PlotStyle("tab:red", "s", "-"),
    ),
    LossContender(
        name="barlow",
        label="Barlow Twins (solo-learn)",
        q_exponent=2.0,
        n_exponent=1.0,
        needs_solo=True,
        description="solo.losses.barlow.barlow_loss_func",
        build_step=barlow_step,
        memory=barlow_memory,
        style=PlotStyle("tab:orange", "^", "-"),
    ),
):
    register_contender(_entry)

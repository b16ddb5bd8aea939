"""LeJEPA's SIGReg (Balestriero & LeCun, arXiv 2511.08544) from lightly, as a loss contender.

SIGReg pushes the projector outputs towards an isotropic Gaussian with a *sliced* test: M random
unit directions, and on each 1-D projection the Epps–Pulley distance between the empirical
characteristic function and the Gaussian's (``knots`` points on [0, t_max], trapezoid rule). The
statistic and its exchange between ranks are lightly's (``lightly.loss.SIGReg``, package
``lightly==1.6.0``, the ``lejepa`` extra); this module adds only what the comparison needs:

* **the same slices on every rank without a broadcast.** lightly draws the q × M directions from
  the global random generator and, under a process group, broadcasts rank 0's every step. Here
  they come from a dedicated generator seeded by ``(seed, step)``, the training step shared by
  all ranks (as LeJEPA's reference code does): identical on every rank by construction, no
  communication, and the global generator the data augmentations use is left untouched. The cost
  is drawing q·M normal numbers per step on each rank, as lightly does too before overwriting them
  with rank 0's (20 ms at q = 1024, M = 1024 on one CPU thread, about a tenth of SIGReg's forward
  at N = 256), and it saves the q·M-element broadcast (32 MiB at q = 8192, M = 1024 in float32);
* **the LeJEPA loss of two views**: ``λ · SIGReg(views) + (1 − λ) · invariance``, the invariance
  being lightly's ``lejepa_invariance_loss`` (each view to the mean of the views), computed in at
  least float32 with autocast off;
* **the contender** ``sigreg`` (M = 1024, λ = 0.05, 17 knots on [0, 3]; :func:`sigreg_contender`
  makes one for another M) and the training method ``lejepa`` (the adapter's solo-learn method).

lightly is imported inside the functions that need it: without it the contender stays registered
and :func:`lightly_status` (and every call that needs lightly) says why it is unavailable.

Memory model (exact allocation peak of one forward + backward above the two inputs, measured on
CPU in float32 for N, q, M in {32 or 64, ..., 512 or 1024}, K = 17 knots; measured / predicted
from 0.88 to 0.97; a least-squares fit gives 9.97, 1.98, 1.03 and 0.59 for the four terms):
``10.25 N M K c + 2.25 N q c + 1.25 q M c + N M c`` with c the compute element size — five
(views = 2, N, M, K) tensors alive at the peak (the products x·t, their cosines and sines, and
their gradients in the backward), the stacked views' gradient, the directions with their
gradient's share, and the projections.

Example:
    >>> from sfrik_plugin.contenders import get_contender
    >>> entry = get_contender("sigreg")
    >>> entry.label, entry.n_exponent
    ('LeJEPA SIGReg M=1024 (lightly)', 1.0)
    >>> round(entry.memory(n=256, q=1024, element_size=4, compute_size=4, block_size=None) / 2**20)
    182
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..console import InputError
from .registry import LossContender, PlotStyle, TrainMethod, register_contender, register_train_method

__all__ = [
    "LIGHTLY_REQUIREMENT",
    "LEJEPA_DEFAULTS",
    "LeJEPAParts",
    "lightly_status",
    "slice_seed",
    "build_sigreg",
    "lejepa_loss",
    "sigreg_step",
    "sigreg_memory",
    "sigreg_contender",
]

#: The lightly release this module is written and tested against (the ``lejepa`` extra).
LIGHTLY_REQUIREMENT = "lightly==1.6.0"
_INSTALL = "pip install 'sfrik-plugin[lejepa]'"

#: LeJEPA's settings (the paper's and lightly's defaults): SIGReg weight λ in [0, 1], M slices,
#: knots of the frequency grid and its end t_max.
LEJEPA_DEFAULTS: dict[str, Any] = {"lambda": 0.05, "num_slices": 1024, "knots": 17, "t_max": 3.0}

_SEED_MIX = 0x9E3779B97F4A7C15  # odd 64-bit constant: distinct (seed, step) pairs give distinct seeds
_seeded_class: type | None = None


def lightly_status() -> tuple[bool, str]:
    """``(usable, reason)``: can lightly's SIGReg be used here (the package and the hook it needs)?

    Example:
        >>> usable, reason = lightly_status()
        >>> usable or "lightly" in reason
        True
    """
    try:
        from lightly.loss.lejepa_loss import SIGReg
    except ImportError as error:
        return False, f"SIGReg needs {LIGHTLY_REQUIREMENT} ({_INSTALL}): {error}"
    except Exception as error:  # a broken install fails with other errors on import
        return False, f"lightly fails to import ({type(error).__name__}: {error}); {_INSTALL}"
    if not callable(getattr(SIGReg, "_generate_unit_vectors", None)):
        import lightly

        version = getattr(lightly, "__version__", "unknown")
        return False, f"lightly {version} has no SIGReg._generate_unit_vectors to seed the slices; {_INSTALL}"
    return True, "ok"


def _require_lightly() -> None:
    usable, reason = lightly_status()
    if not usable:
        raise InputError(f"the LeJEPA/SIGReg contender is unavailable: {reason}")


def slice_seed(step: int, seed: int = 0) -> int:
    """The seed of the slices of training step ``step`` (the same on every rank).

    Example:
        >>> slice_seed(0) == slice_seed(0) != slice_seed(1)
        True
    """
    return (int(seed) * _SEED_MIX + int(step)) % 2**63


def _seeded_sigreg_class() -> type:
    """lightly's ``SIGReg`` whose directions come from a generator seeded by ``(seed, step)``."""
    global _seeded_class
    if _seeded_class is None:
        _require_lightly()
        from lightly.loss.lejepa_loss import SIGReg

        class SeededSIGReg(SIGReg):
            """lightly's SIGReg with the slices of step ``self.step`` (set before each call)."""

            def __init__(self, *, seed: int = 0, **kwargs: Any) -> None:
                super().__init__(**kwargs)
                self.seed = int(seed)
                self.step = 0

            def _generate_unit_vectors(self, device: torch.device, dtype: torch.dtype, num_features: int) -> Tensor:
                generator = torch.Generator(device=device).manual_seed(slice_seed(self.step, self.seed))
                directions = torch.randn(
                    num_features, self.num_vectors, generator=generator, device=device, dtype=dtype
                )
                return directions / directions.norm(dim=0, keepdim=True)

        _seeded_class = SeededSIGReg
    return _seeded_class


def build_sigreg(
    num_slices: int = 1024, knots: int = 17, t_max: float = 3.0, gather_distributed: bool = True, seed: int = 0
) -> nn.Module:
    """lightly's ``SIGReg`` with step-seeded slices (module docstring). ``gather_distributed``:
    under a process group the statistics are those of the global batch (lightly's autograd-aware
    all-reduce); without one it changes nothing.

    Example:
        >>> sigreg = build_sigreg(num_slices=16)
        >>> z = torch.randn(2, 32, 8)                  # (views, N, q)
        >>> sigreg.step = 3
        >>> bool(sigreg(z) == sigreg(z))               # the same slices for the same step
        True
    """
    return _seeded_sigreg_class()(
        knots=knots, t_max=t_max, num_vectors=num_slices, gather_distributed=gather_distributed, seed=seed
    )


class LeJEPAParts(NamedTuple):
    """The LeJEPA loss and its two terms (before weighting)."""

    loss: Tensor
    sigreg: Tensor
    invariance: Tensor


def lejepa_loss(views: Sequence[Tensor], sigreg: nn.Module, lambda_: float = 0.05, step: int = 0) -> LeJEPAParts:
    """``λ · SIGReg(views) + (1 − λ) · invariance`` of the projector outputs of the views (``N × q``
    each), with the slices of ``step``; computed in at least float32, autocast off.

    Example:
        >>> sigreg = build_sigreg(num_slices=16)
        >>> z1 = torch.randn(32, 8)
        >>> parts = lejepa_loss([z1, z1], sigreg, lambda_=0.05)
        >>> float(parts.invariance)                    # identical views: nothing to pull together
        0.0
    """
    from lightly.loss.lejepa_loss import lejepa_invariance_loss

    if not 0.0 <= lambda_ <= 1.0:
        raise InputError(f"LeJEPA's lambda must lie in [0, 1], got {lambda_!r}")
    stacked = torch.stack(list(views))
    if stacked.dtype in (torch.float16, torch.bfloat16):
        stacked = stacked.float()
    with torch.autocast(device_type=stacked.device.type, enabled=False):
        sigreg.step = int(step)  # type: ignore[assignment]  # an attribute of SeededSIGReg
        regulariser = sigreg(stacked)
        invariance = lejepa_invariance_loss(all_proj=stacked, global_proj=stacked)
    return LeJEPAParts(lambda_ * regulariser + (1.0 - lambda_) * invariance, regulariser, invariance)


# ---------------------------------------------------------------------------------- the contender


def sigreg_step(z1: Tensor, z2: Tensor, options: Mapping[str, Any], *, num_slices: int) -> Callable[[], Tensor]:
    """LeJEPA's loss (λ = 0.05, 17 knots on [0, 3]) with ``num_slices`` slices; ``options`` may set
    ``step`` (which slices) and ``lambda``."""
    sigreg = build_sigreg(num_slices=num_slices).to(z1.device)
    lambda_ = float(options.get("lambda", LEJEPA_DEFAULTS["lambda"]))
    step = int(options.get("step", 0))
    return lambda: lejepa_loss([z1, z2], sigreg, lambda_, step).loss


def sigreg_memory(
    n: int, q: int, element_size: int, compute_size: int, block_size: int | None, *, num_slices: int = 1024
) -> float:
    """Bytes of the LeJEPA step above its inputs (module docstring); ``block_size`` is unused."""
    knots = LEJEPA_DEFAULTS["knots"]
    m = num_slices
    return (10.25 * n * m * knots + 2.25 * n * q + 1.25 * q * m + n * m) * compute_size


def sigreg_contender(num_slices: int, name: str | None = None) -> LossContender:
    """The LeJEPA/SIGReg contender with ``num_slices`` slices (``sigreg`` is M = 1024).

    Example:
        >>> sigreg_contender(256).name
        'sigreg-m256'
    """
    if isinstance(num_slices, bool) or not isinstance(num_slices, int) or num_slices < 1:
        raise InputError(f"num_slices must be a positive integer, got {num_slices!r}")
    return LossContender(
        name=name or f"sigreg-m{num_slices}",
        label=f"LeJEPA SIGReg M={num_slices} (lightly)",
        q_exponent=1.0,
        n_exponent=1.0,
        needs_solo=False,
        description=f"lightly.loss.SIGReg (M={num_slices}, 17 knots, t_max 3, step-seeded slices) "
        "+ lejepa_invariance_loss, lambda 0.05",
        build_step=partial(sigreg_step, num_slices=num_slices),
        memory=partial(sigreg_memory, num_slices=num_slices),
        style=PlotStyle("tab:green", "X", "-"),
    )


register_contender(sigreg_contender(LEJEPA_DEFAULTS["num_slices"], name="sigreg"))
register_train_method(
    TrainMethod(
        name="lejepa",
        label="LeJEPA",
        solo_method="lejepa",
        config="lejepa",
        loss="sigreg",
        style=PlotStyle("tab:green", "X", "-"),
        # the same 2 hidden layers as VICReg's and Barlow's in the training profile, whatever the config says
        overrides=("method_kwargs.proj_hidden_layers=2",),
        projector_layers=None,  # method_kwargs.proj_hidden_layers (sfrik_plugin.solo.lejepa)
        projector_last_bias=True,  # LeJEPA's reference projector keeps it
    )
)

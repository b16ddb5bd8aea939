"""The cost in N: SFRIK's O(N² q) against SIGReg's O(N q M), the flop model and the crossover.

Counted in floating-point operations of one forward + backward of the regulariser, two views, a
transcendental (cos, sin) counted as one operation:

* **SFRIK** (Gram path, :mod:`sfrik_plugin.maths.losses`): per view one Gram product forward
  (``2 N² q``) and one ``N × N`` by ``N × q`` product backward (``2 N² q``), plus the kernel φ and
  its derivative φ' on every Gram entry (:data:`SFRIK_OPS_PER_ENTRY` each): ``8 N² q + 2 a N²``
  (the blocked path recomputes its row blocks' Gram products in the backward: ``12 N² q``).
  Sharded over W ranks (rows of the local ``n = N / W`` embeddings against the global batch) a
  rank does ``1 / W`` of it; replicated (the official scheme) every rank does all of it.
* **SIGReg** (lightly's, :mod:`sfrik_plugin.contenders.sigreg`): per view the projections on the
  M slices (``2 N q M``) and their gradient (``2 N q M``; the slices need none), plus on every
  (sample, slice, knot) point the product x·t, its cosine and sine, their sums and the backward
  through them (:data:`SIGREG_OPS_PER_POINT`): ``8 N q M + 2 b N M K``. Under DDP each rank
  projects its own rows and exchanges ``2 M K`` sums: ``1 / W`` of it per rank.

Setting the two equal gives the crossover batch above which SIGReg is cheaper::

    N* = M · (8 q + 2 b K) / (8 q + 2 a)          (≈ M for q ≫ K)

the same per rank for SFRIK's sharded path (both sides divide by W), and ``N* / W`` against the
replicated Gram. :func:`measured_crossover` finds the measured one by log–log interpolation of
the time ratio over an N-sweep.

Example:
    >>> round(predicted_crossover(q=1024, slices=1024))
    1064
    >>> predicted_crossover(q=1024, slices=1024, world_size=4, mode="replicated") < 300
    True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..console import InputError
from ..contenders.memory import MIB, SAFETY_FACTOR, fit_verdict, format_bytes, predict_loss_total_bytes
from ..contenders.registry import LossContender, get_contender
from ..contenders.sigreg import LEJEPA_DEFAULTS, sigreg_contender

__all__ = [
    "SFRIK_OPS_PER_ENTRY",
    "SIGREG_OPS_PER_POINT",
    "SFRIK_PATHS",
    "sfrik_flops",
    "sigreg_flops",
    "predicted_crossover",
    "measured_crossover",
    "SweepCell",
    "sweep_cells",
    "sharded_rank_bytes",
    "sigreg_total_bytes",
    "crossovers",
    "describe_skip",
]

#: Operations per Gram entry and view for φ and φ' (Legendre degree 3 by Horner, its derivative,
#: the weights): about 5 multiply-adds each.
SFRIK_OPS_PER_ENTRY = 10
#: Operations per (sample, slice, knot) point and view: x·t, cos, sin, two sums forward; the
#: chain rule through cos and sin (4 products, 2 sums) backward.
SIGREG_OPS_PER_POINT = 10
#: SFRIK's paths in the sweep (``sharded`` runs in gloo processes, one per rank).
SFRIK_PATHS = ("gram", "blocked", "sharded")
_MODES = ("sharded", "replicated")


def _positive(**values: float) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 1:
            raise InputError(f"{name} must be a positive integer, got {value!r}")


def sfrik_flops(
    n: int, q: int, world_size: int = 1, mode: str = "sharded", path: str = "gram", elementwise: bool = True
) -> float:
    """Operations of SFRIK's forward + backward per rank, global batch ``n`` (module docstring).
    ``path="blocked"`` recomputes each row block's Gram product in the backward: ``12 N² q``.
    ``elementwise=False``: the matrix products alone (what torch's flop counter counts).

    Example:
        >>> sfrik_flops(256, 1024) == 8 * 256**2 * 1024 + 2 * SFRIK_OPS_PER_ENTRY * 256**2
        True
        >>> sfrik_flops(256, 1024, world_size=2) * 2 == sfrik_flops(256, 1024)
        True
    """
    _positive(n=n, q=q, world_size=world_size)
    if mode not in _MODES:
        raise InputError(f"mode must be one of {list(_MODES)}, got {mode!r}")
    if path not in ("gram", "blocked"):
        raise InputError(f"path must be 'gram' or 'blocked', got {path!r}")
    products = (12.0 if path == "blocked" else 8.0) * n * n * q
    total = products + (2.0 * SFRIK_OPS_PER_ENTRY * n * n if elementwise else 0.0)
    return total / world_size if mode == "sharded" else total


def sigreg_flops(
    n: int, q: int, slices: int, knots: int = LEJEPA_DEFAULTS["knots"], world_size: int = 1, elementwise: bool = True
) -> float:
    """Operations of SIGReg's forward + backward per rank, global batch ``n`` (module docstring);
    ``elementwise=False``: the matrix products alone.

    Example:
        >>> sigreg_flops(256, 1024, 1024) == 8 * 256 * 1024 * 1024 + 2 * SIGREG_OPS_PER_POINT * 256 * 1024 * 17
        True
    """
    _positive(n=n, q=q, slices=slices, knots=knots, world_size=world_size)
    points = 2.0 * SIGREG_OPS_PER_POINT * n * slices * knots if elementwise else 0.0
    return (8.0 * n * q * slices + points) / world_size


def predicted_crossover(
    q: int, slices: int, knots: int = LEJEPA_DEFAULTS["knots"], world_size: int = 1, mode: str = "sharded"
) -> float:
    """The global batch N at which SIGReg's operations per rank equal SFRIK's (above it SIGReg is
    cheaper): ``M (8 q + 2 b K) / (8 q + 2 a)``, divided by W against the replicated Gram.

    Example:
        >>> n = predicted_crossover(q=8192, slices=256)
        >>> math.isclose(sfrik_flops(round(n), 8192), sigreg_flops(round(n), 8192, 256), rel_tol=1e-2)
        True
    """
    _positive(q=q, slices=slices, knots=knots, world_size=world_size)
    if mode not in _MODES:
        raise InputError(f"mode must be one of {list(_MODES)}, got {mode!r}")
    crossing = slices * (8.0 * q + 2.0 * SIGREG_OPS_PER_POINT * knots) / (8.0 * q + 2.0 * SFRIK_OPS_PER_ENTRY)
    return crossing / world_size if mode == "replicated" else crossing


def measured_crossover(
    sizes: Sequence[int], sfrik_seconds: Sequence[float | None], sigreg_seconds: Sequence[float | None]
) -> dict[str, Any]:
    """Where the measured time of SFRIK overtakes SIGReg's over an N-sweep.

    ``{"n": N*, "how": ...}``: N* interpolated linearly in (log N, log ratio) between the last
    size where SFRIK is faster and the first where it is not (the first such change from below);
    ``n`` is ``None`` with ``how`` saying which is faster over the whole measured range. Where SFRIK
    is faster throughout, ``extrapolated`` = N_last × ratio_last: where the ratio reaches 1 if it
    keeps falling like 1 / N, as O(N² q) against O(N q M) says (``how`` gives the measured slope).

    Example:
        >>> found = measured_crossover([256, 512, 1024], [1.0, 4.0, 16.0], [2.0, 4.0, 8.0])
        >>> round(found["n"], 6), found["how"]
        (512.0, 'interpolated between N = 256 and N = 512')
        >>> found = measured_crossover([64, 128], [1.0, 2.0], [4.0, 4.0])
        >>> found["n"], found["how"]
        (None, 'SFRIK faster at every measured N (64 to 128); time ratio SIGReg/SFRIK at N = 128: 2; N* extrapolated as N x ratio: 256 (measured log-log slope of the ratio over the largest sizes: -1.00; 1/N is -1)')
    """
    if not len(sizes) == len(sfrik_seconds) == len(sigreg_seconds):
        raise InputError("sizes, sfrik_seconds and sigreg_seconds must have the same length")
    points = sorted(
        (int(n), math.log(b / a))
        for n, a, b in zip(sizes, sfrik_seconds, sigreg_seconds)
        if a and b and a > 0 and b > 0
    )
    if not points:
        return {"n": None, "how": "no size where both were measured"}
    for (n0, r0), (n1, r1) in zip(points, points[1:]):
        if r0 > 0 >= r1:  # log(SIGReg / SFRIK) goes from positive (SFRIK faster) to <= 0
            where = math.exp(math.log(n0) + (math.log(n1) - math.log(n0)) * r0 / (r0 - r1))
            return {"n": where, "how": f"interpolated between N = {n0} and N = {n1}"}
    first, last = points[0], points[-1]
    if first[1] <= 0:
        return {
            "n": None,
            "how": f"SIGReg at least as fast from the smallest measured N ({first[0]}); "
            f"time ratio SIGReg/SFRIK there: {math.exp(first[1]):.2g}",
        }
    found: dict[str, Any] = {
        "n": None,
        "how": f"SFRIK faster at every measured N ({first[0]} to {last[0]}); "
        f"time ratio SIGReg/SFRIK at N = {last[0]}: {math.exp(last[1]):.2g}",
    }
    # beyond the sweep: O(N² q) against O(N q M) makes the ratio fall like 1 / N, so it reaches 1
    # at N_last · ratio_last (the nearest the crossing can be if the ratio falls no faster)
    found["extrapolated"] = last[0] * math.exp(last[1])
    found["how"] += f"; N* extrapolated as N x ratio: {found['extrapolated']:.0f}"
    tail = points[-3:]
    if len(tail) >= 2:  # the measured slope of the log ratio, for comparison
        xs, ys = [math.log(n) for n, _ in tail], [r for _, r in tail]
        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
        slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sum((x - mx) ** 2 for x in xs)
        found["how"] += f" (measured log-log slope of the ratio over the largest sizes: {slope:.2f}; 1/N is -1)"
    return found


# ---------------------------------------------------------------------------------- the grid


@dataclass(frozen=True)
class SweepCell:
    """One configuration of the N-sweep: a ``method`` (``sfrik-gram``, ``sfrik-blocked``,
    ``sfrik-sharded`` or ``sigreg-m<M>``), the global batch ``n``, the dimension ``q``, the memory
    it is predicted to need (bytes, per rank for the sharded path) and whether that fits."""

    method: str
    n: int
    q: int
    slices: int | None
    predicted_bytes: int
    fits: bool
    verdict: str
    block_size: int | None = None
    world_size: int = 1
    contender: LossContender | None = field(default=None, compare=False, repr=False)

    @property
    def flops(self) -> float:
        """Operations per rank of one forward + backward (module docstring)."""
        if self.slices is not None:
            return sigreg_flops(self.n, self.q, self.slices, world_size=self.world_size)
        path = "blocked" if self.method == "sfrik-blocked" else "gram"
        return sfrik_flops(self.n, self.q, self.world_size, path=path)

    def base_row(self) -> dict[str, Any]:
        """The CSV fields that describe the configuration."""
        return {
            "method": self.method,
            "N": self.n,
            "q": self.q,
            "M": self.slices,
            "block_size": self.block_size,
            "world_size": self.world_size,
            "gflop": self.flops / 1e9,
            "predicted_mib": self.predicted_bytes / MIB,
        }


def sigreg_total_bytes(n: int, q: int, slices: int) -> int:
    """SIGReg's memory model (:func:`~sfrik_plugin.contenders.sigreg.sigreg_memory`) plus its two
    float32 ``N × q`` inputs: what must fit.

    Example:
        >>> round(sigreg_total_bytes(8192, 1024, 4096) / 2**30, 1)
        22.1
    """
    entry = sigreg_contender(slices)
    return int(entry.memory(n=n, q=q, element_size=4, compute_size=4, block_size=None) + 2 * n * q * 4)


def sharded_rank_bytes(n: int, q: int, world_size: int) -> int:
    """Per-rank memory of SFRIK's sharded path, float32, global batch ``n``: the local inputs, the
    gathered ``N × q`` views (2), and the Gram path's model on the local ``n / W × N`` block.

    Example:
        >>> sharded_rank_bytes(2048, 8192, 2) / MIB
        360.0
    """
    _positive(n=n, q=q, world_size=world_size)
    local = n // world_size
    return int((2 + 4.25) * local * q * 4 + 2 * n * q * 4 + 4 * local * n * 4)


def sweep_cells(
    sizes: Sequence[int],
    dims: Sequence[int],
    slices: Sequence[int],
    budget: int,
    paths: Sequence[str] = SFRIK_PATHS,
    block_size: int = 512,
    world_size: int = 2,
) -> list[SweepCell]:
    """Every configuration of the sweep with its memory prediction against ``budget`` (× the
    safety factor, as the q-sweep does); ``sharded`` needs ``N`` divisible by ``world_size``.

    Example:
        >>> cells = sweep_cells([64, 8192], [1024], [4096], budget=8 * 2**30, paths=["gram"])
        >>> [(c.method, c.n, c.fits) for c in cells]
        [('sfrik-gram', 64, True), ('sfrik-gram', 8192, True), ('sigreg-m4096', 64, True), ('sigreg-m4096', 8192, False)]
        >>> cells[-1].verdict
        'does not fit (predicted 22.1 GiB x 1.5 > budget 8.0 GiB)'
    """
    unknown = sorted(set(paths) - set(SFRIK_PATHS))
    if unknown:
        raise InputError(f"unknown SFRIK path(s) {unknown}; known: {list(SFRIK_PATHS)}")
    _positive(block_size=block_size, world_size=world_size)
    cells = []
    for q in dims:
        for path in (p for p in SFRIK_PATHS if p in paths):
            for n in sizes:
                if path == "sharded":
                    if n % world_size or n < 2 * world_size:
                        continue
                    predicted = sharded_rank_bytes(n, q, world_size)
                    fits, verdict = fit_verdict(predicted, budget // world_size, SAFETY_FACTOR)
                    cells.append(SweepCell("sfrik-sharded", n, q, None, predicted, fits, verdict, None, world_size))
                    continue
                rows = block_size if path == "blocked" else None
                predicted = predict_loss_total_bytes(f"sfrik-{path}", n, q, block_size=rows)
                fits, verdict = fit_verdict(predicted, budget, SAFETY_FACTOR)
                cells.append(
                    SweepCell(
                        f"sfrik-{path}", n, q, None, predicted, fits, verdict, rows, 1, get_contender(f"sfrik-{path}")
                    )
                )
        for m in slices:
            for n in sizes:
                predicted = sigreg_total_bytes(n, q, m)
                fits, verdict = fit_verdict(predicted, budget, SAFETY_FACTOR)
                cells.append(SweepCell(f"sigreg-m{m}", n, q, m, predicted, fits, verdict, None, 1, sigreg_contender(m)))
    return cells


def crossovers(rows: Sequence[Mapping[str, Any]], reference: str = "sfrik-gram") -> list[dict[str, Any]]:
    """Per (q, M): the predicted and the measured crossover of ``reference`` against SIGReg.

    Example:
        >>> rows = [dict(method=m, N=n, q=64, M=s, status="ok", median_s=t) for m, s, n, t in
        ...         [("sfrik-gram", None, 8, 1.0), ("sfrik-gram", None, 16, 4.0),
        ...          ("sigreg-m8", 8, 8, 2.0), ("sigreg-m8", 8, 16, 2.0)]]
        >>> crossovers(rows)[0]["measured_n"]
        11.3
    """
    found = []
    for q in sorted({int(r["q"]) for r in rows}):
        timed = {
            (r["method"], int(r["N"])): float(r["median_s"])
            for r in rows
            if int(r["q"]) == q and r.get("status") == "ok" and r.get("median_s")
        }
        for m in sorted({int(r["M"]) for r in rows if r.get("M") not in (None, "")}):
            sizes = sorted({n for (method, n) in timed if method in (reference, f"sigreg-m{m}")})
            result = measured_crossover(
                sizes, [timed.get((reference, n)) for n in sizes], [timed.get((f"sigreg-m{m}", n)) for n in sizes]
            )
            found.append(
                {
                    "q": q,
                    "M": m,
                    "predicted_n": round(predicted_crossover(q, m), 1),
                    "measured_n": None if result["n"] is None else round(result["n"], 1),
                    "extrapolated_n": round(result["extrapolated"], 1) if "extrapolated" in result else None,
                    "how": result["how"],
                }
            )
    return found


def describe_skip(cell: SweepCell) -> str:
    """The reason given for a configuration that is not run, as the q-sweep words it.

    Example:
        >>> cell = sweep_cells([8192], [1024], [4096], budget=8 * 2**30, paths=[])[0]
        >>> describe_skip(cell).startswith("does not fit (predicted 22.1 GiB")
        True
    """
    return cell.verdict if not cell.fits else f"fits ({format_bytes(cell.predicted_bytes)})"

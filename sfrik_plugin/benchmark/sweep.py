"""The q-sweep plan: every method at every q under one matched protocol, at equal epochs and at equal time.

* **Equal epochs.** Each method pretrains with the setting chosen on the validation split at the
  config's q (``projector.q``, the *reference* q), for the config's epochs, at every q of
  ``sweep.qs``. Keys listed in ``sweep.scale_with_q`` are multiplied by ``(q / q_ref) ** exponent``:
  SFRIK's invariance term is a mean over the q coordinates of unit vectors, so it shrinks like 1/q,
  and the paper's parameter ``lambda = mmd_coeff * q / sim_coeff`` stays fixed when ``sim_coeff``
  grows like q (exponent 1). Barlow Twins' off-diagonal term sums q(q-1) squared correlations against
  q diagonal ones, so its weight ``lamb`` shrinks like 1/q (exponent -1; unscaled, Barlow Twins fell
  below random initialisation at q = 4096 on Fashion-MNIST). VICReg's covariance term sums q(q-1)
  squared covariances divided by q; with a batch of N < q its sample covariance has rank < N, so the
  term cannot fall below about q/N - 1 and, unscaled, outweighs the invariance more and more as q
  grows (on Fashion-MNIST, batch 64: 79.7 % linear at q = 1024, 73.7 % at q = 8192, barely above
  random initialisation). Its weight ``cov_loss_weight`` (not tuned: 1 at the reference q) shrinks
  like 1/q: a key the grid does not set is written ``[exponent, value at the reference q]``.
* **Equal time.** Every method gets the same wall-clock budget T(q) and as many steps as fit in it:
  ``sweep.equal_time.budget`` is either seconds, or a method name — then T(q) is the pretraining
  wall time of that method's equal-epoch run at q. The number of steps comes from the method's own
  measured rate at that q (steps / wall time of its equal-epoch run, start-up included) and is
  given to Lightning as ``max_steps`` with the schedule built for it. This is used instead of
  Lightning's ``max_time`` because a step budget keeps every run deterministic and resumable (a
  killed run resumes to the same weights; ``max_time`` depends on the load of the moment) and lets
  every method finish its learning-rate schedule (``max_time`` would cut the slow methods early in
  a schedule planned for more steps). The realised wall time is recorded next to the budget.

Example:
    >>> scaled_setting({"method_kwargs.sim_coeff": 4000.0}, 4096, 1024, {"method_kwargs.sim_coeff": 1.0})
    {'method_kwargs.sim_coeff': 16000.0}
    >>> equal_time_steps(60.0, {"steps": 140, "wall_time_s": 42.0})
    200
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from typing import Any

from ..files.records import read_json
from .plan import Run
from .stages import pretraining_complete

__all__ = [
    "reference_q",
    "sweep_qs",
    "sweep_seed",
    "scaled_setting",
    "sweep_run",
    "equal_time_budget",
    "equal_time_steps",
    "equal_time_run",
]


def reference_q(cfg: Mapping[str, Any]) -> int:
    """The q at which hyper-parameters are tuned and the main table is made (``projector.q``)."""
    return int(cfg["projector"]["q"])


def sweep_qs(cfg: Mapping[str, Any]) -> list[int]:
    """The sweep's embedding dimensions, ascending (empty without a ``sweep:`` block)."""
    return sorted({int(q) for q in (cfg.get("sweep") or {}).get("qs") or []})


def sweep_seed(cfg: Mapping[str, Any]) -> int:
    """The one seed of every sweep point (default: the first seed, so the reference-q point is a final run)."""
    return int((cfg.get("sweep") or {}).get("seed", cfg["seeds"][0]))


def _rounded(value: float, original: Any) -> int | float:
    rounded = float(f"{value:.6g}")  # readable folder names; 6 digits is far below the seed noise
    return int(rounded) if isinstance(original, int) and rounded.is_integer() else rounded


def scaled_setting(
    setting: Mapping[str, Any], q: int, q_ref: int, exponents: Mapping[str, float] | None
) -> dict[str, Any]:
    """``setting`` with each key of ``exponents`` multiplied by ``(q / q_ref) ** exponent``
    (unchanged at ``q == q_ref``, so the reference point is the tuned setting itself)."""
    out = dict(setting)
    if q == q_ref:
        return out
    for key, rule in (exponents or {}).items():
        if isinstance(rule, (list, tuple)):  # [exponent, value at q_ref]: a key the grid does not tune
            exponent, base = float(rule[0]), out.get(key, rule[1])
        elif key in out:
            exponent, base = float(rule), out[key]
        else:
            raise KeyError(
                f"sweep.scale_with_q names {key!r}, which the chosen setting {dict(setting)} does not have; "
                f"give its value at the reference q as [exponent, value]"
            )
        out[key] = _rounded(base * (q / q_ref) ** exponent, base)
    return out


def sweep_run(
    cfg: Mapping[str, Any],
    root: str | os.PathLike,
    method: str,
    chosen: Mapping[str, Any],
    q: int,
    steps: int | None = None,
) -> Run:
    """The run of ``method`` at ``q`` (``steps``: an equal-time step budget; None: the config's epochs)."""
    q_ref = reference_q(cfg)
    exponents = ((cfg.get("sweep") or {}).get("scale_with_q") or {}).get(method)
    setting = scaled_setting(chosen, q, q_ref, exponents)
    return Run(root, method, setting, sweep_seed(cfg), q=None if q == q_ref else q, steps=steps)


def equal_time_budget(
    cfg: Mapping[str, Any], root: str | os.PathLike, chosen: Mapping[str, Mapping[str, Any] | None], q: int
) -> tuple[float | None, str]:
    """``(seconds, how)`` of the equal-time budget at ``q``; seconds is None when there is none
    (equal-time runs off, or the reference method's run at q did not fit or has not finished)."""
    budget = ((cfg.get("sweep") or {}).get("equal_time") or {}).get("budget")
    if budget is None:
        return None, "equal-time runs are off (sweep.equal_time.budget: null)"
    if not isinstance(budget, str):
        return float(budget), f"{float(budget):g} s for every method"
    if chosen.get(budget) is None:
        return None, f"no budget: {budget} has no chosen setting"
    reference = sweep_run(cfg, root, budget, chosen[budget] or {}, q).dir
    record = read_json(reference / "pretrain.json") if pretraining_complete(reference) else None
    if record is None or not record.get("wall_time_s"):
        return None, f"no budget: {budget}'s equal-epoch run at q={q} did not run"
    seconds = float(record["wall_time_s"])
    return seconds, f"{seconds:.0f} s = {budget}'s equal-epoch pretraining time at q={q}"


def equal_time_steps(budget_s: float, record: Mapping[str, Any]) -> int:
    """Steps that fit in ``budget_s`` at the rate of a finished pretraining (``steps``, ``wall_time_s``), at least 1."""
    steps, wall = int(record["steps"]), float(record["wall_time_s"])
    if steps <= 0 or wall <= 0:
        raise ValueError(f"a pretraining record needs steps > 0 and wall_time_s > 0, got {steps} and {wall}")
    # the small epsilon keeps floor(T * steps / T) == steps for the budget's own method
    return max(1, math.floor(budget_s * steps / wall + 1e-6))


def equal_time_run(
    cfg: Mapping[str, Any],
    root: str | os.PathLike,
    method: str,
    chosen: Mapping[str, Any],
    q: int,
    budget_s: float,
) -> tuple[Run | None, str]:
    """``(run, note)``: the equal-time run of ``method`` at ``q``; None when its equal-epoch run has
    no record (did not fit, failed, not finished). When the budget buys exactly the equal-epoch
    run's steps, that run is the equal-time run too (nothing new to train)."""
    base = sweep_run(cfg, root, method, chosen, q)
    record = read_json(base.dir / "pretrain.json") if pretraining_complete(base.dir) else None
    if record is None or not record.get("steps"):
        return None, f"no rate: the equal-epoch run {base.name} has no finished pretraining"
    steps = equal_time_steps(budget_s, record)
    if steps == int(record["steps"]):
        return base, f"{steps} steps (= its equal-epoch run)"
    return sweep_run(
        cfg, root, method, chosen, q, steps=steps
    ), f"{steps} steps at {record['steps'] / record['wall_time_s']:.2f} steps/s"

"""What the benchmark runs: one :class:`Run` per (method, setting, q, step budget, seed), and its folder.

Layout under the output folder::

    runs/<method>/<name>/seed<k>/      name = <setting>[,q=<q>][,steps=<S>]
        spec.json        what this run is (method, hydra overrides, seed, data); a mismatch is an error
        fit.json         the memory verdict (predicted bytes against the budget)
        ckpt/            solo-learn checkpoints (the newest one only)
        backbone.pt      the trained (or, for random init, untouched) backbone weights
        attempts.json    start/end of every pretraining attempt (an interrupted one has no end)
        pretrain.json    wall time, steps, images/s, peak memory of the pretraining, final metrics
        eval_val.json    linear probe and kNN on the validation split (hyper-parameter selection)
        done.json        marker: pretraining and validation evaluation finished
        eval_test.json   linear probe and kNN on the test split (marker of its own)
        eval_semi.json   semi-supervised fine-tuning on the test split (marker of its own)
        failed.json      the last failure of a sweep run (removed when it is retried)

``q`` is in the name only when it differs from the config's ``projector.q`` and ``steps`` only for
equal-time runs, so the q-sweep's point at the config's q *is* the tuning/final run of that
setting and seed (same folder, same spec, computed once). Everything here is pure path and name
arithmetic; nothing is read or written.

Example:
    >>> run = Run("out", "sfrik", {"method_kwargs.sim_coeff": 4000.0}, seed=0, q=4096)
    >>> run.dir.as_posix()
    'out/runs/sfrik/sim_coeff=4000.0,q=4096/seed0'
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..contenders.overrides import hydra_value as format_value  # the one translation of a value into hydra

__all__ = [
    "RANDOM_INIT",
    "format_value",
    "setting_name",
    "setting_overrides",
    "Run",
    "method_grid",
    "tune_seeds",
    "final_runs",
]

#: the untrained-backbone baseline's method name
RANDOM_INIT = "random_init"


def setting_name(setting: Mapping[str, Any]) -> str:
    """A stable, file-system-safe name of a hyper-parameter setting (``default`` when empty).

    Example:
        >>> setting_name({"method_kwargs.sim_coeff": 4000.0, "method_kwargs.mmd_coeff": 1.0})
        'mmd_coeff=1.0,sim_coeff=4000.0'
    """
    if not setting:
        return "default"
    parts = [f"{key.split('.')[-1]}={format_value(setting[key])}" for key in sorted(setting)]
    return re.sub(r"[^A-Za-z0-9_.=,+-]", "_", ",".join(parts))


def setting_overrides(setting: Mapping[str, Any]) -> list[str]:
    """Hydra overrides (``++key=value``) of a setting, in sorted key order.

    Example:
        >>> setting_overrides({"method_kwargs.lamb": 0.0051})
        ['++method_kwargs.lamb=0.0051']
    """
    return [f"++{key}={format_value(setting[key])}" for key in sorted(setting)]


class Run:
    """One pretraining (or random-init) run and its folder.

    ``q``: the embedding dimension when it differs from the config's (None: the config's);
    ``steps``: a step budget (equal-time runs; None: the config's epochs).
    """

    def __init__(
        self,
        root: str | os.PathLike,
        method: str,
        setting: Mapping[str, Any],
        seed: int,
        q: int | None = None,
        steps: int | None = None,
    ):
        self.method, self.setting, self.seed = method, dict(setting), int(seed)
        self.q = None if q is None else int(q)
        self.steps = None if steps is None else int(steps)
        self.setting_label = setting_name(self.setting)
        name = self.setting_label
        if self.q is not None:
            name = f"q={self.q}" if name == "default" else f"{name},q={self.q}"
        if self.steps is not None:
            name = f"steps={self.steps}" if name == "default" else f"{name},steps={self.steps}"
        self.name = name
        self.dir = Path(root) / "runs" / method / name / f"seed{self.seed}"

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.method, self.name, self.seed)

    def __repr__(self) -> str:
        return f"Run({self.method}, {self.name}, seed={self.seed})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Run) and self.dir == other.dir

    def __hash__(self) -> int:
        return hash(self.dir)


def method_grid(cfg: Mapping[str, Any], method: str) -> list[dict[str, Any]]:
    """The settings a method is tuned over (one empty setting when it has no grid)."""
    grid = cfg["methods"][method].get("grid") or [{}]
    return [dict(s or {}) for s in grid]


def tune_seeds(cfg: Mapping[str, Any]) -> list[int]:
    """The seeds whose mean validation accuracy selects a setting (default: the first two seeds)."""
    return [int(s) for s in cfg.get("tune_seeds") or cfg["seeds"][:2]]


def final_runs(
    cfg: Mapping[str, Any], root: str | os.PathLike, chosen: Mapping[str, Mapping[str, Any] | None]
) -> list[Run]:
    """The random-initialisation baseline (cheap), then seed by seed the chosen setting of every
    method, so that an interrupted benchmark has the same seeds for every method. Methods without
    a chosen setting (none fitted in memory) have no final runs."""
    seeds: Sequence[int] = cfg["seeds"]
    runs = [Run(root, RANDOM_INIT, {}, seed) for seed in seeds] if cfg.get("random_init", True) else []
    return runs + [
        Run(root, m, chosen[m] or {}, seed) for seed in seeds for m in cfg["methods"] if chosen.get(m) is not None
    ]

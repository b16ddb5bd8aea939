"""LeJEPA (Balestriero & LeCun, arXiv 2511.08544) as a solo-learn method: ``LeJEPA(BaseMethod)``.

Select it with ``method: lejepa``; the packaged ``<dataset>/lejepa.yaml`` configs differ from the
same folder's ``sfrik.yaml`` only in ``method`` and ``method_kwargs`` (same backbone, projector
widths, optimiser and schedule). Two views; the projector is (Linear → BatchNorm1d → ReLU) per
hidden layer then a Linear with bias, as in LeJEPA's reference code; the loss is
``λ · SIGReg + (1 − λ) · invariance`` on the projector outputs — lightly's ``SIGReg`` and
``lejepa_invariance_loss`` (each view to the mean of the views), through
:func:`sfrik_plugin.contenders.sigreg.lejepa_loss`.

Under DDP SIGReg uses the global batch (lightly's ``gather_distributed``: its M × knots sums are
all-reduced with autograd) and the slices are drawn from a generator seeded by the global step,
so every rank uses the same ones with no broadcast (cost: q·M normal draws per step and rank);
the invariance is a per-rank mean, which DDP's gradient average turns into the global mean.
Needs lightly (``pip install 'sfrik-plugin[lejepa]'``); without it building the method is one
error line.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import omegaconf
import torch
from solo.methods.base import BaseMethod

from ..console import InputError
from ..contenders.projector import ProjectorDims, projector_dims
from ..contenders.sigreg import LEJEPA_DEFAULTS, build_sigreg, lejepa_loss, lightly_status
from .checkpointing import plain_data
from .method import build_projector

__all__ = [
    "LeJEPA",
    "LEJEPA_METHOD_DEFAULTS",
    "LEJEPA_METHOD_KWARGS_HELP",
    "LEJEPA_PROJECTOR_LAST_BIAS",
    "check_lejepa_method_kwargs",
]

#: LeJEPA's reference projector (torchvision's MLP) keeps the bias of its last Linear.
LEJEPA_PROJECTOR_LAST_BIAS = True

#: Every ``method_kwargs`` key LeJEPA accepts, with its default (projector: SFRIK's paper widths).
LEJEPA_METHOD_DEFAULTS: dict[str, Any] = {
    "proj_hidden_dim": 8192,
    "proj_hidden_layers": 2,
    "proj_output_dim": 8192,
    **LEJEPA_DEFAULTS,
}

LEJEPA_METHOD_KWARGS_HELP: dict[str, str] = {
    "proj_hidden_dim": "width of the projector's hidden layers: an int, or a list of widths (one per layer)",
    "proj_hidden_layers": "number of Linear-BN-ReLU hidden layers, an integer >= 0",
    "proj_output_dim": "q, the dimension of the projector output SIGReg regularises; >= 1",
    "lambda": "weight of SIGReg in [0, 1]; the invariance gets 1 - lambda",
    "num_slices": "M, random directions of SIGReg per step (the same on every rank); >= 1",
    "knots": "points of SIGReg's frequency grid on [0, t_max]; >= 2",
    "t_max": "end of SIGReg's frequency grid; > 0",
}
assert set(LEJEPA_METHOD_KWARGS_HELP) == set(LEJEPA_METHOD_DEFAULTS)


def _integer(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _projector(in_dim: int, kwargs: Mapping[str, Any]) -> ProjectorDims:
    """The projector's widths (checked by :func:`~sfrik_plugin.contenders.projector_dims`); errors
    name ``method_kwargs.<key>``."""
    try:
        return projector_dims(
            in_dim,
            kwargs["proj_hidden_dim"],
            kwargs["proj_output_dim"],
            layers=kwargs["proj_hidden_layers"],
            last_bias=LEJEPA_PROJECTOR_LAST_BIAS,
        )
    except ValueError as error:
        raise InputError(f"method_kwargs.{error}") from None


def check_lejepa_method_kwargs(method_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """LeJEPA's ``method_kwargs`` checked and completed with the defaults; a bad one is an
    :class:`~sfrik_plugin.console.InputError` (one line) naming the key.

    Example:
        >>> check_lejepa_method_kwargs({"lambda": 0.1})["num_slices"]
        1024
        >>> check_lejepa_method_kwargs({"lambda": 0.1, "slices": 256})
        Traceback (most recent call last):
        ...
        sfrik_plugin.console.InputError: unknown method_kwargs key(s) for method 'lejepa': slices. Allowed keys: knots, lambda, num_slices, proj_hidden_dim, proj_hidden_layers, proj_output_dim, t_max
    """
    user = dict(plain_data(method_kwargs) or {})
    unknown = sorted(set(user) - set(LEJEPA_METHOD_DEFAULTS))
    if unknown:
        raise InputError(
            f"unknown method_kwargs key(s) for method 'lejepa': {', '.join(unknown)}. "
            f"Allowed keys: {', '.join(sorted(LEJEPA_METHOD_DEFAULTS))}"
        )
    kwargs: dict[str, Any] = {**LEJEPA_METHOD_DEFAULTS, **user}
    if isinstance(kwargs["proj_hidden_dim"], (list, tuple)) and "proj_hidden_layers" not in user:
        kwargs["proj_hidden_layers"] = len(kwargs["proj_hidden_dim"])
    _projector(1, kwargs)
    minimum = {"num_slices": 1, "knots": 2}
    for key, low in minimum.items():
        if not _integer(kwargs[key], low):
            raise InputError(f"method_kwargs.{key} must be an integer >= {low}, got {kwargs[key]!r}")
    for key, bottom, top in (("lambda", 0.0, 1.0), ("t_max", 0.0, math.inf)):
        value: Any = kwargs[key]
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
        if not number or not (bottom <= value <= top) or (key == "t_max" and value <= 0):
            allowed = "in [0, 1]" if key == "lambda" else "a finite number > 0"
            raise InputError(f"method_kwargs.{key} must be {allowed}, got {value!r}")
        kwargs[key] = float(value)
    return kwargs


class LeJEPA(BaseMethod):
    """LeJEPA on solo-learn's ``BaseMethod`` (module docstring); ``method_kwargs`` in
    :data:`LEJEPA_METHOD_DEFAULTS`."""

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)  # calls add_and_assert_specific_cfg, which checks method_kwargs
        if self.num_large_crops != 2 or self.num_small_crops:
            raise InputError(
                "method 'lejepa' takes exactly 2 large crops and no small ones, got "
                f"data.num_large_crops={self.num_large_crops}, data.num_small_crops={self.num_small_crops}"
            )
        usable, reason = lightly_status()
        if not usable:
            raise InputError(f"method 'lejepa' is unavailable: {reason}")
        kwargs = check_lejepa_method_kwargs(cfg.method_kwargs)
        self.lambda_: float = kwargs["lambda"]
        self.projector = build_projector(_projector(self.features_dim, kwargs))
        self.sigreg = build_sigreg(
            num_slices=kwargs["num_slices"], knots=kwargs["knots"], t_max=kwargs["t_max"], gather_distributed=True
        )

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Checks ``method_kwargs`` (an unknown key is an error) and writes the defaults in."""
        cfg = super(LeJEPA, LeJEPA).add_and_assert_specific_cfg(cfg)
        for key, value in check_lejepa_method_kwargs(cfg.method_kwargs).items():
            cfg.method_kwargs[key] = value
        return cfg

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        return super().learnable_params + [{"name": "projector", "params": self.projector.parameters()}]

    def forward(self, X: torch.Tensor) -> dict[str, Any]:
        out = super().forward(X)
        out["z"] = self.projector(out["feats"])
        return out

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        out = super().training_step(batch, batch_idx)
        class_loss = out["loss"]  # unlabelled rows: run_pretrain's label_masked (solo/unlabelled.py) masks them
        # the global step is the same on every rank (and restored on resume): so are the slices
        parts = lejepa_loss(out["z"], self.sigreg, self.lambda_, step=int(self.global_step))
        self.log_dict(
            {
                "train_lejepa_loss": parts.loss,
                "train_lejepa_sigreg": parts.sigreg,
                "train_lejepa_invariance": parts.invariance,
            },
            on_epoch=True,
            sync_dist=True,  # SIGReg is already global; the invariance is a per-rank mean
        )
        return parts.loss + class_loss

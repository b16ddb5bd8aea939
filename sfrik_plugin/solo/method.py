"""SFRIK as a solo-learn method: ``SFRIK(BaseMethod)``.

Select it in any solo-learn pretraining config with ``method: sfrik``; its settings live under
``method_kwargs`` (every key, its default and its meaning are in :data:`SFRIK_METHOD_DEFAULTS`
and :data:`SFRIK_METHOD_KWARGS_HELP`). The loss itself is :func:`sfrik_plugin.sfrik_loss_func`
(two large crops) or :func:`sfrik_plugin.sfrik_multicrop_loss_func` (with small crops); this
module only wires it into solo-learn: projector, config defaults and checks, logging.

The encoder stays at ``self.backbone`` and ``forward`` returns ``"z"`` next to solo-learn's
``"feats"``/``"logits"``, so solo-learn's own linear and kNN tools read our checkpoints.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import omegaconf
import torch
import torch.nn as nn
from omegaconf import OmegaConf
from solo.methods.base import BaseMethod
from solo.utils.misc import omegaconf_select

from .. import SFRIK_LOSS_DEFAULTS, sfrik_loss_func, sfrik_multicrop_loss_func
from ..maths.kernels import TruncatedLegendreKernel
from ..maths.options import DISTRIBUTED_MODES, ESTIMATORS
from ..maths.options import METHODS as MMD_METHODS

__all__ = [
    "SFRIK",
    "SFRIK_METHOD_DEFAULTS",
    "SFRIK_METHOD_KWARGS_HELP",
    "build_projector",
    "check_sfrik_method_kwargs",
]

# method_kwargs key -> keyword of the loss functions, for the keys that are passed straight on
_LOSS_KWARGS = {
    "sim_coeff": "sim_coeff",
    "mmd_coeff": "mmd_coeff",
    "weights": "weights",
    "estimator": "estimator",
    "mmd_method": "method",  # renamed: ``method`` already names the SSL method in solo configs
    "block_size": "block_size",
    "distributed": "distributed",
}

#: Every ``method_kwargs`` key SFRIK accepts, with its default: the loss defaults come from
#: :data:`sfrik_plugin.SFRIK_LOSS_DEFAULTS` (the paper's ResNet-18 setting), the projector
#: defaults are the paper's 8192-8192-8192 (ResNet-18, q = 8192).
SFRIK_METHOD_DEFAULTS: dict[str, Any] = {
    "proj_hidden_dim": 8192,
    "proj_hidden_layers": 2,
    "proj_output_dim": 8192,
    **{key: SFRIK_LOSS_DEFAULTS[loss_key] for key, loss_key in _LOSS_KWARGS.items()},
    "reg_small": True,
}

SFRIK_METHOD_KWARGS_HELP: dict[str, str] = {
    "proj_hidden_dim": "width of the projector's hidden layers: an int, or a list of widths (one per layer)",
    "proj_hidden_layers": "number of Linear-BN-ReLU hidden layers when proj_hidden_dim is an int",
    "proj_output_dim": "q, the embedding dimension (sphere S^{q-1}); >= 2",
    "sim_coeff": "weight of the invariance (MSE) term",
    "mmd_coeff": "weight of the MMD-to-uniform term",
    "weights": "Legendre weights (b_1, ..., b_L) of the kernel, all >= 0",
    "estimator": "MMD estimator: 'v' (official, diagonal included) or 'u'",
    "mmd_method": "how the kernel mean is computed: 'auto', 'gram', 'blocked' or 'feature'",
    "block_size": "rows per block for mmd_method='blocked' (None = automatic)",
    "distributed": "'auto', 'sharded', 'replicated' or 'none' (how the global batch is used under DDP)",
    "reg_small": "with small crops: regularise all crops (True) or only the large ones (False)",
}
assert set(SFRIK_METHOD_KWARGS_HELP) == set(SFRIK_METHOD_DEFAULTS)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any) -> Any:
    if isinstance(value, (omegaconf.DictConfig, omegaconf.ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    return value


def _hidden_dims(kwargs: Mapping[str, Any], user_keys: Sequence[str]) -> list[int]:
    hidden = kwargs["proj_hidden_dim"]
    layers = kwargs["proj_hidden_layers"]
    if not _is_int(layers) or layers < 0:
        raise ValueError(f"method_kwargs.proj_hidden_layers must be an integer >= 0, got {layers!r}")
    if isinstance(hidden, (list, tuple)):
        if "proj_hidden_layers" in user_keys and layers != len(hidden):
            raise ValueError(
                f"method_kwargs.proj_hidden_dim lists {len(hidden)} widths {list(hidden)} but "
                f"proj_hidden_layers is {layers}; give one of them, or make them agree"
            )
        dims = list(hidden)
    else:
        dims = [hidden] * layers
    for width in dims:
        if not _is_int(width) or width < 1:
            raise ValueError(f"method_kwargs.proj_hidden_dim must hold positive integers, got {hidden!r}")
    return dims


def check_sfrik_method_kwargs(method_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Validates SFRIK's ``method_kwargs`` and returns them complete (defaults filled in).

    Raises ``ValueError`` naming the offending key for: unknown keys (solo-learn itself would
    silently ignore a typo such as ``sim_coef``), negative or empty kernel weights, q < 2,
    negative coefficients, and unknown choices. Runs without a model, so a bad config fails
    before any data or backbone is touched.
    """
    user = dict(_plain(method_kwargs) or {})
    unknown = sorted(set(user) - set(SFRIK_METHOD_DEFAULTS))
    if unknown:
        allowed_keys = ", ".join(sorted(SFRIK_METHOD_DEFAULTS))
        raise ValueError(
            f"unknown method_kwargs key(s) for method 'sfrik': {', '.join(unknown)}. Allowed keys: {allowed_keys}"
        )
    kwargs = {**SFRIK_METHOD_DEFAULTS, **user}

    q = kwargs["proj_output_dim"]
    if not _is_int(q) or q < 2:
        raise ValueError(f"method_kwargs.proj_output_dim (q, the sphere dimension) must be an integer >= 2, got {q!r}")
    kwargs["proj_hidden_dim"] = _plain(kwargs["proj_hidden_dim"])
    _hidden_dims(kwargs, list(user))
    for key in ("sim_coeff", "mmd_coeff"):
        if not _is_number(kwargs[key]) or kwargs[key] < 0:
            raise ValueError(f"method_kwargs.{key} must be a finite number >= 0, got {kwargs[key]!r}")
    weights = _plain(kwargs["weights"])
    try:
        TruncatedLegendreKernel(weights)  # the kernel's own validation (negative / empty weights...)
    except ValueError as error:
        raise ValueError(f"method_kwargs.weights: {error}") from error
    kwargs["weights"] = [float(w) for w in weights]
    choices: dict[str, tuple[str, ...]] = {
        "estimator": ESTIMATORS,
        "mmd_method": MMD_METHODS,
        "distributed": DISTRIBUTED_MODES,
    }
    for key, allowed in choices.items():
        if kwargs[key] not in allowed:
            raise ValueError(f"method_kwargs.{key} must be one of {list(allowed)}, got {kwargs[key]!r}")
    block = kwargs["block_size"]
    if block is not None and (not _is_int(block) or block < 1):
        raise ValueError(f"method_kwargs.block_size must be a positive integer or null, got {block!r}")
    if not isinstance(kwargs["reg_small"], bool):
        raise ValueError(f"method_kwargs.reg_small must be true or false, got {kwargs['reg_small']!r}")
    return kwargs


def build_projector(in_dim: int, hidden_dims: Sequence[int], out_dim: int) -> nn.Sequential:
    """The paper's projector: (Linear → BatchNorm1d → ReLU) per hidden width, then Linear without bias."""
    layers: list[nn.Module] = []
    prev = in_dim
    for width in hidden_dims:
        layers += [nn.Linear(prev, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        prev = width
    layers.append(nn.Linear(prev, out_dim, bias=False))
    return nn.Sequential(*layers)


class SFRIK(BaseMethod):
    """SFRIK (Zheng et al., ICLR 2023) on top of solo-learn's ``BaseMethod``.

    Config: ``method: sfrik`` and optional ``method_kwargs`` (see :data:`SFRIK_METHOD_DEFAULTS`).
    With small crops (``data.num_small_crops > 0``) the invariance compares each large crop with
    every other crop, and ``reg_small`` chooses whether the small crops are regularised too.
    """

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)  # calls add_and_assert_specific_cfg, which validates method_kwargs
        kwargs = cfg.method_kwargs
        self.loss_kwargs: dict[str, Any] = {loss_key: _plain(kwargs[key]) for key, loss_key in _LOSS_KWARGS.items()}
        self.loss_kwargs["weights"] = tuple(self.loss_kwargs["weights"])
        self.reg_small: bool = bool(kwargs.reg_small)
        hidden = _hidden_dims(_plain(kwargs), [])
        self.projector = build_projector(self.features_dim, hidden, int(kwargs.proj_output_dim))

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Checks ``method_kwargs`` (unknown keys are errors) and fills in SFRIK's defaults."""
        cfg = super(SFRIK, SFRIK).add_and_assert_specific_cfg(cfg)
        user_keys = list(cfg.method_kwargs.keys())
        checked = check_sfrik_method_kwargs(cfg.method_kwargs)
        for key, default in checked.items():
            cfg.method_kwargs[key] = omegaconf_select(cfg, f"method_kwargs.{key}", default)
        # the one place the user gave a list: keep the normalised float list
        cfg.method_kwargs.weights = checked["weights"]
        if isinstance(checked["proj_hidden_dim"], list) and "proj_hidden_layers" not in user_keys:
            cfg.method_kwargs.proj_hidden_layers = len(checked["proj_hidden_dim"])
        return cfg

    @property
    def learnable_params(self) -> list[dict[str, Any]]:
        return super().learnable_params + [{"name": "projector", "params": self.projector.parameters()}]

    def forward(self, X: torch.Tensor) -> dict[str, Any]:
        out = super().forward(X)
        out["z"] = self.projector(out["feats"])
        return out

    def multicrop_forward(self, X: torch.Tensor) -> dict[str, Any]:
        out = super().multicrop_forward(X)
        out["z"] = self.projector(out["feats"])
        return out

    def sfrik_loss(self, z: Sequence[torch.Tensor]):
        """The SFRIK loss of the projector outputs of all crops (large crops first)."""
        large, small = list(z[: self.num_large_crops]), list(z[self.num_large_crops :])
        if not small and len(large) == 2:
            return sfrik_loss_func(large[0], large[1], **self.loss_kwargs)
        return sfrik_multicrop_loss_func(large, small, regularize_small=self.reg_small, **self.loss_kwargs)

    def training_step(self, batch: Sequence[Any], batch_idx: int) -> torch.Tensor:
        out = super().training_step(batch, batch_idx)
        class_loss = out["loss"]  # unlabelled rows: the launchers' label_masked (unlabelled.py)

        sfrik = self.sfrik_loss(out["z"])
        self.log_dict(
            {
                "train_sfrik_loss": sfrik.loss,
                "train_sfrik_invariance": sfrik.invariance,
                "train_sfrik_mmd": sfrik.mmd,
            },
            on_epoch=True,
            # the loss functions already return the global-batch value on every rank; averaging
            # over ranks is only needed when the user asked for local statistics
            sync_dist=self.loss_kwargs["distributed"] == "none",
        )
        return sfrik.loss + class_loss

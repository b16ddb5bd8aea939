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

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import omegaconf
import torch
import torch.nn as nn
from lightning.pytorch.utilities.warnings import PossibleUserWarning
from solo.methods.base import BaseMethod

from ..contenders.projector import SFRIK_PROJECTOR_LAST_BIAS, ProjectorDims, projector_dims
from ..maths.kernels import RotationInvariantKernel, build_kernel
from ..maths.losses import SFRIK_LOSS_DEFAULTS, SFRIKLossOutput, SFRIKLossSettings
from ..maths.options import InvalidOption, MMDOptions
from ..maths.spectral import SpectralKernel
from .checkpointing import plain_data

__all__ = [
    "SFRIK",
    "SFRIK_METHOD_DEFAULTS",
    "SFRIK_METHOD_KWARGS_HELP",
    "SFRIK_LOSS_KEYWORDS",
    "build_projector",
    "check_sfrik_method_kwargs",
]

#: method_kwargs key -> keyword of :func:`sfrik_plugin.sfrik_loss_func` (and of
#: :meth:`~sfrik_plugin.SFRIKLossSettings.from_keywords`): the one translation of these settings
SFRIK_LOSS_KEYWORDS = {
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
    **{key: SFRIK_LOSS_DEFAULTS[loss_key] for key, loss_key in SFRIK_LOSS_KEYWORDS.items()},
    "kernel": "legendre",
    "reg_small": True,
}

SFRIK_METHOD_KWARGS_HELP: dict[str, str] = {
    "proj_hidden_dim": "width of the projector's hidden layers: an int, or a list of widths (one per layer)",
    "proj_hidden_layers": "number of Linear-BN-ReLU hidden layers when proj_hidden_dim is an int",
    "proj_output_dim": "q, the embedding dimension (sphere S^{q-1}); >= 2",
    "sim_coeff": "weight of the invariance (MSE) term",
    "mmd_coeff": "weight of the MMD-to-uniform term",
    "weights": "Legendre weights (b_1, ..., b_L) of kernel 'legendre', all >= 0",
    "kernel": "the kernel: 'legendre' (weights above), or another registered kernel by name or as "
    "{name: heat, tau: ..., degree: ...} / {name: bandlimited, degree: L} (sfrik_plugin.build_kernel)",
    "estimator": "MMD estimator: 'v' (official, diagonal included) or 'u'",
    "mmd_method": "how the kernel mean is computed: 'auto', 'gram', 'blocked' or 'feature'",
    "block_size": "rows per block for mmd_method='blocked' (None = automatic)",
    "distributed": "'auto', 'sharded', 'replicated' or 'none' (how the global batch is used under DDP)",
    "reg_small": "with small crops: regularise all crops (True) or only the large ones (False)",
}
assert set(SFRIK_METHOD_KWARGS_HELP) == set(SFRIK_METHOD_DEFAULTS)


# loss keyword -> method_kwargs key, to name the key in the loss settings' errors
_LOSS_KEY_OF = {keyword: key for key, keyword in SFRIK_LOSS_KEYWORDS.items()}


def _projector(in_dim: int, kwargs: Mapping[str, Any]) -> ProjectorDims:
    """The projector's widths from (plain) method_kwargs; errors name ``method_kwargs.<key>``."""
    try:
        return projector_dims(
            in_dim,
            kwargs["proj_hidden_dim"],
            kwargs["proj_output_dim"],
            layers=kwargs.get("proj_hidden_layers"),
            last_bias=SFRIK_PROJECTOR_LAST_BIAS,
        )
    except ValueError as error:
        raise ValueError(f"method_kwargs.{error}") from None


def _named_kernel(kwargs: Mapping[str, Any]) -> RotationInvariantKernel | None:
    """The kernel ``method_kwargs.kernel`` names, or None for ``legendre`` with ``weights``.

    Example:
        >>> _named_kernel({"kernel": {"name": "bandlimited", "degree": 4}, "weights": [1.0, 40.0, 40.0], "proj_output_dim": 64})
        BandlimitedKernel(degree=4, scale=81.0)
        >>> _named_kernel({"kernel": "heat", "weights": [1.0], "proj_output_dim": 64})
        Traceback (most recent call last):
        ...
        ValueError: method_kwargs.weights applies to kernel 'legendre' only, not to 'heat': drop it (or set kernel: legendre)
    """
    spec = plain_data(kwargs.get("kernel"))
    if isinstance(spec, str):
        spec = {"name": spec}
    if not isinstance(spec, Mapping) or not isinstance(spec.get("name"), str):
        raise ValueError(
            f"method_kwargs.kernel must be a kernel name or a mapping with a 'name' key, e.g. "
            f"{{name: heat, tau: 0.001}}, got {spec!r}"
        )
    name, parameters = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    if name == "legendre" and not parameters:
        return None
    if name != "legendre" and list(plain_data(kwargs["weights"])) != list(SFRIK_LOSS_DEFAULTS["weights"]):
        raise ValueError(
            f"method_kwargs.weights applies to kernel 'legendre' only, not to {name!r}: drop it (or set kernel: legendre)"
        )
    try:
        kernel = build_kernel(name, **parameters)
        if isinstance(kernel, SpectralKernel):  # its degree at this q: a tail that cannot fit fails now
            kernel.weights_for(int(kwargs["proj_output_dim"]))
    except (TypeError, ValueError) as error:
        raise ValueError(f"method_kwargs.kernel: {error}") from None
    return kernel


def _loss_settings(kwargs: Mapping[str, Any]) -> SFRIKLossSettings:
    """The loss's coefficients, kernel and MMD options from (plain) method_kwargs, built — and so
    validated — by the loss's own constructors; errors name ``method_kwargs.<key>``."""
    keywords = {keyword: plain_data(kwargs[key]) for key, keyword in SFRIK_LOSS_KEYWORDS.items()}
    kernel = _named_kernel(kwargs)
    try:
        if kernel is None:
            return SFRIKLossSettings.from_keywords(**keywords)
        options = {k: v for k, v in keywords.items() if k not in ("sim_coeff", "mmd_coeff", "weights")}
        return SFRIKLossSettings(
            keywords["sim_coeff"], keywords["mmd_coeff"], kernel, MMDOptions.from_keywords(options)
        )
    except InvalidOption as error:
        raise ValueError(f"method_kwargs.{_LOSS_KEY_OF[error.name]} {error.requirement}") from None
    except ValueError as error:  # the kernel's own message: the only other setting that can fail
        raise ValueError(f"method_kwargs.weights: {error}") from None


def check_sfrik_method_kwargs(method_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """Validates SFRIK's ``method_kwargs`` and returns them complete (defaults filled in, the
    weights as floats, ``proj_hidden_layers`` the length of a ``proj_hidden_dim`` list).

    Raises ``ValueError`` naming the offending key for: unknown keys (solo-learn itself would
    silently ignore a typo such as ``sim_coef``), negative or empty kernel weights, q < 2,
    negative coefficients, and unknown choices. Runs without a model, so a bad config fails
    before any data or backbone is touched (the launchers call it first). Each value is checked
    by the code that uses it: the projector's widths by :func:`sfrik_plugin.contenders.projector_dims`,
    the loss settings by :class:`sfrik_plugin.SFRIKLossSettings` (coefficients), its kernel and
    :class:`sfrik_plugin.MMDOptions`; building the method runs each of these checks once (the
    keys and defaults in ``add_and_assert_specific_cfg``, the rest where ``__init__`` builds them).

    Example:
        >>> check_sfrik_method_kwargs({"proj_hidden_dim": [64, 32]})["proj_hidden_layers"]
        2
        >>> check_sfrik_method_kwargs({"mmd_method": "fast"})
        Traceback (most recent call last):
        ...
        ValueError: method_kwargs.mmd_method must be one of ['auto', 'gram', 'blocked', 'feature', 'reference'], got 'fast'
    """
    kwargs = _completed(method_kwargs)
    _projector(1, kwargs)
    kwargs["weights"] = list(getattr(_loss_settings(kwargs).kernel, "weights", kwargs["weights"]))
    return kwargs


def _completed(method_kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The keys: unknown ones are errors, missing ones get their defaults; and the checks no builder
    makes (q >= 2 for the sphere, ``reg_small`` a boolean)."""
    user = dict(plain_data(method_kwargs) or {})
    unknown = sorted(set(user) - set(SFRIK_METHOD_DEFAULTS))
    if unknown:
        allowed_keys = ", ".join(sorted(SFRIK_METHOD_DEFAULTS))
        raise ValueError(
            f"unknown method_kwargs key(s) for method 'sfrik': {', '.join(unknown)}. Allowed keys: {allowed_keys}"
        )
    kwargs = {**SFRIK_METHOD_DEFAULTS, **user}
    if isinstance(kwargs["proj_hidden_dim"], (list, tuple)) and "proj_hidden_layers" not in user:
        kwargs["proj_hidden_layers"] = len(kwargs["proj_hidden_dim"])

    q = kwargs["proj_output_dim"]
    if isinstance(q, bool) or not isinstance(q, int) or q < 2:
        raise ValueError(f"method_kwargs.proj_output_dim (q, the sphere dimension) must be an integer >= 2, got {q!r}")
    if not isinstance(kwargs["reg_small"], bool):
        raise ValueError(f"method_kwargs.reg_small must be true or false, got {kwargs['reg_small']!r}")
    return kwargs


def build_projector(dims: ProjectorDims) -> nn.Sequential:
    """The paper's projector: (Linear → BatchNorm1d → ReLU) per hidden width, then Linear (without
    bias for SFRIK: ``dims.last_bias``).

    Example:
        >>> from sfrik_plugin.contenders import projector_dims
        >>> dims = projector_dims(32, 64, 16, layers=2, last_bias=False)
        >>> sum(p.numel() for p in build_projector(dims).parameters()) == dims.parameters()
        True
    """
    layers: list[nn.Module] = []
    prev = dims.in_dim
    for width in dims.hidden:
        layers += [nn.Linear(prev, width), nn.BatchNorm1d(width), nn.ReLU(inplace=True)]
        prev = width
    layers.append(nn.Linear(prev, dims.out_dim, bias=dims.last_bias))
    return nn.Sequential(*layers)


# The loss is already the global-batch value on every rank (sfrik_plugin.maths.distributed), so
# its logs are not synchronised again (sync_dist would add an all-reduce per value per step);
# Lightning cannot know that and warns at each epoch end under DDP. Only these three names.
warnings.filterwarnings(
    "ignore",
    message=r"It is recommended to use `self\.log\('train_sfrik_(loss|invariance|mmd)'",
    category=PossibleUserWarning,
)


class SFRIK(BaseMethod):
    """SFRIK (Zheng et al., ICLR 2023) on top of solo-learn's ``BaseMethod``.

    Config: ``method: sfrik`` and optional ``method_kwargs`` (see :data:`SFRIK_METHOD_DEFAULTS`).
    With small crops (``data.num_small_crops > 0``) the invariance compares each large crop with
    every other crop, and ``reg_small`` chooses whether the small crops are regularised too.
    """

    def __init__(self, cfg: omegaconf.DictConfig):
        super().__init__(cfg)  # calls add_and_assert_specific_cfg, which validates method_kwargs
        kwargs = plain_data(cfg.method_kwargs)
        # made once: nothing of the loss's settings is rebuilt or re-checked per step
        self.loss_settings: SFRIKLossSettings = _loss_settings(kwargs)
        self.reg_small: bool = bool(kwargs["reg_small"])
        self.projector = build_projector(_projector(self.features_dim, kwargs))

    @staticmethod
    def add_and_assert_specific_cfg(cfg: omegaconf.DictConfig) -> omegaconf.DictConfig:
        """Checks ``method_kwargs``' keys (unknown keys are errors) and adds SFRIK's defaults for the
        keys not given; a given key keeps its value (an interpolation stays one). The values the
        projector and the loss take are checked where ``__init__`` builds them."""
        cfg = super(SFRIK, SFRIK).add_and_assert_specific_cfg(cfg)
        for key, value in _completed(cfg.method_kwargs).items():
            if key not in cfg.method_kwargs:
                cfg.method_kwargs[key] = value
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

    def sfrik_loss(self, z: Sequence[torch.Tensor]) -> SFRIKLossOutput:
        """The SFRIK loss of the projector outputs of all crops (large crops first)."""
        large, small = list(z[: self.num_large_crops]), list(z[self.num_large_crops :])
        if not small and len(large) == 2:
            return self.loss_settings.loss(large[0], large[1])
        return self.loss_settings.multicrop_loss(large, small, regularize_small=self.reg_small)

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
            sync_dist=self.loss_settings.options.distributed == "none",
        )
        return sfrik.loss + class_loss

"""The contenders the profiler compares, and whether a configuration fits in memory.

* :mod:`.registry` — :class:`LossContender` / :class:`TrainMethod` entries, :data:`CONTENDERS`,
  :func:`register_contender`, :func:`get_contender` (and the same for training methods);
* :mod:`.losses` — the built-in loss contenders (SFRIK's gram / blocked / feature paths,
  solo-learn's VICReg and Barlow Twins), their step builders and memory models;
* :mod:`.methods` — the built-in training methods (sfrik, vicreg, barlow);
* :mod:`.sigreg` — LeJEPA's SIGReg from lightly (the ``sigreg`` contender, the ``lejepa`` method);
* :mod:`.exact_barlow` — Barlow Twins' loss exact under DDP (:func:`exact_barlow_loss_func`);
* :mod:`.projector` — the projector's widths and parameter count (:func:`projector_dims`);
* :mod:`.memory` — the memory budget and the predictions compared with it.

Torch and the maths only: solo-learn and lightly are imported inside the functions that call them.

Example:
    >>> from sfrik_plugin.contenders import CONTENDERS
    >>> sorted(CONTENDERS)
    ['barlow', 'sfrik-blocked', 'sfrik-feature', 'sfrik-gram', 'sigreg', 'vicreg']
"""

from . import losses, methods, sigreg  # noqa: F401  (registers the built-in entries)
from .exact_barlow import exact_barlow_loss_func
from .memory import (
    BACKBONES,
    GIB,
    MIB,
    SAFETY_FACTOR,
    BackboneSize,
    fit_verdict,
    format_bytes,
    memory_available_bytes,
    memory_budget,
    parse_bytes,
    predict_loss_peak_bytes,
    predict_loss_total_bytes,
    predict_train_bytes,
)
from .projector import ProjectorDims, projector_dims
from .registry import (
    CONTENDERS,
    TRAIN_METHODS,
    LossContender,
    PlotStyle,
    TrainMethod,
    get_contender,
    get_train_method,
    register_contender,
    register_train_method,
    unregister_contender,
    unregister_train_method,
)
from .sigreg import LEJEPA_DEFAULTS, build_sigreg, lejepa_loss, lightly_status, sigreg_contender

__all__ = [
    "CONTENDERS",
    "TRAIN_METHODS",
    "LossContender",
    "TrainMethod",
    "PlotStyle",
    "register_contender",
    "unregister_contender",
    "get_contender",
    "register_train_method",
    "unregister_train_method",
    "get_train_method",
    "MIB",
    "GIB",
    "SAFETY_FACTOR",
    "memory_budget",
    "memory_available_bytes",
    "parse_bytes",
    "format_bytes",
    "fit_verdict",
    "predict_loss_peak_bytes",
    "predict_loss_total_bytes",
    "predict_train_bytes",
    "BackboneSize",
    "BACKBONES",
    "ProjectorDims",
    "projector_dims",
    "exact_barlow_loss_func",
    "LEJEPA_DEFAULTS",
    "lightly_status",
    "build_sigreg",
    "lejepa_loss",
    "sigreg_contender",
]

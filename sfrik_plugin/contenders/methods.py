"""The built-in training methods of the training-step profiler: SFRIK, VICReg and Barlow Twins
(LeJEPA's entry lives beside its loss, in :mod:`.sigreg`).

Each is built through the solo-learn adapter from the packaged config ``<dataset>/<config>.yaml``
with the same backbone and projector widths; the profiler's memory prediction for a method uses
the memory model of its loss contender.

Example:
    >>> from sfrik_plugin.contenders import TRAIN_METHODS
    >>> [(m.name, m.solo_method, m.loss) for m in TRAIN_METHODS.values()]
    [('sfrik', 'sfrik', 'sfrik-gram'), ('vicreg', 'vicreg', 'vicreg'), ('barlow', 'barlow_twins', 'barlow'), ('lejepa', 'lejepa', 'sigreg')]
"""

from __future__ import annotations

from . import losses as _losses  # noqa: F401  (the loss contenders the methods point to)
from .projector import SFRIK_PROJECTOR_LAST_BIAS
from .registry import PlotStyle, TrainMethod, register_train_method

__all__: list[str] = []

for _method in (
    TrainMethod(
        name="sfrik",
        label="SFRIK",
        solo_method="sfrik",
        config="sfrik",
        loss="sfrik-gram",
        style=PlotStyle("tab:blue", "o", "-"),
        # VICReg's and Barlow's projectors have 2 hidden layers: pin SFRIK's to 2 whatever its config says
        overrides=("method_kwargs.proj_hidden_layers=2",),
        projector_layers=None,  # method_kwargs.proj_hidden_layers (sfrik_plugin.solo.method.build_projector)
        projector_last_bias=SFRIK_PROJECTOR_LAST_BIAS,
    ),
    TrainMethod(
        name="vicreg",
        label="VICReg",
        solo_method="vicreg",
        config="vicreg",
        loss="vicreg",
        style=PlotStyle("tab:red", "s", "-"),
    ),
    TrainMethod(
        name="barlow",
        label="Barlow Twins",
        solo_method="barlow_twins",
        config="barlow",
        loss="barlow",
        style=PlotStyle("tab:orange", "^", "-"),
    ),
):
    register_train_method(_method)

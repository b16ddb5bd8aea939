"""The solo-learn adapter: the only part of sfrik-plugin that imports ``solo``.

Importing this package checks that the maintained solo-learn (GitHub, omegaconf/Lightning-2
generation) is installed and registers SFRIK in solo-learn's method registry, so that a
config with ``method: sfrik`` works in solo-learn's training code and in our launchers::

    import sfrik_plugin.solo            # registers "sfrik" in solo.methods.METHODS
    from solo.methods import METHODS
    model = METHODS["sfrik"](cfg)

:func:`register` is idempotent and is also called by every launcher process (including each
process Lightning starts for DDP), so multi-GPU and multi-node runs find the method.
"""

from __future__ import annotations

import warnings

from ..console import quiet_upstream_warnings

__all__ = [
    "SoloLearnNotAvailable",
    "SOLO_INSTALL_HINT",
    "check_solo_learn",
    "solo_learn_status",
    "register",
    "SFRIK",
    "LeJEPA",
    "SFRIK_METHOD_DEFAULTS",
    "check_sfrik_method_kwargs",
]

SOLO_INSTALL_HINT = (
    "sfrik_plugin.solo needs the maintained solo-learn (GitHub commit 9187ea3, setup.py version 1.0.6, "
    "the Lightning-2 / hydra generation); PyPI's solo-learn 1.0.2 (2021) is a different, incompatible "
    "generation. `make setup` installs it (from a checked wheel in ../shared/wheels when present, else "
    "from GitHub). By hand: `pip install solo_learn-1.0.6-py3-none-any.whl`, or from source with "
    "`PIP_CONSTRAINT=constraints.txt pip install git+https://github.com/vturrisi/solo-learn@"
    "9187ea39c2c3f43c455ab06664d2b019a9802954` (its setup.py imports pkg_resources); at run time keep "
    "setuptools<81, which the [solo] extra of sfrik-plugin requires (README 'Quick start')."
)


class SoloLearnNotAvailable(ImportError):
    """solo-learn is missing, or is the old PyPI generation this adapter cannot use."""


def solo_learn_status() -> tuple[bool, str]:
    """``(usable, explanation)`` without raising: is a suitable solo-learn importable?

    Example:
        >>> solo_learn_status()  # where this adapter imports at all
        (True, 'ok')
    """
    try:
        import solo  # noqa: F401
    except ImportError as error:
        return False, f"solo-learn is not installed ({error}).\n{SOLO_INSTALL_HINT}"
    except Exception as error:  # an old solo-learn can fail on import with modern dependencies
        return (
            False,
            f"solo-learn is installed but fails to import ({type(error).__name__}: {error}).\n{SOLO_INSTALL_HINT}",
        )
    try:
        from solo.args.pretrain import parse_cfg  # noqa: F401  (hydra/omegaconf generation)
        from solo.methods import METHODS
        from solo.methods.base import BaseMethod
    except ImportError as error:
        version = getattr(__import__("solo"), "__version__", "unknown")
        return False, (
            f"the installed solo-learn (version {version}) is the wrong generation: it lacks the "
            f"omegaconf/Lightning-2 API ({error}).\n{SOLO_INSTALL_HINT}"
        )
    except Exception as error:
        return (
            False,
            f"solo-learn is installed but fails to import ({type(error).__name__}: {error}).\n{SOLO_INSTALL_HINT}",
        )
    if not isinstance(METHODS, dict) or not hasattr(BaseMethod, "add_and_assert_specific_cfg"):
        return False, f"the installed solo-learn has an unexpected method registry/BaseMethod.\n{SOLO_INSTALL_HINT}"
    return True, "ok"


def check_solo_learn() -> None:
    """Raises :class:`SoloLearnNotAvailable` with install instructions unless solo-learn is usable.

    Example:
        >>> check_solo_learn()  # nothing to say: solo-learn is usable
    """
    usable, why = solo_learn_status()
    if not usable:
        raise SoloLearnNotAvailable(why)


# solo-learn, timm and lightning print a screenful of deprecation warnings at import time that
# nobody using this adapter can act on: hide exactly those (sfrik_plugin.console lists them)
with warnings.catch_warnings():
    quiet_upstream_warnings()
    check_solo_learn()

from .lejepa import LeJEPA  # noqa: E402  (needs lightly only when a model is built)
from .method import SFRIK, SFRIK_METHOD_DEFAULTS, check_sfrik_method_kwargs  # noqa: E402


def register() -> None:
    """Adds ``"sfrik"`` and ``"lejepa"`` to ``solo.methods.METHODS`` (idempotent; safe to call in
    every process).

    Example:
        >>> from solo.methods import METHODS
        >>> register(); register()
        >>> METHODS["sfrik"] is SFRIK and METHODS["lejepa"] is LeJEPA
        True
    """
    import solo.methods

    for name, attribute, method in (("sfrik", "SFRIK", SFRIK), ("lejepa", "LeJEPA", LeJEPA)):
        current = solo.methods.METHODS.get(name)
        if current is not None and current is not method:
            raise RuntimeError(
                f"solo.methods.METHODS[{name!r}] is already taken by {current!r}; refusing to replace it"
            )
        solo.methods.METHODS[name] = method
        # attribute access like solo's own methods: ``from solo.methods import SFRIK``
        setattr(solo.methods, attribute, method)
        if hasattr(solo.methods, "__all__") and attribute not in solo.methods.__all__:
            solo.methods.__all__.append(attribute)


register()

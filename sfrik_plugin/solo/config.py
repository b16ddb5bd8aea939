"""The packaged solo-learn configs and how a config is resolved (no solo-learn import here).

Configs ship inside the package under ``configs/{pretrain,linear,knn}``: pretraining configs are
named ``<dataset>/<method>`` (``cifar10/sfrik``, ``imagenet/vicreg``...), linear ones by dataset,
and ``knn``. :func:`compose_config` reads one with hydra exactly as the launchers do, with the
same ``key=value`` overrides, so the demo, the benchmark, the profiler and the tests all see the
config a user's command line would produce.

Example:
    >>> cfg = compose_config("pretrain", "custom/sfrik", ["method_kwargs.proj_output_dim=1024"])
    >>> cfg.method, cfg.method_kwargs.proj_output_dim
    ('sfrik', 1024)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CONFIG_ROOT", "CONFIG_KINDS", "packaged_configs", "config_location", "quote_override", "compose_config"]

CONFIG_ROOT = Path(__file__).resolve().parent / "configs"
CONFIG_KINDS = ("pretrain", "linear", "knn")
# config groups inside a dataset folder: not configs of their own
_GROUP_FOLDERS = ("augmentations", "wandb")


def _check_kind(kind: str) -> None:
    if kind not in CONFIG_KINDS:
        raise ValueError(f"config kind must be one of {list(CONFIG_KINDS)}, got {kind!r}")


def packaged_configs(kind: str) -> list[str]:
    """Names of the configs shipped for ``kind``, e.g. ``["cifar10/barlow", "cifar10/sfrik", ...]``."""
    _check_kind(kind)
    root = CONFIG_ROOT / kind
    names = []
    for path in sorted(root.rglob("*.yaml")):
        relative = path.relative_to(root)
        if len(relative.parts) > 1 and relative.parts[-2] in _GROUP_FOLDERS:
            continue
        names.append(relative.with_suffix("").as_posix())
    return names


def config_location(kind: str, name: str) -> tuple[Path, str]:
    """``(folder, leaf name)`` of a packaged config: hydra's ``--config-path`` and ``--config-name``.

    Raises ``ValueError`` listing the shipped configs when ``name`` is not one of them.
    """
    _check_kind(kind)
    name = name[: -len(".yaml")] if name.endswith(".yaml") else name
    folder, _, leaf = name.rpartition("/")
    if not (CONFIG_ROOT / kind / folder / f"{leaf}.yaml").is_file():
        shipped = ", ".join(packaged_configs(kind))
        raise ValueError(f"no packaged {kind} config named {name!r}; shipped: {shipped}")
    return CONFIG_ROOT / kind / folder, leaf


def quote_override(override: str) -> str:
    """Quotes the value of ``key=value`` when it holds '=' (solo-learn checkpoints are named
    ``...-ep=9.ckpt``), which hydra's override grammar would otherwise reject.

    Example:
        >>> quote_override("pretrained_feature_extractor=run/sfrik-ep=9.ckpt")
        "pretrained_feature_extractor='run/sfrik-ep=9.ckpt'"
    """
    key, sep, value = override.partition("=")
    if sep and "=" in value and value[:1] not in ("'", '"', "[", "{"):
        return f"{key}='{value}'"
    return override


def compose_config(kind: str, name: str, overrides: Sequence[str] = (), config_dir: str | Path | None = None) -> Any:
    """A config as the launchers read it: packaged ``kind``/``name`` (or ``name`` inside your own
    ``config_dir``) with hydra ``overrides``; struct mode off, as solo-learn's parsing expects.

    Every key is checked as the launchers check it (:mod:`.known_keys`): a key that neither
    solo-learn nor this adapter reads raises :class:`~sfrik_plugin.console.InputError` naming it
    and the closest known key."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from .known_keys import check_config_keys

    if config_dir is None:
        folder, leaf = config_location(kind, name)
    else:
        folder, leaf = Path(config_dir).resolve(), name.removesuffix(".yaml")
    GlobalHydra.instance().clear()  # a previous hydra app (or compose) in this process must not leak in
    with initialize_config_dir(config_dir=str(folder), version_base="1.2"):
        cfg = compose(config_name=leaf, overrides=[quote_override(o) for o in overrides])
    OmegaConf.set_struct(cfg, False)
    check_config_keys(kind, cfg)
    return cfg

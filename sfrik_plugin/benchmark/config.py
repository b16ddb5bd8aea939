"""Benchmark configuration: the packaged yaml files, ``key=value`` overrides, and their checks.

A benchmark config is plain data read from yaml (``configs/*.yaml`` next to this module, or your
own file). :func:`load_config` reads one — a path, or the name of a packaged config — merges its
``quick:`` block for ``--quick``, applies OmegaConf dot-list overrides (``--set`` on the command
line: ``key=value`` with the grammar hydra users know, e.g. ``sweep.qs=[256,1024]``) and checks the
result with :func:`check_config`, which names the first bad value and what is allowed.

Example:
    >>> cfg = load_config(overrides=["seeds=[0]", "sweep.qs=[256,1024]"])
    >>> cfg["seeds"], cfg["sweep"]["qs"]
    ([0], [256, 1024])
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..console import InputError

__all__ = [
    "CONFIG_DIR",
    "DEFAULT_CONFIG",
    "TOP_LEVEL_KEYS",
    "METHOD_KEYS",
    "packaged_configs",
    "resolve_config_path",
    "merge",
    "apply_overrides",
    "load_config",
    "check_config",
]

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_CONFIG = CONFIG_DIR / "fashion_mnist.yaml"

#: every key a benchmark config may have at its top level (a typo in ``--set`` is an error, not a
#: silently ignored new key)
TOP_LEVEL_KEYS = (
    "data",
    "seeds",
    "tune_seeds",
    "random_init",
    "epochs",
    "crop_size",
    "batch_size",
    "projector",
    "backbone",
    "device",
    "memory_budget",
    "common_overrides",
    "methods",
    "tuning",
    "evaluation",
    "report",
    "sweep",
    "quick",
)

#: every key of a ``methods.<name>`` entry: its packaged solo-learn config, its tuning grid, and the
#: open intervals its grid's extensions must stay inside (:func:`~.tuning.extend_setting`)
METHOD_KEYS = ("config", "grid", "bounds")


def packaged_configs() -> list[str]:
    """Names of the configs shipped with the package (``fashion_mnist``, ``in20_resnet18``...)."""
    return sorted(p.stem for p in CONFIG_DIR.glob("*.yaml"))


def resolve_config_path(config: str | os.PathLike | None) -> Path:
    """The yaml file of ``config``: an existing path, else a packaged config by name; None is the default."""
    if config is None:
        return DEFAULT_CONFIG
    path = Path(config).expanduser()
    if path.is_file():
        return path
    packaged = CONFIG_DIR / f"{path.name.removesuffix('.yaml')}.yaml"
    if packaged.is_file():
        return packaged
    raise InputError(
        f"--config {config}: no such file and no packaged config of that name; packaged: {packaged_configs()}"
    )


def _omegaconf() -> Any:
    try:
        from omegaconf import OmegaConf
    except ImportError as error:  # pragma: no cover - installed with the solo extra
        raise InputError(f"the benchmark needs omegaconf (pip install 'sfrik-plugin[solo]'): {error}") from None
    return OmegaConf


def merge(base: Mapping[str, Any], extra: Mapping[str, Any] | None) -> dict[str, Any]:
    """``extra`` merged over ``base`` (mappings recursively, lists and values replaced), as plain data.

    Example:
        >>> merge({"a": {"b": 1, "c": [1, 2]}}, {"a": {"c": [3]}})
        {'a': {'b': 1, 'c': [3]}}
    """
    OmegaConf = _omegaconf()
    merged = OmegaConf.merge(OmegaConf.create(dict(base)), OmegaConf.create(dict(extra or {})))
    container = OmegaConf.to_container(merged, resolve=True)
    assert isinstance(container, dict)
    return container


def apply_overrides(cfg: Mapping[str, Any], items: Sequence[str]) -> dict[str, Any]:
    """``cfg`` with OmegaConf dot-list overrides applied (``a.b=value``; values in OmegaConf's
    grammar: ``3``, ``1e-4``, ``null``, ``[256,1024]``, ``{k: v}``, anything else a string).

    Example:
        >>> apply_overrides({"data": {"kind": "fashion_mnist"}}, ["data.kind=image_folder", "data.train_root=/d"])
        {'data': {'kind': 'image_folder', 'train_root': '/d'}}
    """
    OmegaConf = _omegaconf()
    for item in items:
        key, sep, _ = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set wants KEY=VALUE (e.g. data.train_per_class=100), got {item!r}")
        top = key.strip().split(".")[0]
        if top not in TOP_LEVEL_KEYS:
            raise InputError(f"--set {item}: unknown key {top!r}; a benchmark config has {list(TOP_LEVEL_KEYS)}")
    try:
        extra = OmegaConf.from_dotlist(list(items))
    except Exception as error:  # omegaconf's grammar errors have several classes
        raise InputError(f"--set {' '.join(items)}: {str(error).splitlines()[0]}") from None
    container = OmegaConf.to_container(extra, resolve=True)
    assert isinstance(container, dict)
    return merge(cfg, container)


def load_config(
    config: str | os.PathLike | None = None, quick: bool = False, overrides: Sequence[str] = ()
) -> dict[str, Any]:
    """Reads a benchmark yaml; with ``quick`` its ``quick:`` block is merged over the rest; then
    ``overrides`` (dot-list) are applied and the result is checked (:func:`check_config`)."""
    import yaml

    path = resolve_config_path(config)
    try:
        cfg = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise InputError(f"{path} is not valid yaml: {str(error).splitlines()[0]}") from None
    if not isinstance(cfg, dict):
        raise InputError(f"{path} must hold a mapping of benchmark settings, got {type(cfg).__name__}")
    quick_block = cfg.pop("quick", None) or {}
    if quick:
        cfg = merge(cfg, quick_block)
    if overrides:
        cfg = apply_overrides(cfg, overrides)
    cfg.pop("quick", None)
    cfg["_source"] = str(path)
    cfg["_quick"] = bool(quick)
    check_config(cfg)
    return cfg


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scale_rule(rule: Any) -> bool:
    """An exponent, or [exponent, positive value at the reference q]."""
    if isinstance(rule, (list, tuple)):
        return len(rule) == 2 and _is_number(rule[0]) and _is_number(rule[1]) and rule[1] > 0
    return _is_number(rule)


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _need(condition: bool, key: str, value: Any, allowed: str) -> None:
    if not condition:
        raise InputError(f"benchmark config: {key}={value!r} is not allowed; {allowed}")


def check_config(cfg: Mapping[str, Any]) -> None:
    """Raises :class:`InputError` naming the first missing or bad value of a benchmark config."""
    unknown = [k for k in cfg if k not in TOP_LEVEL_KEYS and not str(k).startswith("_")]
    _need(not unknown, "keys", unknown, f"a benchmark config has {list(TOP_LEVEL_KEYS)}")
    for key in ("data", "seeds", "epochs", "crop_size", "batch_size", "projector", "backbone", "methods"):
        _need(key in cfg, key, None, "this key is required")
    data = cfg["data"]
    _need(
        data.get("kind") in ("fashion_mnist", "image_folder"),
        "data.kind",
        data.get("kind"),
        "use fashion_mnist or image_folder",
    )
    for key in ("train_per_class", "val_per_class"):
        _need(_positive_int(data.get(key)), f"data.{key}", data.get(key), "use a positive number of images per class")
    if data["kind"] == "image_folder":
        for key in ("train_root", "test_root"):
            root = data.get(key)
            _need(
                isinstance(root, str) and bool(root),
                f"data.{key}",
                root,
                f"give an ImageFolder directory (--set data.{key}=/path)",
            )
    for key in ("seeds", "tune_seeds"):
        seeds = cfg.get(key, cfg["seeds"])
        ok = isinstance(seeds, list) and bool(seeds) and all(isinstance(s, int) and s >= 0 for s in seeds)
        _need(ok and len(set(seeds)) == len(seeds), key, seeds, "use a non-empty list of distinct seeds >= 0")
    for key in ("epochs", "crop_size", "batch_size"):
        _need(_positive_int(cfg[key]), key, cfg[key], "use a positive integer")
    for key in ("hidden", "q"):
        value = (cfg["projector"] or {}).get(key)
        _need(_positive_int(value), f"projector.{key}", value, "use a positive integer")
    _need(
        isinstance(cfg["backbone"], dict) and bool(cfg["backbone"].get("name")),
        "backbone",
        cfg["backbone"],
        "give {name: ..., kwargs: {...}}",
    )
    _need(cfg.get("device", "cpu") in ("cpu", "cuda"), "device", cfg.get("device"), "use cpu or cuda")
    methods = cfg["methods"]
    _need(isinstance(methods, dict) and bool(methods), "methods", methods, "give at least one method")
    for name, method in methods.items():
        _need(
            isinstance(method, dict) and isinstance(method.get("config"), str),
            f"methods.{name}.config",
            (method or {}).get("config"),
            "name a packaged pretraining config such as custom/sfrik",
        )
        grid = method.get("grid") or [{}]
        _need(
            isinstance(grid, list) and all(isinstance(s, dict) for s in grid),
            f"methods.{name}.grid",
            grid,
            "give a list of {key: value} settings",
        )
        unknown = [k for k in method if k not in METHOD_KEYS]
        _need(not unknown, f"methods.{name}", unknown, f"a method entry has {list(METHOD_KEYS)}")
        for key, bound in (method.get("bounds") or {}).items():
            _need(
                isinstance(bound, (list, tuple))
                and len(bound) == 2
                and all(_is_number(b) for b in bound)
                and bound[0] < bound[1],
                f"methods.{name}.bounds.{key}",
                bound,
                "give the open interval of valid values as [low, high] with low < high, e.g. [0.0, 1.0]",
            )
            outside = [s[key] for s in grid if key in s and not (_is_number(s[key]) and bound[0] < s[key] < bound[1])]
            _need(
                not outside,
                f"methods.{name}.grid ({key})",
                outside,
                f"every value must lie strictly inside methods.{name}.bounds.{key} = {list(bound)}",
            )
    tuning = cfg.get("tuning") or {}
    _need(
        tuning.get("metric", "linear") in ("linear", "knn"), "tuning.metric", tuning.get("metric"), "use linear or knn"
    )
    extensions = tuning.get("max_extensions", 2)
    _need(isinstance(extensions, int) and extensions >= 0, "tuning.max_extensions", extensions, "use an integer >= 0")
    _check_sweep(cfg)


def _check_sweep(cfg: Mapping[str, Any]) -> None:
    sweep = cfg.get("sweep")
    if sweep is None:
        return
    qs = sweep.get("qs")
    _need(
        isinstance(qs, list) and bool(qs) and all(_positive_int(q) and q >= 2 for q in qs),
        "sweep.qs",
        qs,
        "use a list of embedding dimensions q >= 2",
    )
    _need(len(set(qs)) == len(qs), "sweep.qs", qs, "list each q once")
    scale = sweep.get("scale_with_q") or {}
    for method, keys in scale.items():
        _need(
            method in cfg["methods"],
            f"sweep.scale_with_q.{method}",
            keys,
            f"name a method of the config {list(cfg['methods'])}",
        )
        _need(
            isinstance(keys, dict) and all(_scale_rule(v) for v in keys.values()),
            f"sweep.scale_with_q.{method}",
            keys,
            "map setting keys to exponents, e.g. {method_kwargs.sim_coeff: 1.0}, or to [exponent, value at the "
            "reference q] for a key the grid does not set, e.g. {method_kwargs.cov_loss_weight: [-1.0, 1.0]}",
        )
    budget = (sweep.get("equal_time") or {}).get("budget")
    ok = budget is None or budget in cfg["methods"] or (_is_number(budget) and budget > 0)
    _need(
        ok,
        "sweep.equal_time.budget",
        budget,
        f"use null (no equal-time runs), seconds > 0, or a method of {list(cfg['methods'])}",
    )

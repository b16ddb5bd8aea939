"""Every config key the launchers accept, and the check that refuses the others before training.

solo-learn has no schema: its ``parse_cfg`` functions fill defaults with ``omegaconf_select`` and
ignore everything else, so ``max_epoch: 1`` or ``optimiser: {lr: 9.9}`` trains for the default
number of epochs at the default learning rate without a word. The known keys are derived here
from what actually reads a config:

* solo-learn (commit 9187ea3): the ``parse_cfg`` functions of ``solo/args/{pretrain,linear}.py``
  and the ``add_and_assert_specific_cfg`` of ``BaseMethod``, ``BaseMomentumMethod``,
  ``LinearModel``, ``Checkpointer``, ``AutoResumer``, ``AutoUMAP`` and the DALI data modules, plus
  what ``build_transform_pipeline`` reads of each ``augmentations`` entry;
* the arguments of Lightning's ``Trainer.__init__`` (read from its signature at run time: the
  launchers pass every top-level key with such a name to the trainer);
* this adapter: ``trust_pickle``, ``csv.*``, ``data.fast_augment*``, the kNN flow's keys...;
* ``method_kwargs``: a solo-learn method reads its own keys, found in the source of its class
  (:func:`method_kwargs_read_by`); SFRIK refuses unknown keys itself
  (:func:`~sfrik_plugin.solo.method.check_sfrik_method_kwargs`), so it is not checked twice here,
  nor is a method whose code hands the mapping on whole (LeJEPA's own check does that).

Free-form mappings stay free: ``backbone.kwargs``, ``optimizer.kwargs`` and ``hydra``. A key
passed on purpose although nothing here reads it (a tag for your own tools, a key your own
solo-learn method reads) is named in the top-level list ``unchecked_keys``: each entry, a dotted
path, exempts that key and everything under it (``++unchecked_keys=[my_tag] ++my_tag=run-7``).

A new key read by the adapter goes into the tables below; the test that composes every packaged
config and the one that scans solo-learn's source for the keys it reads keep them honest.

Example:
    >>> from omegaconf import OmegaConf
    >>> cfg = OmegaConf.create({"max_epoch": 1, "optimizer": {"lr": 0.1}})
    >>> unknown_keys("pretrain", cfg)
    [('max_epoch', 'max_epochs')]
    >>> unknown_keys("pretrain", OmegaConf.create({"max_epoch": 1, "unchecked_keys": ["max_epoch"]}))
    []
"""

from __future__ import annotations

import difflib
import inspect
import re
from collections.abc import Iterator, Mapping, Sequence
from functools import cache, lru_cache
from typing import Any

from ..console import InputError

__all__ = [
    "UNCHECKED_KEYS",
    "ADAPTER_METHOD_KWARGS",
    "known_keys",
    "method_kwargs_read_by",
    "unknown_keys",
    "check_config_keys",
]

#: the top-level list of dotted keys exempt from the check (keys passed on purpose)
UNCHECKED_KEYS = "unchecked_keys"

#: ``method_kwargs`` keys this adapter reads for every method (beside what each method reads)
ADAPTER_METHOD_KWARGS: frozenset[str] = frozenset()

# A spec is a mapping key -> spec, a list [spec of every entry], or None: a leaf or a free-form value.
Spec = None | dict[str, Any] | list[Any]


def _leaves(*names: str) -> dict[str, Spec]:
    return dict.fromkeys(names)


_WANDB = _leaves("enabled", "entity", "project", "offline")
_CHECKPOINT = _leaves("enabled", "dir", "frequency", "keep_prev")
_AUTO_RESUME = _leaves("enabled", "max_hours")
_SCHEDULER = _leaves("name", "lr_decay_steps", "min_lr", "warmup_start_lr", "warmup_epochs", "interval")
_OPTIMIZER = {**_leaves("name", "batch_size", "lr", "weight_decay", "exclude_bias_n_norm_wd"), "kwargs": None}

#: what the pretraining and linear flows both read, beside the Trainer's arguments
_TRAINING: dict[str, Spec] = {
    **_leaves("name", "seed", "resume_from_checkpoint", "strategy", "num_nodes", "accumulate_grad_batches"),
    "num_devices": None,  # written by the launchers (parse_with_devices)
    "trust_pickle": None,  # --trust-pickle
    "backbone": {"name": None, "kwargs": None},
    "checkpoint": _CHECKPOINT,
    "auto_resume": _AUTO_RESUME,
    "wandb": _WANDB,
    "csv": _leaves("enabled", "dir"),
    "performance": _leaves("disable_channel_last"),
    "scheduler": _SCHEDULER,
    "dali": _leaves("device", "encode_indexes_into_labels"),  # solo-learn reads them when DALI is installed
}

#: one entry of a pretraining config's ``augmentations`` list (solo-learn's pipeline and data.fast_augment's)
_AUGMENTATION: dict[str, Spec] = {
    **_leaves("crop_size", "num_crops", "mean", "std"),
    "rrc": _leaves("enabled", "crop_min_scale", "crop_max_scale"),
    "color_jitter": _leaves("prob", "brightness", "contrast", "saturation", "hue"),
    "grayscale": _leaves("prob"),
    "gaussian_blur": _leaves("prob", "sigma_min", "sigma_max"),
    "solarization": _leaves("prob"),
    "equalization": _leaves("prob"),
    "horizontal_flip": _leaves("prob"),
}

_PRETRAIN: dict[str, Spec] = {
    **_TRAINING,
    **_leaves("method", "debug_augmentations"),
    "method_kwargs": None,  # checked per method (method_kwargs_read_by)
    "data": _leaves(
        "dataset",
        "train_path",
        "val_path",
        "format",
        "no_labels",
        "fraction",
        "num_workers",
        "fast_augment",
        "fast_augment_cache",
        "num_classes",  # the next three are set by solo-learn's parse_cfg
        "num_large_crops",
        "num_small_crops",
    ),
    "augmentations": [_AUGMENTATION],
    "optimizer": {**_OPTIMIZER, "classifier_lr": None},
    "knn_eval": _leaves("enabled", "k", "distance_func"),
    "momentum": _leaves("base_tau", "final_tau", "classifier"),
    "auto_umap": _leaves("enabled", "dir", "frequency"),
}

_LINEAR: dict[str, Spec] = {
    **_TRAINING,
    **_leaves("pretrained_feature_extractor", "pretrain_method", "finetune"),
    **_leaves("auto_augment", "label_smoothing", "mixup", "cutmix"),
    "data": {
        **_leaves("dataset", "train_path", "val_path", "format", "fraction", "num_workers", "num_classes"),
        "augmentations": _leaves("crop_size", "crop_min_scale", "mean", "std"),
    },
    "optimizer": {**_OPTIMIZER, "layer_decay": None},
}

_KNN: dict[str, Spec] = {
    **_leaves("pretrained_checkpoint_dir", "pretrained_feature_extractor", "trust_pickle", "device", "output"),
    **_leaves("batch_size", "k", "temperature", "distance_function", "feature_type"),
    "data": _leaves("dataset", "train_path", "val_path", "format", "num_workers", "crop_size"),
}

_FLOWS = {"pretrain": _PRETRAIN, "linear": _LINEAR, "knn": _KNN}


@lru_cache(maxsize=1)
def _trainer_arguments() -> tuple[str, ...]:
    from lightning.pytorch import Trainer

    return tuple(name for name in inspect.signature(Trainer.__init__).parameters if name != "self")


def known_keys(kind: str) -> dict[str, Spec]:
    """The key tree of a flow (``"pretrain"``, ``"linear"`` or ``"knn"``); the training flows also
    take every argument of Lightning's ``Trainer``.

    Example:
        >>> sorted(known_keys("knn")["data"])
        ['crop_size', 'dataset', 'format', 'num_workers', 'train_path', 'val_path']
        >>> "max_epochs" in known_keys("pretrain"), "max_epochs" in known_keys("knn")
        (True, False)
    """
    if kind not in _FLOWS:
        raise ValueError(f"config kind must be one of {sorted(_FLOWS)}, got {kind!r}")
    tree: dict[str, Spec] = {UNCHECKED_KEYS: None, "hydra": None}
    if kind != "knn":
        tree.update(dict.fromkeys(_trainer_arguments()))
    tree.update(_FLOWS[kind])
    return tree


_READS = re.compile(r"method_kwargs\.([A-Za-z_]\w*)")
# the whole mapping handed on (to a function, as **kwargs) or read by a computed name: its keys cannot
# be listed from the source
_OPAQUE = re.compile(r"\*\*[\w.]*method_kwargs\b|method_kwargs\s*[\[,)]|method_kwargs\.(?:get|items|keys|values|pop)\(")
_NOT_KEYS = {"get", "items", "keys", "values", "pop"}
_FRAMEWORK = ("lightning", "pytorch_lightning", "torch", "builtins", "abc", "typing")


@cache
def method_kwargs_read_by(method_class: type) -> frozenset[str] | None:
    """The ``method_kwargs`` keys a solo-learn method class (and its solo-learn bases) reads, found in
    its source (``cfg.method_kwargs.x`` and ``omegaconf_select(cfg, "method_kwargs.x", ...)``); None
    when that cannot be told (no source, or the mapping used as a whole): then nothing is checked.

    Example:
        >>> from solo.methods import METHODS
        >>> sorted(method_kwargs_read_by(METHODS["barlow_twins"]))
        ['lamb', 'proj_hidden_dim', 'proj_output_dim', 'scale_loss']
    """
    names: set[str] = set()
    for klass in method_class.__mro__:
        if klass.__module__.split(".")[0] in _FRAMEWORK:
            continue
        try:
            source = inspect.getsource(klass)
        except (OSError, TypeError):
            return None
        if _OPAQUE.search(source):
            return None
        names.update(name for name in _READS.findall(source) if name not in _NOT_KEYS)
    return frozenset(names | ADAPTER_METHOD_KWARGS)


def _method_spec(cfg: Mapping[str, Any]) -> tuple[Spec, str]:
    """The ``method_kwargs`` spec of the config's method, or None (free) when it is not checked here."""
    method = cfg.get("method")
    if not isinstance(method, str) or method == "sfrik":  # SFRIK checks its own keys
        return None, ""
    from solo.methods import METHODS

    if method not in METHODS:  # run_pretrain says so in its own words
        return None, ""
    read = method_kwargs_read_by(METHODS[method])
    return (None if read is None else dict.fromkeys(sorted(read))), f" of method {method}"


def _walk(node: Any, spec: Spec, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], Spec]]:
    """``(path, spec of its parent level)`` of every key in ``node`` that ``spec`` does not know."""
    if spec is None:
        return
    if isinstance(spec, list):
        if isinstance(node, list):
            for index, item in enumerate(node):
                yield from _walk(item, spec[0], (*path, str(index)))
        return
    if not isinstance(node, Mapping):
        return
    for key, value in node.items():
        key = str(key)
        if key not in spec:
            yield (*path, key), spec
        else:
            yield from _walk(value, spec[key], (*path, key))


def _exempt(cfg: Mapping[str, Any]) -> list[tuple[str, ...]]:
    listed = cfg.get(UNCHECKED_KEYS)
    if listed is None:
        return []
    if isinstance(listed, str) or not isinstance(listed, Sequence) or not all(isinstance(k, str) for k in listed):
        raise InputError(
            f"{UNCHECKED_KEYS} must be a list of dotted key names (e.g. [my_tag, data.my_note]), got {listed!r}"
        )
    return [tuple(k.split(".")) for k in listed]


def _all_paths(spec: Spec, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    if isinstance(spec, list):
        spec = spec[0]
    if isinstance(spec, dict):
        for key, child in spec.items():
            yield (*path, key)
            yield from _all_paths(child, (*path, key))


def _closest(path: tuple[str, ...], siblings: Spec, tree: dict[str, Spec]) -> str | None:
    """The known key a typo most likely meant: a close sibling, else a known key elsewhere with the
    same or a close last name (``lr`` at the top -> ``optimizer.lr``)."""
    key = path[-1]
    if isinstance(siblings, dict):
        close = difflib.get_close_matches(key, [str(k) for k in siblings], n=1, cutoff=0.6)
        if close:
            return ".".join((*path[:-1], close[0]))
    candidates = {".".join(p): p[-1] for p in _all_paths(tree) if p[-1] != UNCHECKED_KEYS}
    scored = [(difflib.SequenceMatcher(None, key, last).ratio(), dotted) for dotted, last in candidates.items()]
    scored = [(score, dotted) for score, dotted in scored if score >= 0.8]
    return max(scored)[1] if scored else None


def unknown_keys(kind: str, cfg: Any) -> list[tuple[str, str | None]]:
    """``(dotted key, closest known key or None)`` for every key of ``cfg`` (an OmegaConf config or
    a mapping) that neither solo-learn nor this adapter reads, in the config's order; a subtree
    under an unknown key is reported once, by its top."""
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(cfg, resolve=False) if OmegaConf.is_config(cfg) else dict(cfg)
    assert isinstance(raw, dict)
    container: dict[str, Any] = {str(key): value for key, value in raw.items()}
    tree = known_keys(kind)
    if kind == "pretrain":
        method_spec, _ = _method_spec(container)
        tree = {**tree, "method_kwargs": method_spec}
    exempt = _exempt(container)
    found = []
    for path, siblings in _walk(container, tree, ()):
        if any(path[: len(e)] == e for e in exempt):
            continue
        found.append((".".join(path), _closest(path, siblings, tree)))
    return found


def check_config_keys(kind: str, cfg: Any) -> None:
    """Raises :class:`~sfrik_plugin.console.InputError` (one line) naming the first unknown key of
    ``cfg`` and the closest known one, e.g. "`max_epoch`: unknown key; did you mean `max_epochs`?".

    Example:
        >>> from omegaconf import OmegaConf
        >>> check_config_keys("knn", OmegaConf.create({"k": [20], "batch_size": 8}))
        >>> check_config_keys("knn", OmegaConf.create({"k": [20], "batchsize": 8}))
        Traceback (most recent call last):
        ...
        sfrik_plugin.console.InputError: `batchsize`: unknown key; did you mean `batch_size`? (to pass a key on purpose, list it in unchecked_keys)
    """
    found = unknown_keys(kind, cfg)
    if not found:
        return
    (key, closest), rest = found[0], found[1:]
    method = _method_spec(cfg)[1] if key.startswith("method_kwargs.") else ""
    text = f"`{key}`: unknown key{method}"
    text += f"; did you mean `{closest}`?" if closest else ": neither solo-learn nor sfrik-plugin reads it."
    if rest:
        also = [f"`{k}`" + (f" (`{c}`?)" if c else "") for k, c in rest[:5]]
        text += " Also unknown: " + ", ".join(also) + (", ..." if len(rest) > 5 else "") + "."
    raise InputError(f"{text} (to pass a key on purpose, list it in {UNCHECKED_KEYS})")

"""From a command line to a parsed solo-learn config: argv rewriting, device counting, error exits.

The launchers take hydra command lines as solo-learn users write them and add three things:

* ``--config-name cifar10/sfrik`` names a config shipped with this package (:func:`rewrite_argv`
  turns it into hydra's ``--config-path <packaged folder> --config-name sfrik``), while
  ``--config-path`` is resolved against the current directory instead of hydra's file-relative rule;
* ``devices`` may be any form Lightning takes (an int, ``"2"``, ``"0,1"``, a list, ``auto``):
  :func:`parse_with_devices` gives solo-learn's ``parse_cfg`` the list it needs for the learning-rate
  scaling and Lightning the form it accepts (a count on CPU);
* bad input ends the process with one line and exit status 2
  (:func:`sfrik_plugin.console.exit_on_input_error`).

Example:
    >>> argv = rewrite_argv(["max_epochs=2", "--config-name", "cifar10/sfrik"], "pretrain")
    >>> argv[0], argv[1].endswith("configs/pretrain/cifar10"), argv[2:]
    ('--config-path', True, ['--config-name', 'sfrik', 'max_epochs=2'])
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from typing import Any

from ..console import InputError, get_logger
from .config import _GROUP_FOLDERS as GROUP_FOLDERS  # the option-group folders of a config folder
from .config import CONFIG_ROOT, packaged_configs, quote_override

__all__ = [
    "HYDRA_VALUE_OPTIONS",
    "split_argv",
    "rewrite_argv",
    "names_a_config",
    "general_help",
    "no_config_message",
    "count_devices",
    "precision_used",
    "parse_with_devices",
]

log = get_logger(__name__)

#: hydra options that take a value, long and short spellings
HYDRA_VALUE_OPTIONS = {
    "--config-path": "path",
    "-cp": "path",
    "--config-name": "name",
    "-cn": "name",
    "--config-dir": "dir",
    "-cd": "dir",
}
_HELP_FLAGS = ("--help", "-h", "--hydra-help", "--info", "-i")
#: our own flags, turned into config overrides before hydra sees the command line
FLAG_OVERRIDES = {
    # the one opt-in to full unpickling, for checkpoints you made yourself (never for downloads)
    "--trust-pickle": "++trust_pickle=true",
}


def split_argv(argv: Sequence[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """``(config options, other flags, overrides)`` of a hydra command line.

    Config options come back by role (``"path"``, ``"name"``, ``"dir"``) whichever spelling was
    used (``--config-name x``, ``--config-name=x``, ``-cn x``); a later one wins, as in hydra.

    Example:
        >>> split_argv(["-cn=imagenet/sfrik", "max_epochs=3", "--help"])
        ({'name': 'imagenet/sfrik'}, ['--help'], ['max_epochs=3'])
    """
    options: dict[str, str] = {}
    flags: list[str] = []
    overrides: list[str] = []
    items = list(argv)
    i = 0
    while i < len(items):
        arg = items[i]
        flag, equals, value = arg.partition("=")
        if flag in HYDRA_VALUE_OPTIONS and equals:
            options[HYDRA_VALUE_OPTIONS[flag]] = value
        elif arg in HYDRA_VALUE_OPTIONS:
            if i + 1 >= len(items):
                raise InputError(f"{arg} needs a value")
            options[HYDRA_VALUE_OPTIONS[arg]] = items[i + 1]
            i += 1
        elif arg.startswith("-"):
            flags.append(arg)
        else:
            overrides.append(arg)
        i += 1
    return options, flags, overrides


def rewrite_argv(argv: Sequence[str], kind: str) -> list[str]:
    """The command line hydra gets: config options first (hydra's parser wants them before the
    overrides), a packaged ``--config-name dataset/name`` turned into folder + leaf name, a relative
    ``--config-path`` made absolute, our own flags (:data:`FLAG_OVERRIDES`) turned into overrides,
    and override values holding '=' quoted."""
    options, flags, overrides = split_argv(argv)
    overrides += [FLAG_OVERRIDES[f] for f in flags if f in FLAG_OVERRIDES]
    flags = [f for f in flags if f not in FLAG_OVERRIDES]
    front: list[str] = []
    if "path" in options:
        path = options["path"]
        if not path.startswith(("pkg://", "file://")) and not os.path.isabs(path):
            path = os.path.abspath(path)
        front += ["--config-path", path]
        if "name" in options:
            front += ["--config-name", options["name"].removesuffix(".yaml")]
    elif "name" in options:
        folder, _, leaf = options["name"].removesuffix(".yaml").rpartition("/")
        front += ["--config-path", str(CONFIG_ROOT / kind / folder), "--config-name", leaf]
    if "dir" in options:
        front += ["--config-dir", options["dir"]]
    return front + flags + [quote_override(o) for o in overrides]


def names_a_config(argv: Sequence[str]) -> bool:
    """Whether a (rewritten) command line names a config or asks for help."""
    options, flags, _ = split_argv(argv)
    return "name" in options or any(flag in _HELP_FLAGS for flag in flags)


def no_config_message(kind: str) -> str:
    names = packaged_configs(kind)
    listing = "\n  ".join(names)
    return (
        f"sfrik-{kind}: choose a config, e.g. `--config-name {names[0]}` (shipped with sfrik-plugin) or "
        f"`--config-path DIR --config-name NAME` (your own), then override any key as `key=value`.\n"
        f"Shipped configs:\n  {listing}"
    )


def general_help(argv: Sequence[str], kind: str) -> str | None:
    """The help of ``sfrik-<kind> --help`` without a config: the shipped configs named as
    ``--config-name`` takes them, each dataset folder's option groups as overrides take them
    (``augmentations=asymmetric_multicrop``), and how to see one config's keys. None when the command
    line names a config (hydra then shows that config) or asks for no help.

    Example:
        >>> print(general_help(["--help"], "pretrain"))  # doctest: +ELLIPSIS
        usage: sfrik-pretrain --config-name NAME [key=value ...]...
          custom/sfrik...
    """
    options, flags, _ = split_argv(argv)
    if "name" in options or not any(flag in ("--help", "-h") for flag in flags):
        return None
    lines = [
        f"usage: sfrik-{kind} --config-name NAME [key=value ...]  (a shipped config)",
        f"       sfrik-{kind} --config-path DIR --config-name NAME [key=value ...]  (your own)",
        "",
        "Shipped configs (--config-name NAME):",
        *(f"  {name}" for name in packaged_configs(kind)),
    ]
    root = CONFIG_ROOT / kind
    groups = []
    for group in sorted(g for g in root.rglob("*") if g.is_dir() and g.name in GROUP_FOLDERS):
        where = group.parent.relative_to(root).as_posix()
        choices = ", ".join(sorted(f.stem for f in group.glob("*.yaml")))
        groups.append(f"  {'' if where == '.' else where + '/'}*: {group.name}={{{choices}}}")
    if groups:
        lines += ["", "Option groups of those configs (key=option):", *groups]
    names = packaged_configs(kind)
    example = next((n for n in names if n.endswith("sfrik")), names[0])
    lines += [
        "",
        f"Every key of one config and its value: sfrik-{kind} --config-name {example} --help",
        "hydra's own options: --hydra-help",
    ]
    return "\n".join(lines)


def count_devices(devices: Any, accelerator: Any) -> int:
    """How many processes a Lightning ``devices`` value asks for on ``accelerator``.

    Example:
        >>> count_devices("0,1", "gpu"), count_devices(4, "cpu"), count_devices([2, 3], "gpu")
        (2, 4, 2)
    """
    if devices is None or devices in ("auto", -1, "-1"):
        if str(accelerator) in ("gpu", "cuda", "auto"):
            import torch

            return max(1, torch.cuda.device_count())
        return 1
    if isinstance(devices, bool):
        raise InputError(f"devices must be a count, a list of ids or 'auto', got {devices!r}")
    if isinstance(devices, int):
        count = devices
    elif isinstance(devices, str):
        parts = [d for d in devices.split(",") if d.strip()]
        if "," in devices:
            count = len(parts)
        elif re.fullmatch(r"\s*\d+\s*", devices):
            count = int(devices)
        else:
            raise InputError(f"devices must be a count, a list of ids or 'auto', got {devices!r}")
    else:
        count = len(devices)
    if count < 1:
        raise InputError(f"devices must ask for at least one device, got {devices!r}")
    return count


#: Lightning's precisions, its older spellings mapped to the current ones
_PRECISIONS = {
    "16": "16-mixed",
    "bf16": "bf16-mixed",
    "32": "32-true",
    "64": "64-true",
    **{p: p for p in ("16-mixed", "bf16-mixed", "16-true", "bf16-true", "32-true", "64-true")},
    **{p: p for p in ("transformer-engine", "transformer-engine-float16")},
}


def _runs_on_cpu(accelerator: Any) -> bool:
    if str(accelerator) == "cpu":
        return True
    if str(accelerator) != "auto":
        return False
    import torch

    return not torch.cuda.is_available() and not torch.backends.mps.is_available()


def precision_used(precision: Any, accelerator: Any) -> str:
    """The precision a run trains in, in Lightning's own spelling, so that the config (and the
    ``args.json`` written from it) records what is used. On CPU, where Lightning would train
    float16 mixed precision (``16-mixed``, the GPU configs' default) as bfloat16 while the config
    still said ``16-mixed``, it becomes ``32-true``, with one line saying so; ``bf16-mixed`` stays
    available on purpose.

    Example:
        >>> precision_used("16-mixed", "cpu"), precision_used(32, "cpu"), precision_used("bf16", "gpu")
        ('32-true', '32-true', 'bf16-mixed')
    """
    unified = _PRECISIONS.get(str(precision), str(precision))
    if unified not in _PRECISIONS.values():
        allowed = ", ".join(sorted(set(_PRECISIONS.values())))
        raise InputError(f"precision={precision!r} is not a Lightning precision; choose from {allowed}")
    if unified == "16-mixed" and _runs_on_cpu(accelerator):
        log.info(
            "precision=%s: Lightning has no float16 mixed precision on CPU; training in 32-true "
            "(precision=bf16-mixed for bfloat16)",
            precision,
        )
        return "32-true"
    return unified


def parse_with_devices(cfg: Any, parse_cfg: Callable[[Any], Any]) -> Any:
    """Runs solo-learn's ``parse_cfg`` (which needs ``len(cfg.devices)`` for the lr scaling) with
    any ``devices`` form, then gives Lightning a form it takes; turns sync-BN off on CPU and picks
    ``ddp`` when several processes are asked for and no strategy is given."""
    from omegaconf import OmegaConf

    accelerator = cfg.get("accelerator", "auto")
    original = cfg.get("devices", "auto")
    if OmegaConf.is_list(original):
        original = list(original)
    n = count_devices(original, accelerator)
    cfg.devices = list(range(n))
    cfg = parse_cfg(cfg)
    cfg.num_devices = n
    if str(accelerator) == "cpu":
        cfg.devices = n  # the CPU accelerator takes a count, not a list of ids
        if cfg.get("sync_batchnorm", False):
            log.info("sync_batchnorm is turned off: it needs GPUs")
            cfg.sync_batchnorm = False
    else:
        cfg.devices = original
    if "precision" in cfg:
        cfg.precision = precision_used(cfg.precision, accelerator)
    if cfg.get("strategy") is None:
        cfg.strategy = "ddp" if n * cfg.num_nodes > 1 else "auto"
    return cfg

"""What the command-line tools print: logging on rank zero only, and silence for known upstream noise.

Library code logs through :func:`get_logger` (``logging``, never ``print``); the console tools call
:func:`setup_console` once, which shows ``[sfrik] message`` lines on standard output from the
first process of a distributed run only, and :func:`quiet_upstream_warnings`, which hides the
deprecation warnings that importing solo-learn, timm and lightning prints (and only those), so
that progress and results are what the user sees.

Example:
    >>> log = get_logger("sfrik_plugin.example")
    >>> log.info("library code logs; a CLI decides what is shown")
"""

from __future__ import annotations

import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "InputError",
    "exit_on_input_error",
    "UPSTREAM_WARNINGS",
    "get_logger",
    "process_rank",
    "is_rank_zero",
    "RankZeroFilter",
    "setup_console",
    "quiet_upstream_warnings",
]

_ROOT = "sfrik_plugin"


class InputError(ValueError):
    """Bad input the user can fix (a missing data folder, a file that is not a checkpoint, a q that
    cannot fit in memory...). Its message is one self-contained sentence naming the bad value and
    what to do; the command-line tools print it as one line and exit with status 2."""


#: The upstream warnings hidden by :func:`quiet_upstream_warnings`: (category, message regex).
#: Each is printed by code we do not own at import time, on every run, with nothing to act on.
UPSTREAM_WARNINGS: tuple[tuple[type[Warning], str], ...] = (
    # timm >= 0.9 moved its modules; solo-learn 1.0.6 imports the old paths
    (FutureWarning, r"Importing from timm\.\S+ is deprecated"),
    # solo-learn re-registers timm model names (convnext_*, poolformer_*)
    (UserWarning, r"Overwriting \S+ in registry with solo\.backbones"),
    # lightning 2.1 declares namespace packages through pkg_resources
    (DeprecationWarning, r"Deprecated call to `pkg_resources\.declare_namespace"),
    (DeprecationWarning, r"pkg_resources is deprecated as an API"),
    (UserWarning, r"pkg_resources is deprecated as an API"),
    # solo-learn's whitening module uses the pre-2.4 autocast decorators
    (FutureWarning, r"`torch\.cuda\.amp\.custom_(fwd|bwd)\(args\.\.\.\)` is deprecated"),
    # lightning 2.1 on recent torch / on a CPU-only run
    (UserWarning, r"The '\w+_dataloader' does not have many workers"),
    (UserWarning, r"GPU available but not used"),
    (UserWarning, r"The number of training batches \(\d+\) is smaller than the logging interval"),
    (FutureWarning, r"You are using `torch\.load` with `weights_only=False`"),
    (UserWarning, r"Starting from v1\.9\.0, `tensorboardX` has been removed"),
    # lightning 2.1's pytree helper on torch >= 2.5
    (Warning, r"`isinstance\(treespec, LeafSpec\)` is deprecated"),
)


def get_logger(name: str = _ROOT) -> logging.Logger:
    """The logger of a module of this package (children of ``sfrik_plugin``)."""
    return logging.getLogger(name if name.startswith(_ROOT) else f"{_ROOT}.{name}")


def process_rank() -> int:
    """Global rank of this process: torch.distributed's when initialised, else the launcher's
    environment (``RANK``, ``SLURM_PROCID``, or Lightning's ``NODE_RANK``/``LOCAL_RANK``), else 0."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return int(dist.get_rank())
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    for variable in ("RANK", "SLURM_PROCID"):
        if os.environ.get(variable, "").isdigit():
            return int(os.environ[variable])
    node, local = os.environ.get("NODE_RANK", "0"), os.environ.get("LOCAL_RANK", "0")
    return 0 if (node in ("", "0") and local in ("", "0")) else max(1, int(local or 0))


def is_rank_zero() -> bool:
    """Whether this is the first process of the run (the one that prints)."""
    return process_rank() == 0


class RankZeroFilter(logging.Filter):
    """Lets records through on rank zero only (decided per record: DDP starts after set-up)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return is_rank_zero()


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        text = record.getMessage()
        if record.levelno >= logging.WARNING:
            text = f"{record.levelname.lower()}: {text}"
        return f"[sfrik] {text}"


def setup_console(level: int = logging.INFO, stream=None) -> logging.Logger:
    """Shows this package's log records as ``[sfrik] ...`` lines on ``stream`` (standard output),
    rank zero only. Idempotent: calling it again replaces the handler, never duplicates it."""
    logger = logging.getLogger(_ROOT)
    # a logging.config.dictConfig with disable_existing_loggers (hydra's job logging does one)
    # silences loggers created before it: ours are created at import time
    for name, existing in logging.root.manager.loggerDict.items():
        if (name == _ROOT or name.startswith(_ROOT + ".")) and isinstance(existing, logging.Logger):
            existing.disabled = False
    for handler in list(logger.handlers):
        if getattr(handler, "_sfrik_console", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stdout)
    handler._sfrik_console = True  # type: ignore[attr-defined]
    handler.setFormatter(_Formatter())
    handler.addFilter(RankZeroFilter())
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    return logger


def quiet_upstream_warnings() -> None:
    """Hides exactly :data:`UPSTREAM_WARNINGS`; every other warning still shows. Processes started
    by a tool (DDP ranks, benchmark workers) run one of our entry points, which calls it again."""
    for category, message in UPSTREAM_WARNINGS:
        warnings.filterwarnings("ignore", message=message, category=category)


_WORKER_ERROR = re.compile(r"^(?:[\w.]+\.)?(\w+Error): (.*)$", re.MULTILINE)


def _one_line(error: BaseException) -> str:
    """The user-facing line of an input error, also when it crossed a DataLoader worker (whose
    re-raised message is the worker's whole traceback: its last ``XxxError: message`` line)."""
    text = str(error)
    if "Original Traceback" in text:
        found = _WORKER_ERROR.findall(text)
        if found:
            text = found[-1][1]
    return " ".join(text.split())


@contextmanager
def exit_on_input_error(prog: str) -> Iterator[None]:
    """Turns an :class:`~sfrik_plugin.console.InputError` raised inside into one line on standard
    error and exit status 2 (the convention of argparse for bad usage); everything else propagates."""
    try:
        yield
    except InputError as error:
        print(f"{prog}: error: {_one_line(error)}", file=sys.stderr, flush=True)
        raise SystemExit(2) from None

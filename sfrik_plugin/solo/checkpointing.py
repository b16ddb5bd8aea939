"""Checkpoints a crash cannot spoil, and resuming from the newest good one.

solo-learn's ``Checkpointer`` lets Lightning write ``<name>-ep=E.ckpt`` straight under its final
name and its ``AutoResumer`` takes the first ``.ckpt`` a folder lists: a process killed while
writing leaves a truncated file that the next run picks up and cannot load. Here:

* :class:`AtomicCheckpointer` (a solo-learn ``Checkpointer``) writes through a hidden temporary
  name and renames it into place, so a file under a ``.ckpt`` name is always complete; it also
  turns configuration objects inside the checkpoint into plain data, so that
  :func:`sfrik_plugin.files.checkpoints.load_checkpoint` reads it with ``weights_only=True``;
* :class:`TrustedCheckpointIO` is how Lightning reads every checkpoint it resumes from (explicit
  ``resume_from_checkpoint`` or the auto-resumer's choice): through
  :func:`sfrik_plugin.files.checkpoints.load_checkpoint`, in one read, so the file that is checked is
  the file that is loaded and the trust policy does not depend on torch's ``weights_only`` default
  (nor on ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``, which does not override an explicit
  ``weights_only=True``);
* :func:`find_resumable_checkpoint` looks through the run folders of a checkpoint directory for
  runs with the same settings (solo-learn's rule: name, method, data, epochs, optimiser...) and
  returns the highest-epoch checkpoint whose zip structure is intact, skipping (with a warning)
  any that is not.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> (folder / "run-ep=3.ckpt").write_bytes(b"truncated")
    9
    >>> is_complete_checkpoint(folder / "run-ep=3.ckpt")
    False
"""

from __future__ import annotations

import json
import os
import re
import time
import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from lightning.pytorch.plugins.io import TorchCheckpointIO
from solo.utils.checkpointer import Checkpointer

from ..console import get_logger
from ..files.checkpoints import load_checkpoint

__all__ = [
    "RESUME_MUST_MATCH",
    "checkpoint_epoch",
    "is_complete_checkpoint",
    "plain_data",
    "AtomicCheckpointer",
    "TrustedCheckpointIO",
    "find_resumable_checkpoint",
]

log = get_logger(__name__)

#: settings a run folder must share with the new run to be resumed (solo-learn's list)
RESUME_MUST_MATCH = (
    "name",
    "backbone.name",
    "method",
    "data.dataset",
    "max_epochs",
    "optimizer.name",
    "optimizer.batch_size",
    "optimizer.lr",
    "optimizer.weight_decay",
    "wandb.project",
    "wandb.entity",
    "pretrained_feature_extractor",
)

_EPOCH = re.compile(r"ep=(\d+)\.ckpt$")


def checkpoint_epoch(path: str | os.PathLike) -> int:
    """The epoch in a solo-learn checkpoint name ``...-ep=E.ckpt`` (−1 when there is none)."""
    match = _EPOCH.search(Path(path).name)
    return int(match.group(1)) if match else -1


def is_complete_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a whole PyTorch zip checkpoint: its central directory (written last)
    is readable and lists a ``data.pkl``. Cheap: reads the end of the file, not the tensors."""
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith("data.pkl") for name in archive.namelist())
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def plain_data(value: Any) -> Any:
    """``value`` with omegaconf containers and argparse namespaces turned into dicts and lists."""
    from omegaconf import DictConfig, ListConfig, OmegaConf

    if isinstance(value, (DictConfig, ListConfig)):
        return OmegaConf.to_container(value, resolve=True)
    if type(value).__name__ == "Namespace" and hasattr(value, "__dict__"):
        return {k: plain_data(v) for k, v in vars(value).items()}
    if isinstance(value, Mapping):
        return {k: plain_data(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain_data(v) for v in value]
    if isinstance(value, tuple):
        return tuple(plain_data(v) for v in value)
    return value


class AtomicCheckpointer(Checkpointer):
    """solo-learn's ``Checkpointer`` (same folders, names and ``args.json``) with atomic writes and
    plain-data checkpoints. Resuming from a checkpoint of one of its run folders continues that
    folder (solo-learn would start a new ``offline-XXXX`` one next to it and keep both)."""

    def __init__(self, *args: Any, resume_from: str | os.PathLike | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.resume_from = Path(resume_from) if resume_from is not None else None

    def initial_setup(self, trainer: Any) -> None:
        super().initial_setup(trainer)
        resumed = self.resume_from
        if resumed is not None and resumed.parent.parent.resolve() == self.logdir.resolve():
            self.path = resumed.parent
            self.ckpt_placeholder = f"{self.cfg.name}-{resumed.parent.name}" + "-ep={}.ckpt"
            self.last_ckpt = resumed  # replaced by the next save unless keep_prev
            if trainer.is_global_zero:
                for fresh in (p for p in self.logdir.iterdir() if p.is_dir() and p != self.path):
                    if not any(fresh.iterdir()):
                        fresh.rmdir()  # the folder super() just made for a new version

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: dict[str, Any]) -> None:
        for key in list(checkpoint):
            if key not in ("state_dict", "optimizer_states"):
                checkpoint[key] = plain_data(checkpoint[key])

    def save(self, trainer: Any) -> None:
        if trainer.sanity_checking:
            return
        final = self.path / self.ckpt_placeholder.format(trainer.current_epoch)
        temporary = final.with_name(f".{final.name}.partial")
        trainer.save_checkpoint(temporary)  # collective under DDP; rank zero writes
        previous: Path | str | None = getattr(self, "last_ckpt", None)
        if trainer.is_global_zero:
            os.replace(temporary, final)
            if previous and Path(previous) != final and not self.keep_prev:
                Path(previous).unlink(missing_ok=True)
        trainer.strategy.barrier("AtomicCheckpointer.save")
        self.last_ckpt = final


class TrustedCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint reader replaced by the project's one reader and its trust policy
    (tensors and plain containers only; ``trust_pickle`` for files you made yourself, never for
    downloads). Writing is Lightning's own.

    Example:
        >>> TrustedCheckpointIO(trust_pickle=False).trust_pickle
        False
    """

    def __init__(self, trust_pickle: bool = False):
        super().__init__()
        self.trust_pickle = bool(trust_pickle)

    def load_checkpoint(self, path: Any, map_location: Any = None) -> dict[str, Any]:
        return load_checkpoint(path, trust_pickle=self.trust_pickle, map_location=map_location or "cpu")


def _run_folders(checkpoint_dir: Path) -> Iterator[Path]:
    for folder, _, files in os.walk(checkpoint_dir):
        if "args.json" in files:
            yield Path(folder)


def _setting(cfg: Mapping[str, Any] | Any, dotted: str) -> Any:
    node: Any = cfg
    for part in dotted.split("."):
        try:
            node = node[part]
        except (KeyError, TypeError, AttributeError):
            return None
    return node


def find_resumable_checkpoint(
    checkpoint_dir: str | os.PathLike, cfg: Any, max_hours: float = 36.0
) -> tuple[Path | None, str | None]:
    """``(checkpoint, wandb run id)`` to resume, or ``(None, None)``.

    Among the run folders under ``checkpoint_dir`` whose ``args.json`` matches ``cfg`` on
    :data:`RESUME_MUST_MATCH` and whose newest checkpoint is younger than ``max_hours``, the most
    recent; inside it, the highest-epoch ``.ckpt`` that :func:`is_complete_checkpoint` accepts.
    """
    checkpoint_dir = Path(checkpoint_dir)
    if not checkpoint_dir.is_dir():
        return None, None
    wanted = {key: plain_data(_setting(cfg, key)) for key in RESUME_MUST_MATCH}
    candidates: list[tuple[float, Path, dict[str, Any]]] = []
    for folder in _run_folders(checkpoint_dir):
        try:
            args = json.loads((folder / "args.json").read_text())
        except (OSError, ValueError):
            log.warning("skipping %s: its args.json is unreadable", folder)
            continue
        if any(_setting(args, key) != value for key, value in wanted.items()):
            continue
        files = [p for p in folder.glob("*.ckpt") if not p.name.startswith(".")]
        if files:
            newest = max(p.stat().st_mtime for p in files)
            if time.time() - newest < max_hours * 3600:
                candidates.append((newest, folder, args))
    for _, folder, args in sorted(candidates, key=lambda c: c[0], reverse=True):
        files = sorted(
            (p for p in folder.glob("*.ckpt") if not p.name.startswith(".")),
            key=lambda p: (checkpoint_epoch(p), p.stat().st_mtime),
            reverse=True,
        )
        for path in files:
            if is_complete_checkpoint(path):
                return path, args.get("wandb_run_id")
            log.warning("skipping incomplete checkpoint %s (a crash while it was written?)", path)
    return None, None

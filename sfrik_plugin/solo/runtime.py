"""What the three launch flows share: the Lightning trainer, loggers, progress lines, resuming.

* :func:`build_trainer` passes the config keys that are ``Trainer`` arguments (solo-learn's rule),
  turns ``strategy: ddp`` into a DDP strategy that does not search for unused parameters, reads every
  checkpoint it resumes from through the project's trust policy (:class:`.checkpointing.TrustedCheckpointIO`)
  and stops at a safe point on Ctrl-C or SIGTERM (:class:`.interrupts.StopAtSafePoint`);
* :func:`build_loggers` sets up wandb as solo-learn does when a config enables it, and/or a CSV
  logger (``csv.enabled=true``);
* :class:`ProgressLines` logs one line of metrics per epoch, from rank zero only;
* :func:`resume_checkpoint` applies solo-learn's resume rules (an explicit
  ``resume_from_checkpoint``, else the auto-resumer) with :mod:`.checkpointing`'s checks.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from lightning.pytorch import Callback, Trainer
from omegaconf import OmegaConf

from ..console import InputError, get_logger
from .checkpointing import AtomicCheckpointer, TrustedCheckpointIO, find_resumable_checkpoint, is_complete_checkpoint
from .interrupts import StopAtSafePoint

__all__ = [
    "build_trainer",
    "build_loggers",
    "build_checkpointer",
    "ProgressLines",
    "format_metrics",
    "final_metrics",
    "resume_checkpoint",
]

log = get_logger(__name__)


def build_trainer(cfg: Any, callbacks: list[Any], logger: Any) -> Trainer:
    """A Lightning ``Trainer`` from the config keys that are ``Trainer`` arguments."""
    from lightning.pytorch.strategies.ddp import DDPStrategy

    container = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(container, dict)
    valid = inspect.signature(Trainer.__init__).parameters
    kwargs = {name: container[name] for name in valid if name in container}
    strategy = cfg.strategy
    if strategy == "ddp":
        strategy = DDPStrategy(find_unused_parameters=False)
    plugins = kwargs.get("plugins") or []
    plugins = list(plugins) if isinstance(plugins, (list, tuple)) else [plugins]
    kwargs.update(
        logger=logger if logger is not None else False,
        callbacks=[*callbacks, StopAtSafePoint()],
        enable_checkpointing=False,  # the AtomicCheckpointer does it
        strategy=strategy,
        # the one trust path: whatever ckpt_path fit() gets is read by load_checkpoint's policy
        plugins=[*plugins, TrustedCheckpointIO(trust_pickle=bool(cfg.get("trust_pickle", False)))],
    )
    return Trainer(**kwargs)


def build_loggers(cfg: Any, model: Any = None) -> tuple[Any, list[Any]]:
    """``(logger or list of loggers or None, extra callbacks)`` for wandb and/or CSV."""
    loggers: list[Any] = []
    callbacks: list[Any] = []
    if cfg.get("wandb", {}).get("enabled", False):
        from lightning.pytorch.callbacks import LearningRateMonitor
        from lightning.pytorch.loggers.wandb import WandbLogger

        wandb_logger = WandbLogger(
            name=cfg.name,
            project=cfg.wandb.project,
            entity=cfg.wandb.entity,
            offline=cfg.wandb.offline,
            resume="allow" if cfg.get("_wandb_run_id") else None,
            id=cfg.get("_wandb_run_id"),
        )
        if model is not None:
            wandb_logger.watch(model, log="gradients", log_freq=100)
        wandb_logger.log_hyperparams(dict(OmegaConf.to_container(cfg)))  # type: ignore[arg-type]
        loggers.append(wandb_logger)
        callbacks.append(LearningRateMonitor(logging_interval="step"))
    if cfg.get("csv", {}).get("enabled", False):
        from lightning.pytorch.loggers import CSVLogger

        loggers.append(CSVLogger(save_dir=cfg.csv.get("dir", "logs"), name=cfg.name))
    if not loggers:
        return None, callbacks
    return (loggers[0] if len(loggers) == 1 else loggers), callbacks


def build_checkpointer(cfg: Any, subdir: str, resume_from: str | None = None) -> AtomicCheckpointer | None:
    """The checkpointer of a flow (``<checkpoint.dir>/<subdir>/<version>/``), or None when off;
    resuming from one of its run folders continues that folder."""
    if not cfg.checkpoint.enabled:
        return None
    return AtomicCheckpointer(
        cfg,
        logdir=str(Path(cfg.checkpoint.dir) / subdir),
        frequency=cfg.checkpoint.frequency,
        keep_prev=cfg.checkpoint.keep_prev,
        resume_from=resume_from,
    )


def format_metrics(metrics: Mapping[str, Any], prefixes: Sequence[str]) -> str:
    """``key=value`` for the epoch-level metrics whose names start with one of ``prefixes``.

    Example:
        >>> format_metrics({"train_loss": 0.51234, "train_loss_step": 0.6, "val_acc1": 70.4, "lr": 0.1}, ("train_", "val_"))
        'train_loss=0.5123 val_acc1=70.4'
    """
    parts = []
    for key in sorted(metrics):
        if key.startswith(tuple(prefixes)) and not key.endswith(("_step", "_epoch")):
            value = metrics[key]
            parts.append(f"{key}={float(value.item() if hasattr(value, 'item') else value):.4g}")
    return " ".join(parts)


def final_metrics(trainer: Trainer) -> dict[str, float]:
    """The trainer's last metrics as plain floats."""
    out = {}
    for key, value in trainer.callback_metrics.items():
        try:
            out[key] = float(value.item() if hasattr(value, "item") else value)
        except (TypeError, ValueError):
            continue
    return out


class ProgressLines(Callback):
    """Logs the start of training and one line of metrics per epoch (rank zero only)."""

    def __init__(self, prefixes: Sequence[str]):
        self.prefixes = tuple(prefixes)

    def on_train_start(self, trainer: Trainer, pl_module: Any) -> None:
        if trainer.is_global_zero:
            log.info(
                "training %s on %d process(es) (%d node(s), strategy %s)",
                type(pl_module).__name__,
                trainer.world_size,
                trainer.num_nodes,
                type(trainer.strategy).__name__,
            )

    def on_train_epoch_end(self, trainer: Trainer, pl_module: Any) -> None:
        if trainer.is_global_zero and not trainer.sanity_checking:
            line = format_metrics(trainer.callback_metrics, self.prefixes)
            log.info("epoch %d/%d %s", trainer.current_epoch + 1, trainer.max_epochs, line)


def resume_checkpoint(cfg: Any, subdir: str) -> str | None:
    """solo-learn's resume rules with checks: an explicit ``resume_from_checkpoint`` must be a
    complete checkpoint (else one clear error); otherwise, with ``auto_resume.enabled``, the newest
    complete checkpoint of a matching run under ``<checkpoint.dir>/<subdir>`` (its wandb run id is
    kept in ``cfg._wandb_run_id`` so the wandb run continues too). Either file is then read by the
    trainer through :class:`.checkpointing.TrustedCheckpointIO`: one read, under the trust policy."""
    explicit = cfg.get("resume_from_checkpoint")
    if explicit is not None:
        del cfg.resume_from_checkpoint
        path = Path(str(explicit))
        if not is_complete_checkpoint(path):
            raise InputError(
                f"resume_from_checkpoint={path} is not a complete checkpoint (missing, truncated or not a "
                "Lightning .ckpt); point it at another file, or drop it to start afresh"
            )
        log.info("resuming from %s", path)
        return str(path)
    if cfg.auto_resume.enabled:
        found, wandb_run_id = find_resumable_checkpoint(
            Path(cfg.checkpoint.dir) / subdir, cfg, max_hours=float(cfg.auto_resume.max_hours)
        )
        if found is not None:
            log.info("auto-resume: continuing from %s", found)
            cfg._wandb_run_id = wandb_run_id
            return str(found)
    return None

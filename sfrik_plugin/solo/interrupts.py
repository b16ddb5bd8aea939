"""Stopping a Lightning training at a safe point when SIGINT or SIGTERM arrives (see
:mod:`sfrik_plugin.interrupts` for the process-level rules).

:class:`StopAtSafePoint` (added to every trainer by :func:`sfrik_plugin.solo.runtime.build_trainer`)
turns the watch's recording mode on for the length of ``fit`` and, after every training batch, asks
whether a stop signal arrived — under DDP as one all-reduce over the ranks, so that every rank stops
after the *same* batch (a rank that stopped alone would leave the others waiting in the next
gradient all-reduce). Then it raises :class:`~sfrik_plugin.interrupts.Interrupted` naming the last
complete checkpoint. A batch boundary is safe: checkpoints are written at epoch ends, whole, under a
temporary name (:class:`.checkpointing.AtomicCheckpointer`), and the epoch in progress is redone
identically on resume (each epoch's order and augmentations depend on (seed, epoch) only), so nothing
is lost but the partial epoch's compute. Stopping by ``trainer.should_stop`` instead would let
solo-learn's checkpointer save the partial epoch as if complete, and the resumed run would skip its
rest.

Two details of Lightning 2.1 that this class works around:

* its SIGTERM handler sets ``trainer.received_sigterm``, which makes each rank raise on its own at its
  next batch end: with a signal arriving between two ranks' checks, one rank stops and the others
  hang. The handler is replaced by the watch's (which forwards SIGTERM to the ranks this process
  started, as Lightning's did);
* its child-process observer SIGKILLs rank 0 as soon as a rank it started exits with a non-zero
  status, which an interrupted rank does (130/143): rank 0 takes its ranks off the observer's list
  when the stop is agreed and waits for them itself before it exits.

The cost under DDP: one all-reduce of one integer per training step (none on one process).
"""

from __future__ import annotations

import signal
from typing import Any

from lightning.pytorch import Callback, Trainer

from ..interrupts import WATCH, Interrupted, InterruptWatch

__all__ = ["StopAtSafePoint"]


class StopAtSafePoint(Callback):
    """Stops ``fit`` after the first training batch all ranks end with a stop signal pending.

    Example:
        >>> StopAtSafePoint().watch is WATCH
        True
    """

    def __init__(self, watch: InterruptWatch = WATCH):
        self.watch = watch
        self._section: Any = None

    # the recording section spans fit -----------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        if self._section is None:
            self._section = self.watch.deferring()
            self._section.__enter__()
        self.watch.on_deferred_signal = lambda signum: self._forward(trainer, signum)
        # Lightning composes the handler installed before fit (the watch's) after its own notifier;
        # without the notifier it neither sets received_sigterm nor forwards the signal twice
        trainer._signal_connector._sigterm_notifier_fn = lambda signum, _: None  # type: ignore[method-assign]

    def _end_section(self) -> None:
        if self._section is not None:
            self._section.__exit__(None, None, None)
            self._section = None
        self.watch.on_deferred_signal = None

    def teardown(self, trainer: Trainer, pl_module: Any, stage: str) -> None:
        self._end_section()

    def on_exception(self, trainer: Trainer, pl_module: Any, exception: BaseException) -> None:
        self._end_section()

    # the safe point ------------------------------------------------------------------------------------
    def on_train_batch_end(self, trainer: Trainer, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        signum = self._agreed_signal(trainer)
        if signum:
            self._release_children(trainer)
            raise Interrupted(signum, self._where(trainer))

    def _agreed_signal(self, trainer: Trainer) -> int:
        """The stop signal if any rank has one pending (the largest number), else 0."""
        import torch
        import torch.distributed as dist

        local = int(self.watch.pending or 0)
        if trainer.world_size <= 1 or not (dist.is_available() and dist.is_initialized()):
            return local
        flag = torch.tensor([local], dtype=torch.int32, device=trainer.strategy.root_device)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
        return int(flag.item())

    def _forward(self, trainer: Trainer, signum: int) -> None:
        """SIGTERM sent to rank 0 alone goes on to the ranks it started (Ctrl-C reaches them already)."""
        if signum != signal.SIGTERM:
            return
        for proc in getattr(trainer.strategy.launcher, "procs", None) or []:
            if proc.poll() is None:
                proc.send_signal(signum)

    def _release_children(self, trainer: Trainer) -> None:
        procs = getattr(trainer.strategy.launcher, "procs", None)
        if procs:
            self.watch.children.extend(procs)
            procs.clear()  # the list Lightning's observer watches: it now sees no child to fail

    @staticmethod
    def _where(trainer: Trainer) -> str:
        from .checkpointing import AtomicCheckpointer

        last = None
        for callback in trainer.callbacks:  # type: ignore[attr-defined]
            if isinstance(callback, AtomicCheckpointer):
                last = getattr(callback, "last_ckpt", None)
        done = f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}, step {trainer.global_step}"
        kept = f"last complete checkpoint: {last}" if last else "no checkpoint was written yet"
        return f"stopped in {done}; {kept}"

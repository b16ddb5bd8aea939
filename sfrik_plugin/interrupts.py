"""Ctrl-C and SIGTERM are faults too: work stops at a safe point and says so, never "done".

What a person does to stop a run is press Ctrl-C (SIGINT to the terminal's whole process group:
the launcher, its DDP ranks, its DataLoader workers, a benchmark's worker) or ``kill PID``
(SIGTERM to one process). Either must end with the last complete checkpoint kept, one line saying
what was interrupted and how to continue, and exit status 128 + signal (130 for SIGINT, 143 for
SIGTERM) — never 0, which a script or a benchmark would read as "finished".

* :data:`WATCH` is the process's one :class:`InterruptWatch`. :func:`watching_interrupts` installs
  its handlers for SIGINT and SIGTERM. Outside a *deferring* section a signal raises
  :class:`Interrupted` at once (nothing is half-written there). Inside one (training: see
  ``sfrik_plugin.solo.interrupts``) the first signal is only recorded, and the training loop stops at
  its next safe point (a batch boundary that all DDP ranks agree on, never inside a checkpoint save);
  a second Ctrl-C stops at once. DataLoader workers forked during training inherit the recording
  handler, so a Ctrl-C to the process group does not kill them under the main process's feet.
* :class:`Interrupted` derives from ``BaseException``: ``except Exception`` blocks (hydra's error
  report, a tool's retry loop) do not swallow it, and Lightning re-raises it where it would turn a
  ``KeyboardInterrupt`` into a "graceful shutdown" that returns as if training had finished.
* :func:`exit_on_interrupt` turns it (or a stray ``KeyboardInterrupt``) into the one line and the
  exit status. Ctrl-C pressed again while the process winds down changes neither: during the wait
  for the DDP ranks it ends them at once, and during the interpreter's exit (torch's finalisers)
  it is ignored, so no ``KeyboardInterrupt`` traceback follows the line.

Example:
    >>> import signal
    >>> Interrupted(signal.SIGINT).exit_code, Interrupted(signal.SIGTERM).exit_code
    (130, 143)
    >>> watch = InterruptWatch()
    >>> with watch.deferring():
    ...     watch.handle(signal.SIGTERM, None)   # recorded, not raised: the loop stops at a safe point
    >>> watch.pending
    <Signals.SIGTERM: 15>
    >>> watch.raise_if_pending()
    Traceback (most recent call last):
    ...
    sfrik_plugin.interrupts.Interrupted: interrupted by SIGTERM
"""

from __future__ import annotations

import atexit
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from .console import is_rank_zero

__all__ = ["Interrupted", "InterruptWatch", "WATCH", "watching_interrupts", "exit_on_interrupt", "signal_name"]

#: the signals a person uses to stop a run
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def signal_name(signum: int) -> str:
    """``"SIGINT"`` for 2, and so on.

    Example:
        >>> signal_name(15)
        'SIGTERM'
    """
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class Interrupted(BaseException):
    """A run stopped because of SIGINT or SIGTERM; :attr:`exit_code` is 128 + the signal."""

    def __init__(self, signum: int, detail: str = ""):
        self.signum = signal.Signals(signum)
        self.detail = detail
        super().__init__(f"interrupted by {signal_name(signum)}" + (f": {detail}" if detail else ""))

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signum)


class InterruptWatch:
    """Records stop signals; raises at once unless inside :meth:`deferring` (module docstring)."""

    def __init__(self) -> None:
        self.pending: signal.Signals | None = None
        self._deferring = 0
        self._sigints = 0
        #: called with the signal number when one arrives while deferring (e.g. to forward it to the
        #: DDP ranks this process started); must be quick and must not raise
        self.on_deferred_signal: Callable[[int], None] | None = None
        #: processes this one started that must end before it exits (DDP ranks released from
        #: Lightning's observer)
        self.children: list[Any] = []

    def reset(self) -> None:
        self.pending, self._sigints = None, 0

    @property
    def is_deferring(self) -> bool:
        return self._deferring > 0

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The signal handler."""
        signum = signal.Signals(signum)
        if self.pending is None:
            self.pending = signum
        if signum == signal.SIGINT:
            self._sigints += 1
        if self._deferring and self._sigints < 2:
            if self.on_deferred_signal is not None:
                self.on_deferred_signal(int(signum))
            return
        # not deferring, or Ctrl-C pressed twice: stop now (a checkpoint save may leave a hidden partial file)
        raise Interrupted(self.pending)

    @contextmanager
    def deferring(self) -> Iterator[InterruptWatch]:
        """Inside: a first signal is recorded in :attr:`pending` and the work stops at its next safe point."""
        self._deferring += 1
        try:
            yield self
        finally:
            self._deferring -= 1

    def raise_if_pending(self, detail: str = "") -> None:
        """Raises :class:`Interrupted` if a signal arrived (e.g. after work that ran to its end anyway)."""
        if self.pending is not None:
            raise Interrupted(self.pending, detail)


#: the process's watch: signals are per process, and so is this
WATCH = InterruptWatch()


@contextmanager
def watching_interrupts(watch: InterruptWatch = WATCH) -> Iterator[InterruptWatch]:
    """Installs ``watch``'s handler for SIGINT and SIGTERM (main thread only) and restores the previous
    handlers afterwards."""
    if threading.current_thread() is not threading.main_thread():
        yield watch
        return
    previous: dict[int, Any] = {s: signal.getsignal(s) for s in STOP_SIGNALS}
    watch.reset()
    for stop in STOP_SIGNALS:
        signal.signal(stop, watch.handle)
    try:
        yield watch
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)


@contextmanager
def exit_on_interrupt(prog: str, describe: Callable[[Interrupted], str] | None = None) -> Iterator[None]:
    """Turns :class:`Interrupted` (or ``KeyboardInterrupt``) into one line on standard error and exit
    status 128 + signal. ``describe(error)`` says what was interrupted, what is kept and how to go on.

    Example:
        >>> import signal
        >>> try:
        ...     with exit_on_interrupt("demo", lambda e: "nothing was written"):
        ...         raise Interrupted(signal.SIGINT)
        ... except SystemExit as stop:
        ...     print(stop.code)
        130
    """
    try:
        yield
    except KeyboardInterrupt:
        _report(prog, Interrupted(signal.SIGINT), describe)
    except Interrupted as error:
        _report(prog, error, describe)


def _report(prog: str, error: Interrupted, describe: Callable[[Interrupted], str] | None) -> None:
    # Ctrl-C pressed again while this process winds down must not turn the one line into a traceback:
    # while the ranks finish, it stops them at once; during the interpreter's exit, it is ignored
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, _stop_children_now) if in_main_thread else None
    try:
        for child in WATCH.children:  # the DDP ranks this process started: they stop at the same batch
            try:
                child.wait(timeout=120)
            except Exception:  # noqa: BLE001 - still running after two minutes, or already reaped
                child.kill()
        WATCH.children.clear()
        if is_rank_zero():
            what = describe(error) if describe is not None else ""
            line = f"{prog}: interrupted by {signal_name(error.signum)}" + (f"; {what}" if what else "")
            print(line, file=sys.stderr)
            sys.stderr.flush()
    finally:
        if in_main_thread:
            # an in-process caller (a test, a notebook) gets its handler back; the exit ignores Ctrl-C
            signal.signal(signal.SIGINT, previous if previous is not None else signal.SIG_DFL)
            _ignore_ctrl_c_at_exit()
    raise SystemExit(error.exit_code) from None


def _stop_children_now(signum: int, frame: FrameType | None) -> None:
    """SIGINT handler while :func:`_report` waits for the ranks: a second Ctrl-C ends them now."""
    for child in list(WATCH.children):
        try:
            child.kill()
        except Exception:  # noqa: BLE001 - already gone
            pass


def _ignore_ctrl_c_at_exit() -> None:
    """Makes :func:`_ignore_ctrl_c` the last exit handler registered. Exit handlers run
    last-registered first, so it runs before torch's and multiprocessing's finalisers (joining
    DataLoader workers, tearing down process groups), where a Ctrl-C would print a
    ``KeyboardInterrupt`` traceback. Registered anew each time, so it stays last in a process that
    reports more than once (a notebook, a test run)."""
    atexit.unregister(_ignore_ctrl_c)
    atexit.register(_ignore_ctrl_c)


def _ignore_ctrl_c() -> None:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.SIG_IGN)

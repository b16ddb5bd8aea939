"""One fresh process per configuration: a crash, kill or time-out becomes a row, not the end of a run.

Every configuration of a profile runs in its own child process, so that no configuration
inherits another's memory peak, and so that an out-of-memory kill, a segfault or a hang is
reported (:func:`run_isolated` returns ``{"status": "crashed" | "timeout" | "failed", ...}``)
instead of taking the whole profile down. Inside the child, :func:`limit_address_space` turns an
allocation beyond the budget into an error, and :func:`quiet_child` sends library chatter to a log.

Example:
    >>> import os
    >>> run_isolated(os._exit, 3, timeout=60)
    {'status': 'crashed', 'reason': 'exited with status 3'}
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from multiprocessing.context import BaseContext
from typing import Any

__all__ = [
    "describe_exit",
    "isolation_context",
    "run_isolated",
    "quiet_child",
    "limit_address_space",
    "is_out_of_memory",
]


def describe_exit(exitcode: int | None) -> str:
    """Why a child process ended, in words.

    Example:
        >>> describe_exit(-9)
        'killed by SIGKILL (the out-of-memory killer, or a manual kill)'
    """
    if exitcode is None:
        return "still running"
    if exitcode == 0:
        return "exited normally without a result"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        if -exitcode == signal.SIGKILL:
            return f"killed by {name} (the out-of-memory killer, or a manual kill)"
        return f"killed by {name}"
    return f"exited with status {exitcode}"


def isolation_context(preload: Sequence[str] = ()) -> BaseContext:
    """A multiprocessing context whose every child is a fresh process.

    ``forkserver`` (Linux): one server process imports ``preload`` once (torch, solo-learn: seconds
    each) and forks a clean child per configuration, so no child inherits another's memory
    peak and a start costs milliseconds. Elsewhere ``spawn`` (a new interpreter per child).

    Example:
        >>> context = isolation_context(["torch"])
        >>> context.get_start_method() in ("forkserver", "spawn")
        True
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        if preload:
            context.set_forkserver_preload(list(preload))
        return context
    return multiprocessing.get_context("spawn")


def _child_main(connection: Connection, target: Callable[[Any], dict], spec: Any) -> None:
    try:
        result = target(spec)
    except BaseException as error:  # report everything, including MemoryError
        result = {"status": "failed", "reason": f"{type(error).__name__}: {error}", "traceback": traceback.format_exc()}
    try:
        connection.send(result)
    finally:
        connection.close()


def run_isolated(
    target: Callable[[Any], dict],
    spec: Any,
    timeout: float | None = None,
    context: BaseContext | None = None,
) -> dict:
    """Runs ``target(spec)`` in a fresh child process and returns its result dict.

    ``target`` must be importable (a module-level function) and ``spec`` picklable. A child that
    raises returns ``{"status": "failed", "reason": ...}``; one that dies (out-of-memory kill,
    segfault, ``os._exit``) or runs past ``timeout`` seconds gives
    ``{"status": "crashed" | "timeout", "reason": ...}``. Never raises for the child's sake.

    Example:
        >>> run_isolated(dict, {"status": "ok"}, timeout=60)
        {'status': 'ok'}
        >>> run_isolated(int, "seven", timeout=60)["reason"]
        "ValueError: invalid literal for int() with base 10: 'seven'"
    """
    context = context or isolation_context()
    receiver, sender = context.Pipe(duplex=False)
    process = context.Process(target=_child_main, args=(sender, target, spec), daemon=True)  # type: ignore[attr-defined]
    process.start()
    sender.close()  # the child holds the only writer: its death closes the pipe
    result = None
    try:
        if receiver.poll(timeout):
            try:
                result = receiver.recv()
            except EOFError:  # died before sending
                result = None
        else:
            process.kill()
            process.join()
            return {"status": "timeout", "reason": f"no result after {timeout:g} s (child killed)"}
    finally:
        receiver.close()
    process.join(timeout=30)
    if process.is_alive():
        process.kill()
        process.join()
    if result is None:
        return {"status": "crashed", "reason": describe_exit(process.exitcode)}
    return result


def quiet_child(log_path: str | None) -> None:
    """Sends this (child) process's stderr — library warnings, profiler chatter — to ``log_path``
    and silences Python warnings; does nothing without a path."""
    if not log_path:
        return
    handle = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(handle, 2)
    os.close(handle)
    sys.stderr = open(2, "w", closefd=False, buffering=1)
    import warnings

    warnings.simplefilter("ignore")


def limit_address_space(limit: int | None) -> None:
    """Makes allocations beyond ``limit`` more bytes of address space than this process has now
    fail with an error, on Linux/Unix, instead of pushing the machine into swap or the OOM killer
    (the safety net under the memory prediction). ``None`` or 0: no limit."""
    if not limit:
        return
    try:
        import resource
    except ImportError:  # Windows: no limit, the prediction alone protects
        return
    try:
        with open("/proc/self/status") as handle:
            current = next(int(line.split()[1]) * 1024 for line in handle if line.startswith("VmSize:"))
    except (OSError, StopIteration):
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    wanted = current + int(limit)
    if hard != resource.RLIM_INFINITY:
        wanted = min(wanted, hard)
    resource.setrlimit(resource.RLIMIT_AS, (wanted, hard))


def is_out_of_memory(error: BaseException) -> bool:
    """Whether ``error`` is an allocation failure (torch's CPU/CUDA messages or ``MemoryError``).

    Example:
        >>> is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 2 GiB"))
        True
    """
    text = str(error).lower()
    return isinstance(error, MemoryError) or "out of memory" in text or "can't allocate memory" in text

"""The process-level interrupt rules (sfrik_plugin.interrupts), with real signals sent to this process:
outside a deferring section a stop signal raises at once; inside, the first one is recorded and work
goes on to its safe point; a second Ctrl-C stops at once, a second SIGTERM does not; the exit status
is 128 + signal with one line; the previous handlers come back."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time

import pytest

from sfrik_plugin.interrupts import Interrupted, InterruptWatch, exit_on_interrupt, watching_interrupts


def _send(signum: int) -> None:
    os.kill(os.getpid(), signum)
    time.sleep(0.05)  # Python runs the handler at the next bytecode boundary of the main thread


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_outside_a_deferring_section_a_signal_stops_at_once(signum):
    watch = InterruptWatch()
    with watching_interrupts(watch), pytest.raises(Interrupted) as stopped:
        _send(signum)
        pytest.fail("the signal did not stop the work")
    assert stopped.value.signum == signum and stopped.value.exit_code == 128 + signum


def test_inside_a_deferring_section_the_first_signal_is_recorded_and_work_goes_on():
    watch = InterruptWatch()
    forwarded = []
    watch.on_deferred_signal = forwarded.append
    with watching_interrupts(watch):
        with watch.deferring():
            _send(signal.SIGTERM)
            _send(signal.SIGTERM)  # a repeated SIGTERM (a launcher forwarding it) does not force
            work_went_on = True
        assert work_went_on and watch.pending == signal.SIGTERM and forwarded == [signal.SIGTERM] * 2
        with pytest.raises(Interrupted, match="SIGTERM"):
            watch.raise_if_pending()


def test_a_second_ctrl_c_stops_at_once_even_while_deferring():
    watch = InterruptWatch()
    with watching_interrupts(watch), watch.deferring():
        _send(signal.SIGINT)
        assert watch.pending == signal.SIGINT
        with pytest.raises(Interrupted) as stopped:
            _send(signal.SIGINT)
            pytest.fail("the second Ctrl-C did not stop the work")
    assert stopped.value.exit_code == 130


def test_the_previous_handlers_come_back():
    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGTERM, mine)
    try:
        with watching_interrupts(InterruptWatch()):
            assert signal.getsignal(signal.SIGTERM) is not mine
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, before)


@pytest.mark.parametrize("error, code", [(Interrupted(signal.SIGTERM, "at step 3"), 143), (KeyboardInterrupt(), 130)])
def test_exit_on_interrupt_prints_one_line_and_exits_128_plus_signal(capsys, error, code):
    with pytest.raises(SystemExit) as stop, exit_on_interrupt("tool", lambda e: f"{e.detail or 'nothing'}; kept: x"):
        raise error
    assert stop.value.code == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"tool: interrupted by {signal.Signals(code - 128).name}; ")
    assert "Traceback" not in err


def test_exit_on_interrupt_gives_the_callers_ctrl_c_handler_back(capsys):
    def mine(signum, frame):
        pass

    before = signal.signal(signal.SIGINT, mine)
    try:
        with pytest.raises(SystemExit), exit_on_interrupt("tool"):
            raise Interrupted(signal.SIGINT)
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, before)


# A process that was interrupted still has to wind down: wait for the DDP ranks it started, then run
# the interpreter's exit handlers (torch's and multiprocessing's finalisers). People press Ctrl-C again
# while it does; that must neither print a traceback nor change the exit status.
_WINDING_DOWN = """
import atexit, signal, subprocess, sys, time
from sfrik_plugin.interrupts import WATCH, Interrupted, exit_on_interrupt

def slow_finaliser():  # stands for torch's and multiprocessing's exit handlers
    print("finalising", flush=True)
    time.sleep(2)

atexit.register(slow_finaliser)
if sys.argv[1] == "rank":  # a rank that does not stop by itself (it would for two minutes)
    WATCH.children.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]))
with exit_on_interrupt("tool", lambda e: "kept: x"):
    print("waiting", flush=True)
    raise Interrupted(signal.SIGINT)
"""


@pytest.mark.slow(reason="starts a Python process per case")
@pytest.mark.parametrize("window, cue", [("exit", "finalising"), ("rank", "waiting")])
def test_a_second_ctrl_c_while_winding_down_prints_no_traceback(tmp_path, window, cue):
    script = tmp_path / "winding_down.py"
    script.write_text(_WINDING_DOWN)
    proc = subprocess.Popen(
        [sys.executable, str(script), window],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # so that the finally below also ends the rank if the code under test does not
    )
    try:
        for line in proc.stdout:
            if line.strip() == cue:
                break
        time.sleep(0.3)  # into the finaliser's sleep, or the wait for the rank
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)  # the rank would have held it for 120 s
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, err
    assert err == "tool: interrupted by SIGINT; kept: x\n", err

"""One fresh process per configuration: the worker really runs elsewhere, and whatever kills it —
an exception, an exit, a signal, a time-out, an allocation beyond the limit — becomes a row."""

from __future__ import annotations

import os
import signal
import time

import pytest

from sfrik_plugin.contenders import MIB
from sfrik_plugin.profiler.analysis import result_row
from sfrik_plugin.profiler.isolation import describe_exit, isolation_context, run_isolated
from sfrik_plugin.profiler.workers import loss_worker


@pytest.fixture(scope="module")
def context():
    return isolation_context(["torch", "sfrik_plugin.profiler"])


def kill_myself(signal_number: int) -> dict:
    """A worker that dies by a signal before it can report (module level: the child imports it)."""
    import resource

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # a SIGSEGV must not leave a core file behind
    os.kill(os.getpid(), signal_number)
    time.sleep(60)  # never reached: the signal ends the process first
    return {"status": "ok"}


def test_describe_exit():
    assert "SIGKILL" in describe_exit(-9) and "out-of-memory" in describe_exit(-9)
    assert describe_exit(-11) == "killed by SIGSEGV"
    assert describe_exit(3) == "exited with status 3"
    assert describe_exit(0) == "exited normally without a result"
    assert describe_exit(None) == "still running"


def test_each_configuration_runs_in_a_fresh_process(context, tmp_path):
    spec = dict(contender="sfrik-gram", n=16, q=32, warmup=1, min_repeats=2, max_repeats=3, threads=1)
    spec["log"] = str(tmp_path / "w.log")
    first = run_isolated(loss_worker, spec, timeout=300, context=context)
    second = run_isolated(loss_worker, spec, timeout=300, context=context)
    for result in (first, second):
        assert result["status"] == "ok", result
        assert 2 <= len(result["samples"]) <= 3 and all(s > 0 for s in result["samples"])
        assert result["peak_bytes"] > 0 and result["alloc_peak_bytes"] == result["peak_bytes"]
        assert result["threads"] == 1
    # the worker reports the process it ran in: not this one, and a new one per configuration
    assert os.getpid() not in (first["pid"], second["pid"]) and first["pid"] != second["pid"]
    # the same worker run here reports this process: the pid is the worker's, not a constant
    assert loss_worker(dict(spec, log=None, threads=None))["pid"] == os.getpid()


def test_errors_and_deaths_are_rows_not_exceptions(context):
    failed = run_isolated(loss_worker, dict(contender="nope", n=4, q=4), timeout=300, context=context)
    assert failed["status"] == "failed" and "unknown contender 'nope'" in failed["reason"]
    assert "Traceback" in failed["traceback"]

    exited = run_isolated(os._exit, 3, timeout=300, context=context)
    assert exited == {"status": "crashed", "reason": "exited with status 3"}

    killed = run_isolated(kill_myself, signal.SIGKILL, timeout=300, context=context)
    assert killed == {"status": "crashed", "reason": describe_exit(-signal.SIGKILL)}
    segfault = run_isolated(kill_myself, signal.SIGSEGV, timeout=300, context=context)
    assert segfault == {"status": "crashed", "reason": "killed by SIGSEGV"}

    stalled = run_isolated(time.sleep, 120, timeout=0.5, context=context)
    assert stalled == {"status": "timeout", "reason": "no result after 0.5 s (child killed)"}

    rows = [result_row({"q": q}, result) for q, result in enumerate((exited, killed, stalled))]
    assert [r["status"] for r in rows] == ["crashed", "crashed", "timeout"]
    assert all(r["median_s"] is None and r["repeats"] == 0 for r in rows)
    assert rows[1]["reason"].startswith("killed by SIGKILL")


def test_address_space_limit_turns_an_oversized_loss_into_an_oom_row(context):
    # 2 x 256 x 262144 floats = 512 MiB of inputs against a 64 MiB allowance: refused, reported
    spec = dict(contender="sfrik-gram", n=256, q=262144, address_space_limit=64 * MIB, threads=1)
    result = run_isolated(loss_worker, spec, timeout=300, context=context)
    assert result["status"] == "oom", result
    assert "out of memory" in result["reason"] and result["pid"] != os.getpid()

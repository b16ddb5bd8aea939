"""Helpers of tests that run this checkout in child processes (launchers, benchmark runners)."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


def checkout_env(**extra: str) -> dict:
    """The environment of a child process that imports this checkout (``PYTHONPATH`` first), plus ``extra``."""
    env = dict(os.environ, **extra)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


#: the ``common_overrides`` of the tiny CPU benchmarks (test_benchmark_e2e, test_benchmark_resume)
BENCH_CPU_OVERRIDES = [
    "data.num_workers=0",
    "accelerator=cpu",
    "devices=1",
    "strategy=auto",
    "precision=32",
    "sync_batchnorm=false",
    "wandb=off",
    "scheduler.warmup_epochs=0",
    "++performance.disable_channel_last=true",
    "++enable_progress_bar=false",
    "++num_sanity_val_steps=0",
    "++log_every_n_steps=1",
]

"""Profiling SFRIK against VICReg and Barlow Twins: the reusable logic behind ``scripts/profile_*.py``.

* :mod:`.measure` — time of a call, its exact tensor-allocation peak, process memory, the machine;
* :mod:`.isolation` — one fresh process per configuration, whose crash, kill or time-out is a row;
* :mod:`.workers` — what runs in that process: a loss step, or whole training steps;
* :mod:`.grid` — the scripts' measuring loop: a grid of configurations over rounds, pooled;
* :mod:`.analysis` — rows, power-law slopes, extrapolations, loss and training summaries;
* :mod:`.plots` — markdown tables and PNG plots, styled by the contender registry;
* :mod:`.options` — the scripts' shared command-line options and parsers;
* :mod:`.gloo_ranks` — the one way in and out of a CPU process-group rank (gloo);
* :mod:`.rank_profile` — SFRIK's sharded path timed per rank (``world_size`` gloo processes);
* :mod:`.n_sweep`, :mod:`.n_sweep_report` — SFRIK against SIGReg as the batch N grows: FLOP and
  memory models, crossovers, tables and plots (``scripts/profile_n_sweep.py``);
* :mod:`.noise` — the step-to-step gradient noise of SIGReg's random slices against SFRIK's exact
  gradient (``scripts/gradient_noise.py``).

These last modules are imported by their own names (``from sfrik_plugin.profiler.n_sweep import
sweep_cells``): what they export is for the scripts that drive them, not the profiler's front door.

What is compared, and whether it fits in memory, lives in :mod:`sfrik_plugin.contenders`; files
are written with :mod:`sfrik_plugin.files.records`. Torch only at import time: solo-learn,
Lightning and matplotlib are imported inside the functions that need them.

Example:
    >>> from sfrik_plugin.profiler import loss_worker, run_isolated
    >>> result = run_isolated(loss_worker, dict(contender="sfrik-gram", n=16, q=32, max_repeats=2), timeout=300)
    >>> result["status"]
    'ok'
"""

from .analysis import extrapolate_seconds, fit_power_law, loss_summary, result_row, rows_ok, train_summary
from .grid import GridCell, run_grid
from .isolation import describe_exit, isolation_context, run_isolated
from .measure import (
    describe_machine,
    machine_info,
    peak_memory_bytes,
    process_memory_bytes,
    reset_peak_rss,
    summarize,
    time_call,
)
from .options import add_run_control_arguments, parse_dtype, parse_int_list
from .plots import markdown_table, plot_loss, plot_train
from .workers import build_train_config, loss_step, loss_worker, train_worker

__all__ = [
    "time_call",
    "peak_memory_bytes",
    "summarize",
    "process_memory_bytes",
    "reset_peak_rss",
    "machine_info",
    "describe_machine",
    "describe_exit",
    "isolation_context",
    "run_isolated",
    "loss_step",
    "loss_worker",
    "build_train_config",
    "train_worker",
    "GridCell",
    "run_grid",
    "fit_power_law",
    "extrapolate_seconds",
    "result_row",
    "rows_ok",
    "loss_summary",
    "train_summary",
    "markdown_table",
    "plot_loss",
    "plot_train",
    "parse_int_list",
    "parse_dtype",
    "add_run_control_arguments",
]

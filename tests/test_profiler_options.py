"""The profiling scripts' options: grids of sizes, dtypes, and the shared run-control arguments."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from sfrik_plugin.profiler.options import add_run_control_arguments, parse_dtype, parse_int_list


@pytest.mark.parametrize(
    "tokens, expected",
    [
        (["256"], [256]),
        (["1024:8192"], [1024, 2048, 4096, 8192]),
        (["1k:4k", "2^13", "32768"], [1024, 2048, 4096, 8192, 32768]),
        (["2048,256", "256"], [256, 2048]),
        (["8:1000:10"], [8, 80, 800]),
        ("16k", [16384]),
        ([512, "1m"], [512, 1048576]),
    ],
)
def test_parse_int_list(tokens, expected):
    assert parse_int_list(tokens) == expected


@pytest.mark.parametrize(
    "tokens, message",
    [
        (["12x"], "not an integer: '12x'"),
        (["1:2:3:4"], "bad range"),
        (["64:8"], "bad range"),
        (["8:64:1"], "bad range"),
        ([""], "no q given"),
        (["1", "64"], r"every q must be >= 2, got \[1\]"),
    ],
)
def test_parse_int_list_rejects(tokens, message):
    with pytest.raises(ValueError, match=message):
        parse_int_list(tokens, minimum=2, name="q")


def test_parse_dtype():
    assert parse_dtype("fp32") is torch.float32
    assert parse_dtype("torch.bfloat16") is torch.bfloat16
    assert parse_dtype(torch.float16) is torch.float16
    with pytest.raises(ValueError, match="unknown dtype 'int8'; choose from"):
        parse_dtype("int8")


def test_run_control_arguments_take_each_scripts_defaults():
    parser = argparse.ArgumentParser()
    add_run_control_arguments(parser, out="bench-results/x", config_seconds=25.0, max_repeats=3, unit="steps")
    args = parser.parse_args([])
    assert (args.out, args.config_seconds, args.max_repeats, args.min_repeats) == (Path("bench-results/x"), 25.0, 3, 2)
    assert args.threads is None and args.memory_budget is None and args.device is None
    assert "warm-up steps per configuration" in parser.format_help()
    args = parser.parse_args(["--threads", "2", "--memory-budget", "12GiB", "--rounds", "3"])
    assert (args.threads, args.memory_budget, args.rounds) == (2, "12GiB", 3)

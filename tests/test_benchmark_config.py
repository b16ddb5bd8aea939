"""Benchmark configs: the packaged files, the quick block, ``--set`` as OmegaConf dot-list overrides,
and the checks that name a bad value (one line, exit status 2 from the command line)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sfrik_plugin.benchmark.cli import check_overrides
from sfrik_plugin.benchmark.config import apply_overrides, check_config, load_config, packaged_configs
from sfrik_plugin.console import InputError

# omegaconf, which parses the configs and --set, is installed with solo-learn (the [solo] extra)
pytestmark = pytest.mark.requires_solo


def test_every_packaged_config_loads_and_has_a_sweep():
    assert set(packaged_configs()) >= {"fashion_mnist", "in20_resnet18", "cifar_resnet18"}
    for name in packaged_configs():
        cfg = load_config(name)
        assert cfg["sweep"]["qs"] and cfg["projector"]["q"] in cfg["sweep"]["qs"], name
        assert set(cfg["methods"]) == {"sfrik", "vicreg", "barlow_twins", "lejepa"}, name
        # LeJEPA's lambda is a convex weight: its extensions stay inside (0, 1)
        assert cfg["methods"]["lejepa"]["bounds"] == {"method_kwargs.lambda": [0.0, 1.0]}, name
    paper = load_config("in20_resnet18")
    assert paper["sweep"]["qs"][0] == 1024 and paper["sweep"]["qs"][-1] == 32768 and paper["device"] == "cuda"


def test_the_default_benchmark_and_its_quick_mode():
    full, quick = load_config(), load_config(quick=True)
    assert full["tune_seeds"] == [0, 1] and len(full["seeds"]) == 3
    assert all(len(m["grid"]) >= 3 for m in full["methods"].values())
    assert full["sweep"]["qs"] == [256, 1024, 4096, 8192, 16384, 32768]
    # quick = the full benchmark's seed-0 runs of fixed settings: same data, recipe and epochs
    assert quick["seeds"] == quick["tune_seeds"] == [0] and quick["evaluation"]["semi_supervised"] is None
    assert all(len(m["grid"]) == 1 for m in quick["methods"].values())
    for key in ("data", "epochs", "batch_size", "projector", "backbone", "common_overrides"):
        assert quick[key] == full[key], key
    for method in full["methods"]:
        assert quick["methods"][method]["grid"][0] in full["methods"][method]["grid"]


def test_set_uses_the_omegaconf_dot_list_grammar():
    cfg = load_config(
        overrides=["seeds=[0]", "sweep.qs=[256,4096]", "memory_budget=16GiB", "sweep.equal_time.budget=null"]
    )
    assert cfg["seeds"] == [0] and cfg["sweep"]["qs"] == [256, 4096]
    assert cfg["memory_budget"] == "16GiB" and cfg["sweep"]["equal_time"]["budget"] is None
    assert cfg["sweep"]["scale_with_q"]["sfrik"] == {"method_kwargs.sim_coeff": 1.0}  # siblings kept
    grid = load_config(overrides=["methods.sfrik.grid=[{method_kwargs.sim_coeff: 500.0}]"])["methods"]["sfrik"]["grid"]
    assert grid == [{"method_kwargs.sim_coeff": 500.0}]
    folder = apply_overrides({"data": {"kind": "fashion_mnist"}}, ["data.kind=image_folder", "data.train_root=/d/x=y"])
    assert folder == {"data": {"kind": "image_folder", "train_root": "/d/x=y"}}


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["epoch=5"], "unknown key 'epoch'"),
        (["seeds"], "wants KEY=VALUE"),
        (["epochs=0"], "epochs=0 is not allowed; use a positive integer"),
        (["seeds=[0,0]"], "distinct seeds"),
        (["data.kind=imagenet"], "data.kind='imagenet'"),
        (["data.kind=image_folder"], "data.train_root=None is not allowed"),
        (["tuning.metric=f1"], "tuning.metric"),
        (["sweep.qs=[1,256]"], "q >= 2"),
        (["sweep.equal_time.budget=simclr"], "sweep.equal_time.budget='simclr'"),
        (["sweep.scale_with_q.simclr={a: 1}"], "sweep.scale_with_q.simclr"),
        (["sweep.scale_with_q.vicreg={method_kwargs.cov_loss_weight: [-1.0]}"], "[exponent, value at the reference q]"),
        (["sweep.scale_with_q.vicreg={method_kwargs.cov_loss_weight: [-1.0, 0.0]}"], "sweep.scale_with_q.vicreg"),
        (["sweep.scale_with_q.vicreg={method_kwargs.cov_loss_weight: low}"], "sweep.scale_with_q.vicreg"),
        (["projector.q=-4"], "projector.q=-4"),
        (["methods.lejepa.grids=[]"], "methods.lejepa=['grids'] is not allowed; a method entry has"),
        (["methods.lejepa.bounds={method_kwargs.lambda: [1.0, 0.0]}"], "methods.lejepa.bounds.method_kwargs.lambda"),
        (["methods.lejepa.bounds={method_kwargs.lambda: 1.0}"], "[low, high] with low < high"),
        (
            ["methods.lejepa.grid=[{method_kwargs.lambda: 0.5}, {method_kwargs.lambda: 1.0}]"],
            "=[1.0] is not allowed; every value must lie strictly inside methods.lejepa.bounds.method_kwargs.lambda",
        ),
    ],
)
def test_bad_values_are_named(overrides, message):
    with pytest.raises(InputError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_config(overrides=overrides)


def test_checks_and_reserved_overrides():
    with pytest.raises(InputError, match="--config nowhere.yaml: no such file"):
        load_config("nowhere.yaml")
    with pytest.raises(InputError, match="use --set projector.q"):
        check_overrides(["optimizer.lr=0.6", "++method_kwargs.proj_output_dim=4096"])
    check_overrides(["optimizer.lr=0.6", "method_kwargs.sim_coeff=5.0"])
    cfg = load_config()
    del cfg["methods"]["vicreg"]["config"]
    with pytest.raises(InputError, match="methods.vicreg.config"):
        check_config(cfg)


def test_the_command_line_prints_one_line_for_bad_input(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "sfrik_plugin.benchmark.cli", "--set", "epochs=zero", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "sfrik-benchmark: error: benchmark config: epochs='zero' is not allowed; use a positive integer"
    ]

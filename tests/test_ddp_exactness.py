"""Exactness under DDP of every loss contender (scripts/ddp_exactness.py): W = 2 and 4 gloo processes
against one process on the concatenated batch, float64, loss and the parameter gradient DDP leaves.
What this project ships or wraps must be exact; solo-learn's Barlow Twins is not (the table says why)
and this project's exact version is; a per-rank statistic is caught."""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import pytest
import torch.distributed as dist

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"

pytestmark = [
    pytest.mark.slow,  # gloo processes (tests/conftest.py would also find the spawn)
    pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="no gloo"),
    pytest.mark.requires_solo,
]
pytest.importorskip("lightly.loss.lejepa_loss", reason="lightly (the lejepa extra) is not installed")

EXACT = [
    "sfrik-gram",
    "sfrik-blocked",
    "sfrik-feature",
    "vicreg",
    "sigreg",
    "sfrik-gram/sharded",
    "sfrik-gram/replicated",
    "sfrik-blocked/sharded",
    "sfrik-blocked/replicated",
    "sfrik-feature/replicated",
    "barlow-exact",
]


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp-exactness")
    sys.path.insert(0, str(SCRIPTS))  # the spawned ranks import the script's module by name too
    try:
        harness = importlib.import_module("ddp_exactness")
        assert harness.main(["--world-sizes", "2", "4", "--rows", "3", "--q", "6", "--out", str(out)]) == 0
    finally:
        sys.path.remove(str(SCRIPTS))
    data = json.loads((out / "ddp_exactness.json").read_text())
    rows = {(r["contender"], r["W"]): r for r in data["rows"]}
    return rows, (out / "ddp_exactness.md").read_text()


def test_every_registered_contender_is_in_the_table(table):
    from sfrik_plugin.contenders import CONTENDERS

    rows, text = table
    for name in CONTENDERS:
        for world_size in (2, 4):
            assert rows[(name, world_size)]["status"] == "ok", rows[(name, world_size)]
        assert f"| `{name}` |" in text


@pytest.mark.parametrize("name", EXACT)
def test_what_this_project_ships_or_wraps_is_exact(table, name):
    rows, _ = table
    for world_size in (2, 4):
        row = rows[(name, world_size)]
        assert row["loss_rel_error"] < 1e-9 and row["grad_rel_error"] < 1e-9, row
        assert row["exact"] and row["expected_exact"]


def test_solo_learns_barlow_twins_is_not_exact_and_the_exact_version_is(table):
    rows, text = table
    for world_size in (2, 4):
        upstream = rows[("barlow", world_size)]
        assert not upstream["exact"] and not upstream["expected_exact"]
        assert upstream["loss_rel_error"] > 1e-3 and upstream["grad_rel_error"] > 1e-3  # far from rounding
        assert rows[("barlow-exact", world_size)]["exact"]
    assert "SyncBatchNorm" in text and "use barlow-exact" in text


def test_the_harness_catches_a_per_rank_statistic(table):
    # lightly's SIGReg without gather_distributed tests each rank's shard: the mutation check
    rows, _ = table
    for world_size in (2, 4):
        row = rows[("sigreg/per-rank", world_size)]
        assert not row["exact"] and row["grad_rel_error"] > 1e-3


def test_the_exact_barlow_loss_equals_solo_learns_on_one_process():
    import torch
    from solo.losses.barlow import barlow_loss_func

    from sfrik_plugin.contenders.exact_barlow import exact_barlow_loss_func

    generator = torch.Generator().manual_seed(0)
    z1, z2 = (torch.randn(20, 7, generator=generator, requires_grad=True) for _ in range(2))
    ours, theirs = exact_barlow_loss_func(z1, z2, lamb=0.01), barlow_loss_func(z1, z2, lamb=0.01)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)
    for a, b in zip(torch.autograd.grad(ours, (z1, z2)), torch.autograd.grad(theirs, (z1, z2))):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-7)


def test_the_harness_leaves_the_calling_process_as_it_found_it(table):
    """main() runs in this process: float64 as torch's default dtype (and one thread, warnings off)
    must not outlive it, or every later test of the suite computes in float64."""
    import torch

    assert torch.get_default_dtype() == torch.float32

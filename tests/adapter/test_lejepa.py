"""LeJEPA as a solo-learn method, against the real solo-learn and lightly: matched packaged configs,
method_kwargs checked like SFRIK's, the loss of a built model against lightly's own LeJEPALoss, and
sfrik-pretrain -> sfrik-linear -> sfrik-knn end to end on CPU."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from _tiny_runs import tiny_linear_args, tiny_pretrain_args

pytestmark = pytest.mark.requires_solo
pytest.importorskip("lightly.loss.lejepa_loss", reason="lightly (the lejepa extra) is not installed")

DATASETS = ["cifar10", "cifar100", "imagenet100", "imagenet", "custom"]
PROJECTOR_KEYS = ("proj_hidden_dim", "proj_hidden_layers", "proj_output_dim")


@pytest.mark.parametrize("dataset", DATASETS)
def test_each_lejepa_config_differs_from_sfrik_only_in_method_and_method_kwargs(compose, dataset):
    from omegaconf import OmegaConf

    from sfrik_plugin.solo.lejepa import check_lejepa_method_kwargs

    sfrik = OmegaConf.to_container(compose(f"{dataset}/sfrik"), resolve=True)
    lejepa = OmegaConf.to_container(compose(f"{dataset}/lejepa"), resolve=True)
    assert isinstance(sfrik, dict) and isinstance(lejepa, dict)
    assert lejepa["method"] == "lejepa" and lejepa["name"] == sfrik["name"].replace("sfrik-", "lejepa-")
    # the same projector widths
    assert {k: lejepa["method_kwargs"][k] for k in PROJECTOR_KEYS} == {
        k: sfrik["method_kwargs"][k] for k in PROJECTOR_KEYS
    }
    check_lejepa_method_kwargs(lejepa["method_kwargs"])  # complete and valid
    for config in (sfrik, lejepa):
        for key in ("name", "method", "method_kwargs"):
            config.pop(key)
    assert lejepa == sfrik  # everything else: data, backbone, optimiser, schedule, trainer


def test_method_kwargs_are_checked_with_one_line_naming_the_key():
    from sfrik_plugin.console import InputError
    from sfrik_plugin.solo.lejepa import check_lejepa_method_kwargs

    bad = {
        "slices": r"unknown method_kwargs key\(s\) for method 'lejepa': slices\. Allowed keys: knots, lambda,",
        "lambda": r"method_kwargs.lambda must be in \[0, 1\], got 1.5",
        "num_slices": r"method_kwargs.num_slices must be an integer >= 1, got 0",
        "knots": r"method_kwargs.knots must be an integer >= 2, got 1",
        "t_max": r"method_kwargs.t_max must be a finite number > 0, got 0",
    }
    values = {"slices": 3, "lambda": 1.5, "num_slices": 0, "knots": 1, "t_max": 0}
    for key, message in bad.items():
        with pytest.raises(InputError, match=message) as caught:
            check_lejepa_method_kwargs({key: values[key]})
        assert "\n" not in str(caught.value)
    assert check_lejepa_method_kwargs({"lambda": 0, "t_max": 2})["lambda"] == 0.0
    # the projector's widths are checked by the one projector_dims, like SFRIK's
    assert check_lejepa_method_kwargs({"proj_hidden_dim": [32, 16]})["proj_hidden_layers"] == 2
    with pytest.raises(InputError, match=r"^method_kwargs.proj_output_dim must be a positive integer, got 0$"):
        check_lejepa_method_kwargs({"proj_output_dim": 0})


def test_a_built_model_trains_on_lightlys_lejepa_loss_and_is_registered_next_to_sfrik():
    import torch
    import torch.nn.functional as F
    from lightly.loss import LeJEPALoss
    from solo.methods import METHODS

    import sfrik_plugin.solo  # noqa: F401  (registers both)
    from sfrik_plugin.console import InputError
    from sfrik_plugin.contenders.sigreg import lejepa_loss
    from sfrik_plugin.profiler.workers import build_train_config

    assert METHODS["lejepa"].__name__ == "LeJEPA" and METHODS["sfrik"].__name__ == "SFRIK"
    cfg = build_train_config(dict(method="lejepa", q=24, hidden=16, batch_size=4, image_size=32, device="cpu"))
    cfg.method_kwargs["lambda"] = 0.2
    cfg.method_kwargs.num_slices = 32
    model = METHODS["lejepa"](cfg)
    widths = [tuple(m.weight.shape) for m in model.projector if isinstance(m, torch.nn.Linear)]
    assert widths == [(16, 512), (16, 16), (24, 16)] and model.projector[-1].bias is not None

    torch.manual_seed(0)
    images = [torch.randn(4, 3, 32, 32) for _ in range(2)]
    targets = torch.tensor([0, 1, 2, 3])
    model.train()
    total = model.training_step((torch.arange(4), images, targets), 0)
    with torch.no_grad():  # batch statistics in train mode: the same z and logits again
        outs = [model(x) for x in images]
    z = [o["z"] for o in outs]
    classifier = sum(F.cross_entropy(o["logits"], targets) for o in outs) / 2
    assert float(total) == pytest.approx(float(lejepa_loss(z, model.sigreg, 0.2, step=0).loss + classifier), rel=1e-5)

    # the same loss as lightly's own LeJEPALoss given the same slices: with both views as the
    # global views and again as the local ones, its SIGReg and invariance are means over copies
    def lightly_like(device, dtype, q):
        torch.manual_seed(123)
        directions = torch.randn(q, 32, device=device, dtype=dtype)
        return directions / directions.norm(dim=0)

    model.sigreg._generate_unit_vectors = lightly_like
    ours = lejepa_loss(z, model.sigreg, 0.2).loss
    torch.manual_seed(123)
    theirs = LeJEPALoss(lambda_param=0.2, sigreg_num_vectors=32)(local_proj=torch.stack(z), global_proj=torch.stack(z))
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)

    bad = cfg.copy()
    bad.method_kwargs.slices = 3
    with pytest.raises(InputError, match="unknown method_kwargs key\\(s\\) for method 'lejepa': slices"):
        METHODS["lejepa"](bad)


def _checkpoints(folder: Path) -> list:
    return sorted(folder.rglob("*.ckpt"), key=lambda p: p.stat().st_mtime)


def test_pretrain_with_online_linear_evaluation_then_linear_and_knn(cli, tiny_overrides, tiny_data, tmp_path):
    import csv

    import torch

    from sfrik_plugin.files.checkpoints import load_checkpoint

    cli(
        "pretrain",
        tiny_overrides
        + [
            *tiny_pretrain_args(tiny_data, tmp_path, "custom/lejepa"),
            "method_kwargs.num_slices=64",
            "++csv.enabled=True",
            f"++csv.dir={tmp_path / 'logs'}",
        ],
        cwd=tmp_path,
    )
    (ckpt,) = _checkpoints(tmp_path / "ckpt" / "lejepa")
    args = json.loads((ckpt.parent / "args.json").read_text())
    assert args["method"] == "lejepa" and args["method_kwargs"]["num_slices"] == 64
    assert args["method_kwargs"]["lambda"] == 0.05 and args["method_kwargs"]["proj_output_dim"] == 16
    state = load_checkpoint(ckpt)
    assert state["global_step"] == 2
    (metrics,) = list((tmp_path / "logs").rglob("metrics.csv"))
    with open(metrics) as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(r["train_lejepa_loss_step"]) for r in rows if r.get("train_lejepa_loss_step")]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert [0 <= float(r["val_acc1"]) <= 100 for r in rows if r.get("val_acc1")] == [True]  # online linear

    cli(
        "linear",
        [
            *tiny_linear_args(tiny_data, tmp_path, ckpt),
        ],
        cwd=tmp_path,
    )
    (linear_ckpt,) = _checkpoints(tmp_path / "ckpt" / "linear")
    linear_state = load_checkpoint(linear_ckpt)
    backbone = {k: v for k, v in state["state_dict"].items() if k.startswith("backbone.")}
    assert backbone and all(
        torch.equal(linear_state["state_dict"][k], v) for k, v in backbone.items() if "num_batches" not in k
    )

    results = tmp_path / "knn.json"
    cli(
        "knn",
        [
            "--config-name",
            "knn",
            f"pretrained_checkpoint_dir={ckpt.parent}",
            "data.num_workers=0",
            "batch_size=8",
            "k=[3]",
            "feature_type=[backbone,projector]",
            "device=cpu",
            f"output={results}",
        ],
        cwd=tmp_path,
    )
    rows = json.loads(results.read_text())
    assert {r["feature_type"] for r in rows} == {"backbone", "projector"}
    assert all(0 <= r["acc1"] <= 100 for r in rows)

"""The demo (sfrik_plugin.solo.demo): its JSON holds the launcher command lines it ran, and it
measures the untrained backbone with the same linear protocol as the pretrained one."""

from __future__ import annotations

import json
import shlex

import pytest
from _images import make_image_folder

pytestmark = pytest.mark.requires_solo


def _config_of_command_line(line: str, kind: str):
    """The config a launcher composes from a shell command line: the shell's word splitting, the
    launcher's argv rewriting (sfrik_plugin.solo.launch), then hydra's composition of the result."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    from sfrik_plugin.solo.launch import rewrite_argv, split_argv

    argv = shlex.split(line)
    assert argv[0] == f"sfrik-{kind}"
    options, flags, overrides = split_argv(rewrite_argv(argv[1:], kind))
    assert not flags
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=options["path"], version_base="1.2"):
        cfg = compose(config_name=options["name"], overrides=overrides)
    OmegaConf.set_struct(cfg, False)  # as the launchers hand it to solo-learn
    return cfg


def _same(a, b) -> None:
    from omegaconf import OmegaConf

    assert OmegaConf.to_container(a, resolve=True) == OmegaConf.to_container(b, resolve=True)


def test_the_printed_command_lines_compose_the_configs_the_demo_runs(tmp_path):
    """Paths with spaces and '=' survive the shell and the launcher's argv handling."""
    from sfrik_plugin.solo.config import compose_config
    from sfrik_plugin.solo.demo import command_line, linear_overrides, pretrain_overrides

    odd = tmp_path / "my demo data=1"
    data = {"train": str(odd / "train"), "val": str(odd / "val")}
    pre = pretrain_overrides(data, odd / "checkpoints", 2, 32)
    _same(
        _config_of_command_line(command_line("sfrik-pretrain", "custom/sfrik", pre), "pretrain"),
        compose_config("pretrain", "custom/sfrik", pre),
    )
    lin = linear_overrides(data, str(odd / "ckpt=ep 1.ckpt"), odd / "checkpoints", 3, 64)
    _same(
        _config_of_command_line(command_line("sfrik-linear", "custom", lin), "linear"),
        compose_config("linear", "custom", lin),
    )


def test_the_untrained_backbone_is_where_pretraining_starts(tmp_path, compose, tiny_overrides):
    """save_untrained_backbone writes the backbone run_pretrain builds before its first step."""
    import torch
    from lightning.pytorch import seed_everything
    from solo.args.pretrain import parse_cfg
    from solo.methods import METHODS

    from sfrik_plugin.solo.demo import save_untrained_backbone
    from sfrik_plugin.solo.launch import parse_with_devices

    cfg = compose("custom/sfrik", [*tiny_overrides, f"data.train_path={tmp_path}", "data.val_path=null"])
    path = save_untrained_backbone(cfg, tmp_path / "untrained.ckpt")
    parsed = parse_with_devices(cfg.copy(), parse_cfg)
    seed_everything(parsed.seed)  # what run_pretrain does before building the method
    model = METHODS[parsed.method](parsed)
    saved = torch.load(path, weights_only=True)["state_dict"]
    expected = {k: v for k, v in model.state_dict().items() if k.startswith("backbone.")}
    assert saved.keys() == expected.keys()
    for key, value in expected.items():
        torch.testing.assert_close(saved[key], value, rtol=0, atol=0)


def test_the_demo_reports_the_untrained_baseline_and_its_json_holds_what_it_ran(tmp_path):
    """A tiny demo run end to end: both linear evaluations, the difference, and command lines that
    compose exactly the configs recorded by the runs (the pretraining's args.json)."""
    import torch
    from omegaconf import OmegaConf
    from solo.args.pretrain import parse_cfg

    from sfrik_plugin.solo.demo import run_demo
    from sfrik_plugin.solo.launch import parse_with_devices

    source = tmp_path / "fmnist"
    make_image_folder(source / "train", classes=10, per_class=7, size=28, seed=0)  # 70: one linear batch of 64
    make_image_folder(source / "val", classes=10, per_class=2, size=28, seed=1)
    work = tmp_path / "work dir"
    argv = ["--workdir", str(work), "--data", str(source), "--train-per-class", "7", "--val-per-class", "2"]
    threads = torch.get_num_threads()
    try:
        summary = run_demo([*argv, "--batch-size", "8", "--epochs", "1", "--linear-epochs", "1", "--threads", "1"])
    finally:
        torch.set_num_threads(threads)  # the demo sets the process's thread count

    results = json.loads((work / "demo_results.json").read_text())
    assert results["commands"] == summary["commands"]
    assert set(results["commands"]) == {"pretrain", "linear", "linear_untrained"}
    trained, untrained = results["offline_linear_val_acc1"], results["untrained_offline_linear_val_acc1"]
    assert 0.0 <= untrained <= 100.0 and 0.0 <= trained <= 100.0
    assert results["pretraining_gain_points"] == pytest.approx(trained - untrained, abs=0.01)

    # the pretraining command, composed and parsed as sfrik-pretrain does, is the recorded config
    pretrain_cfg = parse_with_devices(_config_of_command_line(results["commands"]["pretrain"], "pretrain"), parse_cfg)
    (args_json,) = (work / "checkpoints").rglob("sfrik/*/args.json")
    recorded = json.loads(args_json.read_text())
    ours = OmegaConf.to_container(pretrain_cfg, resolve=True)
    for key in ("name", "data", "augmentations", "optimizer", "max_epochs", "precision"):
        assert ours[key] == recorded[key], key
    # the method adds its defaults for the keys not given when it is built
    assert ours["method_kwargs"].items() <= recorded["method_kwargs"].items()
    # the two linear commands differ only in the backbone they read and the run name
    lin = _config_of_command_line(results["commands"]["linear"], "linear")
    base = _config_of_command_line(results["commands"]["linear_untrained"], "linear")
    assert lin.pretrained_feature_extractor == results["checkpoint"]
    assert base.pretrained_feature_extractor == results["untrained_checkpoint"]
    lin_plain, base_plain = OmegaConf.to_container(lin), OmegaConf.to_container(base)
    for plain in (lin_plain, base_plain):
        plain.pop("pretrained_feature_extractor"), plain.pop("name")
    assert lin_plain == base_plain

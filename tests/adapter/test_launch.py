"""Unit tests of the command-line layer: argv rewriting, device counting, one-line error exits."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.requires_solo


@pytest.fixture
def launch():
    from sfrik_plugin.solo import launch

    return launch


def test_a_packaged_config_name_becomes_the_packaged_folder_and_leaf(launch):
    from sfrik_plugin.solo.config import CONFIG_ROOT

    for spelling in (
        ["--config-name", "imagenet/sfrik"],
        ["--config-name=imagenet/sfrik"],
        ["-cn", "imagenet/sfrik.yaml"],
    ):
        argv = launch.rewrite_argv(["max_epochs=3", *spelling, "seed=1"], "pretrain")
        assert argv == [
            "--config-path",
            str(CONFIG_ROOT / "pretrain" / "imagenet"),
            "--config-name",
            "sfrik",
            "max_epochs=3",
            "seed=1",
        ]


def test_a_relative_config_path_is_resolved_against_the_current_directory(launch, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = launch.rewrite_argv(["x=1", "-cp", "my/configs", "-cn", "mine"], "linear")
    assert argv == ["--config-path", str(tmp_path / "my" / "configs"), "--config-name", "mine", "x=1"]
    # absolute and pkg:// paths stay as given
    assert launch.rewrite_argv(["--config-path=/abs", "-cn", "a"], "knn")[:2] == ["--config-path", "/abs"]
    assert launch.rewrite_argv(["-cp", "pkg://x.y", "-cn", "a"], "knn")[:2] == ["--config-path", "pkg://x.y"]


def test_values_holding_equals_signs_are_quoted_and_our_flags_become_overrides(launch):
    argv = launch.rewrite_argv(
        ["-cn", "custom", "pretrained_feature_extractor=run/m-ep=9.ckpt", "--trust-pickle"], "linear"
    )
    assert argv[-2:] == ["pretrained_feature_extractor='run/m-ep=9.ckpt'", "++trust_pickle=true"]
    assert launch.rewrite_argv(["-cn", "x", "k=[1,2]", "--help"], "knn")[-2:] == ["--help", "k=[1,2]"]


def test_split_and_help_detection(launch):
    assert launch.split_argv(["-cn=a", "b=1", "--info"]) == ({"name": "a"}, ["--info"], ["b=1"])
    assert launch.names_a_config(["--help"]) and launch.names_a_config(["-cn", "x"])
    assert not launch.names_a_config(["max_epochs=1"])
    with pytest.raises(ValueError, match="--config-name needs a value"):
        launch.split_argv(["--config-name"])


@pytest.mark.parametrize(
    "devices, accelerator, expected",
    [(2, "cpu", 2), ("3", "cpu", 3), ("0,1", "gpu", 2), ([0, 2, 3], "gpu", 3), ("auto", "cpu", 1), (None, "cpu", 1)],
)
def test_count_devices(launch, devices, accelerator, expected):
    assert launch.count_devices(devices, accelerator) == expected


@pytest.mark.parametrize("devices", [0, "many", True, []])
def test_count_devices_rejects_nonsense_by_name(launch, devices):
    with pytest.raises(ValueError, match="devices must"):
        launch.count_devices(devices, "cpu")

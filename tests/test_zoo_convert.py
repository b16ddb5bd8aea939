"""Conversions, checked on a randomly initialised ResNet-50 saved the way the official code
saves its backbone (``torch.save(backbone.state_dict())`` of a ResNet without ``fc``)."""

import importlib
import json
from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn

from sfrik_plugin.files.checkpoints import UntrustedCheckpointError, load_checkpoint
from sfrik_plugin.zoo.convert import ConversionError

# the package exports a convert() function under the module's name: fetch the module itself
conv = importlib.import_module("sfrik_plugin.zoo.convert")

try:
    from tests._zoo_helpers import OfficialStyleResNet50, randomize_
except ImportError:  # tests/ is not a package: pytest put this folder on sys.path
    from _zoo_helpers import OfficialStyleResNet50, randomize_

X = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
FC = ["fc.bias", "fc.weight"]  # sorted


def close(a, b):
    assert a.shape == b.shape
    assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), (a - b).abs().max()


@pytest.fixture(scope="module")
def official(tmp_path_factory):
    """(source model, path of its backbone saved exactly as the official code does)."""
    model = randomize_(OfficialStyleResNet50(), seed=3)
    path = tmp_path_factory.mktemp("official") / "sfrik_backbone.pth"
    torch.save(model.state_dict(), path)
    with torch.no_grad():
        feats = model(X)
    assert feats.shape == (2, 2048) and feats.abs().max() > 1e-3  # not a degenerate model
    return model, path, feats


def test_official_to_torchvision_loads_strictly_and_gives_same_features(official, tmp_path):
    _, path, feats = official
    out = conv.convert(path, "torchvision", tmp_path / "tv.pth")
    sd = torch.load(out, weights_only=True)
    model = torchvision.models.resnet50(weights=None)
    result = model.load_state_dict(sd, strict=False)
    assert sorted(result.missing_keys) == FC and result.unexpected_keys == []
    model.fc = nn.Identity()
    with torch.no_grad():
        close(model.eval()(X), feats)


def test_official_to_timm_loads_strictly_and_gives_same_features(official, tmp_path):
    timm = pytest.importorskip("timm", reason="timm is an optional dependency (extra 'zoo')")
    _, path, feats = official
    out = conv.convert(path, "timm", tmp_path / "timm.pth")
    sd = torch.load(out, weights_only=True)
    model = timm.create_model("resnet50", pretrained=False)
    result = model.load_state_dict(sd, strict=False)
    assert sorted(result.missing_keys) == FC and result.unexpected_keys == []
    model.reset_classifier(0)
    with torch.no_grad():
        close(model.eval()(X), feats)


def test_load_model_api_returns_feature_extractors(official):
    _, path, feats = official
    obj = load_checkpoint(path)
    for target in ("torchvision", "timm"):
        if target == "timm":
            pytest.importorskip("timm")
        model = conv.load_model(obj, target)
        assert not model.training
        with torch.no_grad():
            close(model(X), feats)


def test_a_lost_tensor_changes_the_features(official):
    """Guards the feature checks above: they would notice a dropped BN statistic."""
    _, path, feats = official
    sd = conv.to_torchvision(load_checkpoint(path))
    sd["layer3.2.bn2.running_var"] = torch.ones_like(sd["layer3.2.bn2.running_var"])
    model = torchvision.models.resnet50(weights=None)
    model.fc = nn.Identity()
    model.load_state_dict(sd)
    with torch.no_grad():
        assert not torch.allclose(model.eval()(X), feats, rtol=1e-4, atol=1e-5)


def _solo_backbone_from(ckpt_path):
    """Load a checkpoint the way solo-learn's main_linear.py does, with solo-learn's backbone."""
    solo_base = pytest.importorskip("solo.methods.base", reason="solo-learn is not installed (CI does not have it)")
    backbone = solo_base.BaseMethod._BACKBONES["resnet50"]("sfrik")
    backbone.fc = nn.Identity()
    state = torch.load(ckpt_path, map_location="cpu")["state_dict"]
    for k in list(state.keys()):  # solo-learn's rule: keep backbone.*, strip the prefix
        if "backbone" in k:
            state[k.replace("backbone.", "")] = state[k]
        del state[k]
    backbone.load_state_dict(state, strict=True)  # stricter than solo-learn's strict=False
    return backbone.eval()


def test_official_to_solo_checkpoint_layout(official, tmp_path):
    _, path, _ = official
    ckpt = conv.convert(path, "solo", tmp_path / "solo", name="sfrik-r50", epochs=200)
    assert ckpt.name == "sfrik-r50-ep=200.ckpt" and ckpt.parent == tmp_path / "solo"
    data = torch.load(ckpt, weights_only=True)
    assert data["epoch"] == 200
    src = torch.load(path, weights_only=True)
    assert set(data["state_dict"]) == {"backbone." + k for k in src}
    for k, v in src.items():
        assert torch.equal(data["state_dict"]["backbone." + k], v)
    args = json.loads((tmp_path / "solo" / "args.json").read_text())
    assert args["method"] == "sfrik" and args["backbone"]["name"] == "resnet50"
    assert args["data"]["dataset"] == "imagenet" and args["max_epochs"] == 200
    with pytest.raises(ConversionError, match="already holds sfrik-r50-ep=200.ckpt"):
        conv.convert(path, "solo", tmp_path / "solo", name="again")


def test_solo_checkpoint_loads_with_solo_learns_rules(official, tmp_path):
    _, path, feats = official
    ckpt = conv.convert(path, "solo", tmp_path / "solo")
    backbone = _solo_backbone_from(ckpt)
    with torch.no_grad():
        close(backbone(X), feats)


def test_solo_checkpoint_rebuilds_through_solo_learns_knn_loader(official, tmp_path):
    """main_knn.py: METHODS[args.method].load_from_checkpoint(ckpt, strict=False, cfg=args)."""
    pytest.importorskip("solo.methods", reason="solo-learn is not installed (CI does not have it)")
    from omegaconf import OmegaConf
    from solo.methods import METHODS

    _, path, feats = official
    # vicreg ships with solo-learn; our "sfrik" key exists only once the adapter registers it.
    ckpt = conv.convert(path, "solo", tmp_path / "solo", method="vicreg")
    cfg = OmegaConf.create(json.loads((tmp_path / "solo" / "args.json").read_text()))
    model = METHODS[cfg.method].load_from_checkpoint(ckpt, strict=False, cfg=cfg)
    with torch.no_grad():
        close(model.backbone.eval()(X), feats)


def test_args_for_the_official_entry_pass_our_adapters_checks():
    pytest.importorskip("solo.methods", reason="solo-learn is not installed (CI does not have it)")
    method = importlib.import_module("sfrik_plugin.solo.method")
    from sfrik_plugin.zoo.catalog import get_entry

    entry = get_entry("sfrik-r50-in1k-200ep-q32768")
    args = conv.solo_args("resnet50", "imagenet", name="x", entry=entry, epochs=entry.epochs)
    checked = method.check_sfrik_method_kwargs(args["method_kwargs"])  # rejects unknown keys
    assert checked["proj_hidden_dim"] == [8192, 8192] and checked["proj_output_dim"] == 32768
    assert checked["weights"] == [1.0, 40.0, 40.0]
    assert (checked["sim_coeff"], checked["mmd_coeff"]) == (40000.0, 1.0)


def test_solo_checkpoint_rebuilds_through_our_adapter(official, tmp_path):
    pytest.importorskip("solo.methods", reason="solo-learn is not installed (CI does not have it)")
    adapter = importlib.import_module("sfrik_plugin.solo")
    from omegaconf import OmegaConf
    from solo.methods import METHODS

    adapter.register()
    _, path, feats = official
    small = {"method_kwargs": {"proj_hidden_dim": 32, "proj_output_dim": 16}}  # keep the test light
    ckpt = conv.convert(path, "solo", tmp_path / "solo", extra_args=small)
    cfg = OmegaConf.create(json.loads((tmp_path / "solo" / "args.json").read_text()))
    assert cfg.method == "sfrik"
    model = METHODS[cfg.method].load_from_checkpoint(ckpt, strict=False, cfg=cfg)
    with torch.no_grad():
        close(model.backbone.eval()(X), feats)


def _solo_style_ckpt(backbone, tmp_path, name="run-ep=9.ckpt", stem_prefix="backbone."):
    sd = OrderedDict((stem_prefix + k, v) for k, v in backbone.state_dict().items())
    sd["projector.0.weight"] = torch.randn(16, 2048)
    sd["projector.1.running_mean"] = torch.zeros(16)
    sd["classifier.weight"] = torch.randn(10, 2048)
    sd["classifier.bias"] = torch.zeros(10)
    ckpt = {
        "state_dict": sd,
        "epoch": 9,
        "global_step": 90,
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
        "pytorch-lightning_version": "2.1.2",
    }
    p = tmp_path / name
    torch.save(ckpt, p)
    return p


def test_solo_checkpoint_to_official_backbone(tmp_path):
    """Our solo-learn adapter's backbone (torchvision resnet50, fc = Identity) → official file."""
    solo_backbone = torchvision.models.resnet50(weights=None)
    solo_backbone.fc = nn.Identity()
    randomize_(solo_backbone, seed=5)
    src = _solo_style_ckpt(solo_backbone, tmp_path)
    out = conv.convert(src, "official", tmp_path / "backbone.pth")
    sd = torch.load(out, weights_only=True)
    target = OfficialStyleResNet50()
    target.load_state_dict(sd, strict=True)  # what official evaluate.py asserts (no missing/unexpected)
    with torch.no_grad():
        close(target.eval()(X), solo_backbone(X))


def test_official_full_checkpoint_layout_is_understood(official):
    model, _, _ = official
    full = {
        "epoch": 200,
        "model": OrderedDict(
            [(f"module.backbone.{k}", v) for k, v in model.state_dict().items()]
            + [("module.projector.0.weight", torch.zeros(4, 2048))]
        ),
        "optimizer": {"state": {}, "param_groups": []},
    }
    sd = conv.to_official(full)
    assert set(sd) == set(model.state_dict())


def test_round_trip_official_solo_official_is_lossless(official, tmp_path):
    _, path, _ = official
    ckpt = conv.convert(path, "solo", tmp_path / "solo")
    back = torch.load(conv.convert(ckpt, "official", tmp_path / "back.pth"), weights_only=True)
    src = torch.load(path, weights_only=True)
    assert list(back) == list(src) and all(torch.equal(back[k], src[k]) for k in src)


def test_cifar_stem_resnet18_converts_to_timm_with_same_features(tmp_path):
    pytest.importorskip("timm")
    # solo-learn's CIFAR backbone: resnet18 with a 3x3/1 stem (padding 2) and no max-pool
    solo_backbone = torchvision.models.resnet18(weights=None)
    solo_backbone.fc = nn.Identity()
    solo_backbone.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
    solo_backbone.maxpool = nn.Identity()
    randomize_(solo_backbone, seed=7)
    src = _solo_style_ckpt(solo_backbone, tmp_path)
    obj = load_checkpoint(src)
    assert conv.check_backbone(conv.extract_backbone(obj)[0]) == ("resnet18", "cifar")
    model = conv.load_model(obj, "timm")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        close(model(x), solo_backbone(x))
    with pytest.raises(ConversionError, match="cifar"):
        conv.to_solo(obj, tmp_path / "solo", dataset="imagenet")


# ----------------------------------------------------------------------------- errors


def test_architecture_mismatch_is_named():
    sd = torchvision.models.resnet18(weights=None).state_dict()
    with pytest.raises(ConversionError, match="the weights are a resnet18, not a resnet50"):
        conv.to_timm(sd, arch="resnet50")
    with pytest.raises(ConversionError, match="unknown architecture 'resnet9'; allowed: resnet18"):
        conv.to_official(sd, arch="resnet9")


def test_missing_and_wrong_tensors_are_listed():
    sd = torchvision.models.resnet18(weights=None).state_dict()
    del sd["layer2.0.bn1.running_var"]
    sd["layer4.1.conv2.weight"] = torch.zeros(512, 512, 1, 1)
    with pytest.raises(ConversionError) as err:
        conv.to_official(sd)
    msg = str(err.value)
    assert "missing: layer2.0.bn1.running_var" in msg
    assert "wrong shape: layer4.1.conv2.weight" in msg


def test_unknown_target_lists_targets(tmp_path):
    with pytest.raises(
        ConversionError, match="unknown conversion target 'keras'; allowed: solo, torchvision, timm, official"
    ):
        conv.convert({}, "keras", tmp_path / "x")


class Opaque:  # any non-tensor object needs the unsafe unpickler
    pass


def test_pickled_objects_are_refused_without_trust(tmp_path):
    sd = torchvision.models.resnet18(weights=None).state_dict()
    p = tmp_path / "pickled.ckpt"
    torch.save({"state_dict": {"backbone." + k: v for k, v in sd.items()}, "callbacks": Opaque()}, p)
    with pytest.raises(UntrustedCheckpointError, match="trust_pickle=True"):
        conv.convert(p, "official", tmp_path / "o.pth")
    assert not (tmp_path / "o.pth").exists()
    out = conv.convert(p, "official", tmp_path / "o.pth", trust_pickle=True)  # a file you made yourself
    assert load_checkpoint(out).keys() == {k for k in sd if not k.startswith("fc.")}


def test_not_a_resnet_is_refused():
    with pytest.raises(
        ConversionError, match=r"not a supported ResNet backbone \(bottleneck blocks per stage \(1, 0, 0, 0\)\)"
    ):
        conv.to_official(
            {"layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1), "layer1.0.conv3.weight": torch.zeros(256, 64, 1, 1)}
        )
    with pytest.raises(ConversionError, match="no tensors found"):
        conv.to_official({"epoch": 3})

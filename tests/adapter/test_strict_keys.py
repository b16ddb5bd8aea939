"""Every config key is checked: a key that neither solo-learn nor the adapter reads is one error line
naming it and the closest known key, from the command line and from a yaml file, in every flow
(pretrain, linear, kNN, compose_config); keys passed on purpose go in ``unchecked_keys``.

The references are independent of the key tables: solo-learn's own source (every key its
``parse_cfg`` functions and methods select), Lightning's ``Trainer`` signature, and the configs the
project ships and builds (packaged configs, demo, benchmark, profiler)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.requires_solo

TYPO = "`max_epoch`: unknown key; did you mean `max_epochs`?"


def _compose(kind, name, overrides=()):
    from sfrik_plugin.solo.config import compose_config

    return compose_config(kind, name, list(overrides))


def _packaged():
    from sfrik_plugin.solo.config import CONFIG_KINDS, packaged_configs

    return [(kind, name) for kind in CONFIG_KINDS for name in packaged_configs(kind)]


@pytest.mark.parametrize("kind, name", _packaged())
def test_every_packaged_config_composes_and_passes(kind, name):
    from sfrik_plugin.solo.known_keys import unknown_keys

    cfg = _compose(kind, name)
    assert unknown_keys(kind, cfg) == []
    # and each packaged config has at least one key the check knows to refuse a typo of
    assert unknown_keys(kind, {**cfg, "nmae": 1}) == [("nmae", "name" if kind != "knn" else None)]


@pytest.mark.parametrize(
    "kind, name, override, message",
    [
        ("pretrain", "custom/sfrik", "++max_epoch=1", TYPO),
        ("pretrain", "cifar10/vicreg", "++optimiser.lr=9.9", "`optimiser`: unknown key; did you mean `optimizer`?"),
        ("pretrain", "custom/barlow", "++lr=0.1", "`lr`: unknown key; did you mean `optimizer.lr`?"),
        (
            "pretrain",
            "custom/sfrik",
            "++augmentations.1.rrc.crop_min_scal=0.5",
            "`augmentations.1.rrc.crop_min_scal`: unknown key; did you mean `augmentations.1.rrc.crop_min_scale`?",
        ),
        (
            "pretrain",
            "imagenet/vicreg",
            "++method_kwargs.sim_los_weight=5",
            "`method_kwargs.sim_los_weight`: unknown key of method vicreg; did you mean `method_kwargs.sim_loss_weight`?",
        ),
        ("linear", "custom", "++max_epoch=1", TYPO),
        ("linear", "cifar10", "++data.augmentations.crop_sise=32", "did you mean `data.augmentations.crop_size`?"),
        ("knn", "knn", "++batchsize=8", "`batchsize`: unknown key; did you mean `batch_size`?"),
        ("knn", "knn", "++max_epochs=1", "`max_epochs`: unknown key: neither solo-learn nor sfrik-plugin reads it."),
    ],
)
def test_an_unknown_override_is_one_line_naming_the_closest_key(kind, name, override, message):
    from sfrik_plugin.console import InputError

    with pytest.raises(InputError) as error:
        _compose(kind, name, [override])
    text = str(error.value)
    assert message in text and "\n" not in text
    assert text.endswith("(to pass a key on purpose, list it in unchecked_keys)")


def test_every_unknown_key_is_named_with_its_own_suggestion():
    from sfrik_plugin.console import InputError

    with pytest.raises(InputError, match=re.escape(f"{TYPO} Also unknown: `optimiser` (`optimizer`?), `zzz`.")):
        _compose("pretrain", "custom/sfrik", ["++max_epoch=1", "++optimiser.lr=9.9", "++zzz=1"])


def test_the_escape_hatch_lets_keys_through_on_purpose_and_only_those():
    from sfrik_plugin.console import InputError
    from sfrik_plugin.solo.known_keys import unknown_keys

    cfg = _compose(
        "pretrain",
        "custom/vicreg",
        [
            "++unchecked_keys=[run_tag,data.note,method_kwargs.my_weight]",
            "++run_tag=seven",
            "++data.note=from-the-lab",
            "++method_kwargs.my_weight=2",
        ],
    )
    assert cfg.run_tag == "seven" and cfg.method_kwargs.my_weight == 2
    # an exempt key covers its subtree, not its siblings
    cfg.data.note_2 = 1
    assert [key for key, _ in unknown_keys("pretrain", cfg)] == ["data.note_2"]
    with pytest.raises(InputError, match="unchecked_keys must be a list of dotted key names"):
        _compose("knn", "knn", ["++unchecked_keys=run_tag"])


def test_free_form_mappings_stay_free():
    cfg = _compose("pretrain", "custom/sfrik", ["++backbone.kwargs.anything=1", "++optimizer.kwargs.nesterov=true"])
    assert cfg.backbone.kwargs.anything == 1 and cfg.optimizer.kwargs.nesterov is True
    cfg = _compose("linear", "custom", ["++backbone.kwargs.img_size=32", "++optimizer.kwargs.betas=[0.9,0.99]"])
    assert cfg.backbone.kwargs.img_size == 32


# -- the references: solo-learn's source, Lightning's signature, what the project builds -----------


def _solo_source(relative: str) -> str:
    import solo

    return (Path(solo.__file__).parent / relative).read_text()


_SELECTED = re.compile(r"omegaconf_select\(\s*cfg,\s*\"([\w.]+)\"")
_READ = re.compile(r"\bcfg((?:\.[a-z_]+)+)")


@pytest.mark.parametrize(
    "kind, files",
    [
        (
            "pretrain",
            [
                "args/pretrain.py",
                "methods/base.py",
                "utils/checkpointer.py",
                "utils/auto_resumer.py",
                "utils/auto_umap.py",
                "data/dali_dataloader.py",
            ],
        ),
        ("linear", ["args/linear.py", "methods/linear.py", "utils/checkpointer.py", "utils/auto_resumer.py"]),
    ],
)
def test_every_key_solo_learn_reads_is_known(kind, files):
    """Each key solo-learn selects with defaults, or reads as ``cfg.a.b``, in the modules of a flow
    (``method_kwargs`` is per method; the augmentation pipeline reads list entries, tested below)."""
    from sfrik_plugin.solo.known_keys import known_keys

    tree = known_keys(kind)
    missing = []
    for relative in files:
        source = _solo_source(relative)
        paths = set(_SELECTED.findall(source))
        if relative.startswith(("args/", "methods/")):
            paths |= {m.lstrip(".") for m in _READ.findall(source)}
        for path in sorted(paths):
            node = tree
            for part in path.split("."):
                if part in ("get", "copy", "keys", "items"):  # a method call, not a key
                    break
                if node is None:  # free-form below (method_kwargs, *.kwargs)
                    break
                if not isinstance(node, dict) or part not in node:
                    missing.append(f"{relative}: {path}")
                    break
                node = node[part]
    assert not missing, missing


def test_the_augmentation_entry_keys_are_what_solo_learns_pipeline_reads():
    from sfrik_plugin.solo.known_keys import known_keys

    source = _solo_source("data/pretrain_dataloader.py")
    body = source[source.index("def build_transform_pipeline") :]
    body = body[: body.index("\ndef ", 1)]
    read = {m.lstrip(".") for m in _READ.findall(body)} - {"get"}
    read |= set(re.findall(r"cfg\.get\(\"(\w+)\"", body))
    assert {"crop_size", "rrc.crop_min_scale", "color_jitter.hue", "mean"} <= read
    (entry,) = known_keys("pretrain")["augmentations"]
    for path in read:
        node = entry
        for part in path.split("."):
            assert isinstance(node, dict) and part in node, path
            node = node[part]


def test_every_trainer_argument_is_known_to_the_training_flows():
    import inspect

    from lightning.pytorch import Trainer

    from sfrik_plugin.solo.known_keys import known_keys

    arguments = set(inspect.signature(Trainer.__init__).parameters) - {"self"}
    assert {"max_epochs", "limit_train_batches", "num_sanity_val_steps"} <= arguments
    for kind in ("pretrain", "linear"):
        assert arguments <= set(known_keys(kind))
    assert not arguments & set(known_keys("knn"))  # the kNN flow builds no Trainer


def test_each_solo_learn_method_reads_the_method_kwargs_its_docstring_lists():
    """The keys found in each method's code are the ones its ``__init__`` docstring documents
    under ``method_kwargs:`` (ReSSL's docstring is stale upstream: it documents a
    ``pred_hidden_dim`` its code never reads and omits the ``queue_size`` it does: the code wins)."""
    import inspect

    from solo.methods import METHODS

    from sfrik_plugin.solo.known_keys import method_kwargs_read_by

    compared = 0
    for name, klass in METHODS.items():
        doc = inspect.getdoc(klass.__init__) or ""
        if name == "sfrik" or "method_kwargs:" not in doc:
            continue
        documented = set(re.findall(r"^\s+(\w+) \(", doc.split("method_kwargs:", 1)[1], re.MULTILINE))
        read = method_kwargs_read_by(klass)
        assert read is not None, name
        if name == "ressl":
            documented = documented - {"pred_hidden_dim"} | {"queue_size"}
        assert read == documented, name
        compared += 1
    assert compared >= 15


class _ChecksItsOwnKeys:
    def __init__(self, cfg):
        self.kwargs = dict(cfg.method_kwargs)  # the whole mapping handed on: its keys are not in the source


class _InheritsTheCheck(_ChecksItsOwnKeys):
    def __init__(self, cfg):
        self.q = cfg.method_kwargs.proj_output_dim


class _ReadsTwoKeys:
    def __init__(self, cfg):
        self.q, self.tau = cfg.method_kwargs.proj_output_dim, cfg.method_kwargs.temperature


def test_a_method_that_takes_its_method_kwargs_whole_is_left_to_check_them_itself():
    from sfrik_plugin.solo.known_keys import method_kwargs_read_by

    assert method_kwargs_read_by(_ChecksItsOwnKeys) is None
    assert method_kwargs_read_by(_InheritsTheCheck) is None  # its base hands the mapping on
    assert method_kwargs_read_by(_ReadsTwoKeys) == {"proj_output_dim", "temperature"}


def test_the_demo_benchmark_and_profiler_configs_pass(tmp_path):
    from sfrik_plugin.benchmark.config import load_config, packaged_configs
    from sfrik_plugin.benchmark.plan import Run, method_grid
    from sfrik_plugin.benchmark.runner import Benchmark
    from sfrik_plugin.contenders import TRAIN_METHODS
    from sfrik_plugin.profiler.workers import build_train_config
    from sfrik_plugin.solo.demo import linear_overrides, pretrain_overrides
    from sfrik_plugin.solo.known_keys import unknown_keys

    data = {"train": str(tmp_path / "train"), "val": str(tmp_path / "val"), "test": str(tmp_path), "n_train": 640}
    _compose("pretrain", "custom/sfrik", pretrain_overrides(data, tmp_path / "ckpt", 2, 64))
    _compose("linear", "custom", linear_overrides(data, str(tmp_path / "run-ep=1.ckpt"), tmp_path / "ckpt", 2, 64))

    checked = 0
    for name in packaged_configs():
        for quick in (False, True):
            bench = Benchmark(load_config(name, quick=quick), tmp_path / name, memory_budget="16GiB")
            bench.data = data
            for method in bench.cfg["methods"]:
                for setting in method_grid(bench.cfg, method):
                    for steps in (None, 20):
                        spec = bench.spec(Run(tmp_path, method, setting, seed=0, steps=steps))
                        if "overrides" in spec:
                            _compose("pretrain", spec["config"], spec["overrides"])
                            checked += 1
    assert checked > 20

    shipped = _packaged()
    for method, entry in TRAIN_METHODS.items():
        if ("pretrain", f"cifar10/{entry.config}") not in shipped:
            continue  # a method whose config is still being added
        cfg = build_train_config({"method": method, "hidden": 32, "q": 16, "batch_size": 4})
        assert unknown_keys("pretrain", cfg) == [], method  # also after solo-learn's parse_cfg


# -- the launchers, as users run them -------------------------------------------------------------


def _user_yaml(tmp_path, kind, name, extra: str) -> Path:
    """A user's own config file: the packaged one written out whole, plus ``extra`` yaml lines."""
    from omegaconf import OmegaConf

    folder = tmp_path / "my_configs"
    folder.mkdir(exist_ok=True)
    path = folder / f"my_{kind}.yaml"
    path.write_text(OmegaConf.to_yaml(_compose(kind, name)) + extra)
    return folder


@pytest.mark.parametrize(
    "kind, name, yaml_typo, yaml_message, cli_typo, cli_message",
    [
        ("pretrain", "custom/sfrik", "max_epoch: 1\n", TYPO, "++optimiser.lr=9.9", "`optimiser` (`optimizer`?)"),
        (
            "linear",
            "custom",
            "optimiser:\n  lr: 9.9\n",
            "`optimiser`: unknown key; did you mean `optimizer`?",
            "++max_epoch=1",
            "`max_epoch` (`max_epochs`?)",
        ),
        (
            "knn",
            "knn",
            "batchsize: 8\n",
            "`batchsize`: unknown key; did you mean `batch_size`?",
            "++kk=[3]",
            "`kk` (`k`?)",
        ),
    ],
)
def test_launchers_refuse_typos_from_a_yaml_file_and_the_command_line(
    cli, tmp_path, kind, name, yaml_typo, yaml_message, cli_typo, cli_message
):
    folder = _user_yaml(tmp_path, kind, name, yaml_typo)
    args = ["--config-path", str(folder), "--config-name", f"my_{kind}", f"checkpoint.dir={tmp_path / 'ckpt'}"]
    if kind == "knn":
        args = args[:-1]
    out = cli(kind, [*args, cli_typo], cwd=tmp_path, check=False)
    assert out.returncode == 2, out.stderr[-3000:]
    (line,) = out.stderr.strip().splitlines()  # one line, no traceback
    assert line.startswith(f"sfrik-{kind}: error: {yaml_message}") and cli_message in line, line
    assert not (tmp_path / "ckpt").exists()  # nothing trained, nothing written


def test_a_packaged_config_with_a_command_line_typo_exits_2(cli, tmp_path):
    out = cli("pretrain", ["--config-name", "custom/sfrik", "++max_epoch=1"], cwd=tmp_path, check=False)
    assert out.returncode == 2
    assert out.stderr.strip() == f"sfrik-pretrain: error: {TYPO} (to pass a key on purpose, list it in unchecked_keys)"

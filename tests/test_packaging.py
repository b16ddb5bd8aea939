"""Ship what the code needs (issue 11): the project as a user installs it, not as the checkout sees it.

The first release had an ignore rule that kept the packaged configs out of git, so every fresh clone
was broken while every test passed in the developer's checkout. These tests build the sdist and,
from it, the wheel (as ``python -m build`` does), install the wheel into a clean venv outside the
source tree, and from there compose every packaged config, run every console script's ``--help``
and a two-step CPU pretraining through the installed ``sfrik-pretrain``. They also compare the
archives with ``git ls-files``: a file the package ships must be tracked (or a fresh clone lacks
it), and a tracked file of the package must be shipped (or the package-data rules drop it).

The git comparison needs neither solo-learn nor the clean venv, so it runs (and catches the
original bug) wherever git is; the tests that run the installed package are ``requires_solo``.

``SFRIK_PACKAGING_SOURCE=/path/to/checkout`` packages another tree (e.g. a throwaway clone) instead
of the one these tests live in. The build runs once per session (about a second); the clean venv
borrows the dev venv's site-packages through a ``.pth`` file instead of installing torch again.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

import _packaging as pk
import pytest
from _images import make_image_folder

# the launchers the README documents: a wheel without one of them is broken for its users
DOCUMENTED_SCRIPTS = {
    "sfrik-pretrain",
    "sfrik-linear",
    "sfrik-knn",
    "sfrik-demo",
    "sfrik-zoo",
    "sfrik-benchmark",
    "sfrik-benchmark-splits",
    "sfrik-solo",
}


@dataclass(frozen=True)
class Built:
    source: Path
    sdist: Path
    wheel: Path


@dataclass(frozen=True)
class Installed:
    python: Path
    env: dict[str, str]
    workdir: Path  # a folder outside the source tree, the cwd of every process of the clean venv
    report: dict


def _outside(path: Path, source: Path) -> None:
    assert not path.resolve().is_relative_to(source), f"{path} lies inside the source tree {source}"


@pytest.fixture(scope="session")
def built(tmp_path_factory) -> Built:
    """The sdist of the working tree and the wheel built from that sdist (once per session)."""
    source = pk.source_root()
    root = tmp_path_factory.mktemp("packaging-build")
    _outside(root, source)
    tree = pk.copy_working_tree(source, root / "tree")
    sdist = pk.build_sdist(tree, root / "dist")
    wheel = pk.build_wheel_from_sdist(sdist, root / "unpacked", root / "dist")
    return Built(source=source, sdist=sdist, wheel=wheel)


@pytest.fixture(scope="session")
def installed(built, tmp_path_factory) -> Installed:
    """The wheel installed into a clean venv, and what that venv reports (see ``_packaging.PROBE``)."""
    root = tmp_path_factory.mktemp("packaging-venv")
    _outside(root, built.source)
    python = pk.make_clean_venv(root / "venv")
    workdir = root / "work"
    workdir.mkdir()
    pk.install_wheel(python, built.wheel, cwd=workdir)
    env = pk.clean_env(python)
    report_path = workdir / "probe.json"
    pk.run([str(python), "-c", pk.PROBE, str(report_path)], cwd=workdir, env=env, timeout=300)
    return Installed(python=python, env=env, workdir=workdir, report=json.loads(report_path.read_text()))


def test_wheel_and_sdist_ship_exactly_the_tracked_package_files(built):
    """Shipped but untracked: a fresh clone lacks it. Tracked but not shipped: the package-data rules drop it."""
    problem = pk.git_checkout_problem(built.source)
    if problem is not None:
        pytest.skip(f"cannot compare with git's tracked files: {problem}")
    tracked = pk.tracked_package_files(built.source)
    assert f"{pk.PACKAGE}/__init__.py" in tracked, f"git tracks no {pk.PACKAGE}/ in {built.source}"
    messages = []
    seen: dict[tuple[str, frozenset[str]], str] = {}
    for label, archive in (
        ("wheel", pk.package_files(pk.wheel_files(built.wheel))),
        ("sdist", pk.package_files(pk.sdist_files(built.sdist))),
    ):
        untracked, dropped = frozenset(archive - tracked), frozenset(tracked - archive)
        for kind, files in (("untracked", untracked), ("dropped", dropped)):
            if not files:
                continue
            if (kind, files) in seen:  # the sdist usually repeats the wheel: say so in one line
                messages.append(f"the {label}: the same {len(files)} {kind} file(s) as the {seen[kind, files]}")
                continue
            seen[kind, files] = label
            listing = "\n  ".join(sorted(files))
            if kind == "untracked":
                rules = pk.ignore_rules(built.source, set(files))
                messages.append(
                    f"the {label} ships {len(files)} file(s) git does not track, so a fresh clone lacks them"
                    f" (`git add` them; .gitignore rules that hide them: {rules or 'none'}):\n  {listing}"
                )
            else:
                messages.append(
                    f"the {label} lacks {len(files)} tracked file(s) of {pk.PACKAGE}/"
                    f" ([tool.setuptools.package-data] in pyproject.toml?):\n  {listing}"
                )
    assert not messages, f"packaging of {built.source}:\n" + "\n".join(messages)


@pytest.mark.requires_solo
def test_the_clean_venv_imports_the_installed_wheel(built, installed):
    report = installed.report
    module = Path(report["sfrik_plugin"]).resolve()
    assert module.is_relative_to(Path(report["purelib"]).resolve()), (
        f"sfrik_plugin imported from {module}, not from the clean venv's site-packages {report['purelib']}"
    )
    _outside(module, built.source)
    _outside(Path(report["purelib"]), built.source)
    assert Path(report["dist_location"]).resolve() == Path(report["purelib"]).resolve()
    assert "solo_error" not in report, f"`import solo` fails in the clean venv:\n{report['solo_error']}"
    holders = [str(Path(entry or installed.workdir).resolve()) for entry in report["holders"]]
    assert holders == [str(Path(report["purelib"]).resolve())], (
        f"folders on the clean venv's sys.path with a sfrik_plugin package: {holders}; only its own"
        " site-packages should have one (the source tree on sys.path? a non-editable install in the dev venv?)"
    )
    assert not [h for h in report["hooks"] if "__editable__" in h], f"an editable install is active: {report['hooks']}"


@pytest.mark.requires_solo
def test_the_installed_package_holds_every_module_and_config_of_the_tree(built, installed):
    """Without git: every .py, .yaml and .json of the tree is installed (package-data rules, sdist contents)."""
    suffixes = (".py", ".yaml", ".json")
    in_tree = pk.tree_files(built.source, suffixes)
    installed_files = {f for f in installed.report["files"] if f.endswith(suffixes)}
    assert f"{pk.PACKAGE}/solo/configs/pretrain/custom/sfrik.yaml" in in_tree
    missing = sorted(in_tree - installed_files)
    assert not missing, f"{len(missing)} file(s) of the source tree are not installed from the wheel:\n" + "\n".join(
        missing
    )


@pytest.mark.requires_solo
def test_every_packaged_config_composes_from_the_installed_wheel(installed):
    configs = installed.report["configs"]
    failures = {name: c["error"] for name, c in configs.items() if "error" in c}
    assert not failures, "packaged configs that do not compose:\n" + "\n".join(f"{k}: {v}" for k, v in failures.items())
    pretrain = {name.partition(":")[2]: c for name, c in configs.items() if name.startswith("pretrain:")}
    assert {"custom/sfrik", "cifar10/sfrik", "imagenet/sfrik"} <= set(pretrain), (
        f"pretraining configs the installed wheel lists: {sorted(pretrain)}"
    )
    for name, cfg in pretrain.items():
        assert name.count("/") == 1, f"pretraining configs are <dataset>/<method>, got {name!r}"
        assert cfg["method"] and cfg["augmentations"] >= 1, f"{name}: {cfg}"
    assert {n for n in configs if n.startswith("linear:")} >= {"linear:custom", "linear:cifar10"}
    assert "knn:knn" in configs and configs["knn:knn"]["keys"]

    benchmarks = installed.report["benchmarks"]
    assert {"fashion_mnist.yaml", "fashion_mnist.yaml --quick"} <= set(benchmarks)
    failures = {name: b["error"] for name, b in benchmarks.items() if "error" in b}
    assert not failures, "benchmark configs that do not load or compose:\n" + "\n".join(
        f"{k}: {v}" for k, v in failures.items()
    )
    assert all(b["composed"] for b in benchmarks.values()), benchmarks


@pytest.mark.requires_solo
def test_every_console_script_answers_help(installed):
    scripts = installed.report["console_scripts"]
    missing = DOCUMENTED_SCRIPTS - set(scripts)
    assert not missing, f"the wheel has no console script {sorted(missing)}"
    # all at once: each start imports torch (and solo-learn), seconds of CPU that overlap on 2 cores
    running = {}
    for name in scripts:
        executable = installed.python.parent / name
        assert executable.is_file(), f"pip installed no {executable}"
        log = installed.workdir / f"{name}.help.log"
        with open(log, "w") as handle:
            running[name] = (
                subprocess.Popen(
                    [str(executable), "--help"],
                    cwd=installed.workdir,
                    env=installed.env,
                    stdout=handle,
                    stderr=subprocess.STDOUT,
                ),
                log,
            )
    failed = {}
    for name, (proc, log) in running.items():
        try:
            status = proc.wait(timeout=300)
        except subprocess.TimeoutExpired:
            proc.kill()
            status = "timeout (300 s)"
        output = log.read_text()
        if status != 0 or not output.strip():
            failed[name] = f"exit {status}:\n{output[-3000:]}"
    assert not failed, "\n".join(f"`{n} --help` failed, {why}" for n, why in failed.items())


@pytest.mark.requires_solo
def test_the_installed_sfrik_pretrain_trains_two_steps(installed, tmp_path):
    from sfrik_plugin.files.checkpoints import load_checkpoint

    # six classes: solo-learn's online linear evaluation computes top-5 accuracy
    train = make_image_folder(tmp_path / "train", classes=6, per_class=2, seed=0)
    val = make_image_folder(tmp_path / "val", classes=6, per_class=1, seed=1)
    ckpt_dir = tmp_path / "ckpt"
    pk.run(
        [
            str(installed.python.parent / "sfrik-pretrain"),
            "--config-name",
            "custom/sfrik",
            f"data.train_path={train}",
            f"data.val_path={val}",
            "accelerator=cpu",
            "devices=1",
            "strategy=auto",
            "precision=32",
            "optimizer.batch_size=4",
            "data.num_workers=0",
            "method_kwargs.proj_hidden_dim=32",
            "method_kwargs.proj_output_dim=16",
            "augmentations.0.crop_size=16",
            "augmentations.1.crop_size=16",
            "max_epochs=1",
            "++limit_train_batches=2",
            "++limit_val_batches=1",
            "++num_sanity_val_steps=0",
            "++enable_progress_bar=False",
            "auto_resume.enabled=False",
            f"checkpoint.dir={ckpt_dir}",
        ],
        cwd=installed.workdir,
        env=installed.env,
        timeout=600,
    )
    checkpoints = sorted(ckpt_dir.rglob("*.ckpt"))
    assert len(checkpoints) == 1, f"expected one checkpoint under {ckpt_dir}, found {checkpoints}"
    state = load_checkpoint(checkpoints[0])
    assert state["global_step"] == 2 and state["epoch"] == 0


def test_the_build_copy_leaves_out_what_git_ignores_at_the_top(tmp_path):
    """A run folder named in .gitignore (gigabytes of checkpoints) is not copied; ignored files inside
    the package are, since a local build would read them."""
    source = tmp_path / "src"
    (source / "bench-runs" / "r").mkdir(parents=True)
    (source / "bench-runs" / "r" / "w.pt").write_bytes(b"x")
    (source / pk.PACKAGE).mkdir()
    (source / pk.PACKAGE / "__init__.py").write_text("")
    (source / pk.PACKAGE / "local.ckpt").write_text("")
    (source / "notes.txt").write_text("untracked, not ignored")
    (source / ".gitignore").write_text("/bench-runs/\n*.ckpt\n")
    subprocess.run(["git", "init", "-q"], cwd=source, check=True)
    copied = pk.copy_working_tree(source, tmp_path / "copy")
    names = {p.relative_to(copied).as_posix() for p in copied.rglob("*")}
    assert "bench-runs" not in names and "notes.txt" in names and ".gitignore" in names
    assert f"{pk.PACKAGE}/local.ckpt" in names

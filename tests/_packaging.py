"""Helpers of the packaging test (tests/test_packaging.py): build the sdist and the wheel the way
``python -m build`` does, install the wheel into a clean venv, and run things inside that venv.

Why a helper module: the test must see the project exactly as a user who installs it sees it, and
that takes some plumbing that would drown the test's assertions:

* the build runs on a COPY of the working tree, so nothing is written into the checkout other
  agents and editors share (setuptools leaves ``build/`` and ``*.egg-info`` behind, and a stale
  ``build/lib`` can even leak removed files into the next wheel);
* the sdist is built first and the wheel from the unpacked sdist (what ``python -m build`` does by
  default), so a file the sdist forgets is also missing from the wheel and the installed package;
* the clean venv has no packages of its own: a ``.pth`` file appends the dev venv's site-packages
  to ``sys.path``. Lines of a ``.pth`` file are only appended; the ``.pth`` files inside that
  directory are not processed, so the dev venv's editable install of ``sfrik_plugin`` is not active
  there and the only ``sfrik_plugin`` is the one installed from the wheel.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "sfrik_plugin"
# point the test at another tree (e.g. a throwaway clone) without installing it
SOURCE_ENV = "SFRIK_PACKAGING_SOURCE"

# anywhere in the tree: what Python and setuptools generate
_ANYWHERE_SKIP_DIRS = {"__pycache__"}
_ANYWHERE_SKIP_SUFFIXES = (".pyc", ".egg-info")


def source_root() -> Path:
    """The tree to package: ``$SFRIK_PACKAGING_SOURCE`` if set, else the checkout these tests are in."""
    chosen = os.environ.get(SOURCE_ENV)
    root = Path(chosen).resolve() if chosen else REPO_ROOT
    if not (root / "pyproject.toml").is_file():
        raise AssertionError(f"{root} has no pyproject.toml (set {SOURCE_ENV} to a checkout of sfrik-plugin)")
    return root


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    """Runs ``cmd``; returns its stdout, or raises with both output streams when it fails."""
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"`{' '.join(map(str, cmd))}` failed with exit status {proc.returncode} (cwd {cwd}).\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"
        )
    return proc.stdout


def copy_working_tree(source: Path, target: Path) -> Path:
    """Copies what a build of ``source`` may read into ``target`` (tracked or not: the working tree).

    Left out at the top: ``.git``, any venv, and in a git checkout what git ignores there (run and
    output folders: a benchmark's runs weigh gigabytes, and a fresh clone has none of them). The
    ignore rules are read from git, not listed again here, so a folder added to ``.gitignore`` is
    left out too. Below the top level everything is copied: an ignored file inside the package
    would reach a local build, and the test comparing the wheel with git's files must see it.
    """
    top_level_skip = {".git", *_ignored_top_level_entries(source)}

    def ignore(folder: str, names: list[str]) -> set[str]:
        skipped = {n for n in names if n in _ANYWHERE_SKIP_DIRS or n.endswith(_ANYWHERE_SKIP_SUFFIXES)}
        if Path(folder) == source:
            skipped |= {n for n in names if n in top_level_skip}
            # any venv at the top, ignored or not (e.g. a second one an agent made): gigabytes, never built
            skipped |= {n for n in names if (source / n / "pyvenv.cfg").is_file()}
        return skipped

    def copy(src: str, dst: str) -> None:
        try:
            shutil.copy2(src, dst)
        except FileNotFoundError:  # removed while we copy: an editor's or a tool's temporary file
            pass

    shutil.copytree(source, target, ignore=ignore, symlinks=True, copy_function=copy)
    return target


def _ignored_top_level_entries(source: Path) -> set[str]:
    """Names of the top-level files and folders of ``source`` that git ignores (none outside git)."""
    if git_checkout_problem(source) is not None:
        return set()  # an unpacked sdist or archive: it has no run folders
    out = run(["git", "ls-files", "-z", "--others", "--ignored", "--exclude-standard", "--directory"], cwd=source)
    entries = (name.rstrip("/") for name in out.split("\0") if name)
    return {name for name in entries if "/" not in name and name != PACKAGE}


# Run by this interpreter with cwd = the tree: calls one PEP 517 hook of the tree's build backend
# (argv: hook name, output folder) after checking that this environment satisfies the build's
# requirements (``build-system.requires`` and the backend's ``get_requires_for_build_*``): the
# build runs without isolation, so an old setuptools without its own bdist_wheel (< 70.1, the one
# a fresh Python 3.11 venv bundles) and no ``wheel`` would otherwise fail with a cryptic
# "invalid command 'bdist_wheel'".
BUILD = r"""
import importlib, sys
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement

try:
    import tomllib
except ImportError:  # Python 3.10: the copy pip vendors
    from pip._vendor import tomli as tomllib

hook, out = sys.argv[1], sys.argv[2]  # read first: setuptools' hooks rewrite sys.argv
with open("pyproject.toml", "rb") as handle:
    system = tomllib.load(handle).get("build-system", {})
module, _, attribute = system.get("build-backend", "setuptools.build_meta:__legacy__").partition(":")
backend = importlib.import_module(module)
for part in filter(None, attribute.split(".")):
    backend = getattr(backend, part)
requires = list(system.get("requires", ["setuptools"]))
requires += getattr(backend, "get_requires_for_" + hook)()
unmet = []
for text in requires:
    requirement = Requirement(text)
    if requirement.marker is not None and not requirement.marker.evaluate():
        continue
    try:
        installed = version(requirement.name)
    except PackageNotFoundError:
        unmet.append(f"{text} (not installed)")
        continue
    if not requirement.specifier.contains(installed, prereleases=True):
        unmet.append(f"{text} (installed: {installed})")
if unmet:
    sys.exit("UNMET BUILD REQUIREMENTS: " + ", ".join(unmet))
getattr(backend, hook)(out)
"""


def _call_backend(tree: Path, hook: str, out: Path, suffix: str) -> Path:
    """Calls the PEP 517 ``hook`` of ``tree``'s backend in a fresh process of this interpreter.

    No build isolation: the backend comes from the dev venv, so the build works offline (what
    ``python -m build --no-isolation`` would do; ``build`` itself is not needed).
    """
    out.mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [sys.executable, "-c", BUILD, hook, str(out)], cwd=tree, capture_output=True, text=True, timeout=300
    )
    if "UNMET BUILD REQUIREMENTS" in proc.stderr:
        raise AssertionError(
            f"{hook} needs what this environment ({sys.prefix}) lacks; the build runs without isolation,"
            f" in this environment, so install it (the dev extra of pyproject.toml should require it):"
            f" {proc.stderr.strip().rpartition('UNMET BUILD REQUIREMENTS: ')[2]}"
        )
    if proc.returncode != 0:
        raise AssertionError(
            f"{hook} of {tree} failed with exit status {proc.returncode}.\n"
            f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-6000:]}"
        )
    (artifact,) = [p for p in out.iterdir() if p.name.endswith(suffix)]
    return artifact


def build_sdist(tree: Path, out: Path) -> Path:
    return _call_backend(tree, "build_sdist", out, ".tar.gz")


def build_wheel_from_sdist(sdist: Path, unpack_to: Path, out: Path) -> Path:
    """Unpacks ``sdist`` and builds the wheel from it, as ``python -m build`` does."""
    unpack_to.mkdir(parents=True, exist_ok=True)
    with tarfile.open(sdist) as archive:
        # the 'data' filter refuses absolute paths and links out of the folder (3.11.4+/3.12)
        if hasattr(tarfile, "data_filter"):
            archive.extractall(unpack_to, filter="data")
        else:  # pragma: no cover - older interpreters
            archive.extractall(unpack_to)
    (tree,) = [p for p in unpack_to.iterdir() if p.is_dir()]
    return _call_backend(tree, "build_wheel", out, ".whl")


def wheel_files(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return [n for n in archive.namelist() if not n.endswith("/")]


def sdist_files(sdist: Path) -> list[str]:
    """Member files of ``sdist``, without the leading ``<name>-<version>/`` folder."""
    with tarfile.open(sdist) as archive:
        return [m.name.partition("/")[2] for m in archive.getmembers() if m.isfile()]


def package_files(names: list[str]) -> set[str]:
    """The files of the ``sfrik_plugin`` package among archive ``names``, byte code left out."""
    return {
        n for n in names if n.startswith(f"{PACKAGE}/") and not n.endswith(".pyc") and "/__pycache__/" not in f"/{n}"
    }


def tree_files(root: Path, suffixes: tuple[str, ...]) -> set[str]:
    """Files with one of ``suffixes`` under ``root/sfrik_plugin``, relative to ``root`` (posix)."""
    found = set()
    for path in (root / PACKAGE).rglob("*"):
        if path.is_file() and path.suffix in suffixes and "__pycache__" not in path.parts:
            found.add(path.relative_to(root).as_posix())
    return found


def git_checkout_problem(source: Path) -> str | None:
    """Why ``source`` cannot be asked which files git tracks, or None when it can."""
    if shutil.which("git") is None:
        return "git is not installed, so which files are tracked cannot be known"
    proc = subprocess.run(
        ["git", "rev-parse", "--is-inside-work-tree"], cwd=source, capture_output=True, text=True, timeout=60
    )
    if proc.returncode != 0 or proc.stdout.strip() != "true":
        return f"{source} is not a git checkout (an unpacked sdist or archive): {proc.stderr.strip()}"
    return None


def tracked_package_files(source: Path) -> set[str]:
    """Files of ``sfrik_plugin/`` in git's index that exist in the working tree.

    A tracked file deleted in the working tree (a deletion not committed yet) is left out: the
    wheel is built from the working tree, and a fresh clone having one file more is not a
    packaging failure.
    """
    out = run(["git", "ls-files", "-z", "--", PACKAGE], cwd=source, timeout=60)
    return {name for name in out.split("\0") if name and (source / name).is_file()}


def ignore_rules(source: Path, names: set[str]) -> list[str]:
    """The ignore rules (``file:line:pattern``, from ``git check-ignore -v``) that hide any of ``names``."""
    if not names:
        return []
    proc = subprocess.run(
        ["git", "check-ignore", "-v", "--no-index", "--", *sorted(names)],
        cwd=source,
        capture_output=True,
        text=True,
        timeout=60,
    )
    # each line is "<file>:<line>:<pattern>\t<path>": one entry per rule, however many files it hides
    return sorted({line.partition("\t")[0] for line in proc.stdout.splitlines() if line})


def make_clean_venv(root: Path) -> Path:
    """A venv without packages of its own that sees the dev venv's site-packages (see module doc).

    Returns its interpreter.
    """
    venv.EnvBuilder(with_pip=False, symlinks=os.name != "nt", clear=True).create(root)
    python = root / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = Path(
        run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).strip()
    )
    dev_dirs = [d for d in site.getsitepackages() if Path(d).is_dir()]
    # only the site-packages directories: never the source tree or tests/ pytest put on sys.path
    (purelib / "_sfrik_dev_site_packages.pth").write_text("\n".join(dev_dirs) + "\n")
    return python


def clean_env(python: Path) -> dict[str, str]:
    """The environment of a process of the clean venv: nothing that would reach the source tree."""
    env = {
        key: value
        for key, value in os.environ.items()
        # PYTHONPATH/PYTHONHOME would add the checkout; PIP_* (e.g. a constraints file) and an
        # active VIRTUAL_ENV belong to the dev venv; the launchers set SFRIK_SOLO_CLI_COMMAND
        if not key.startswith(("PYTHON", "PIP_", "VIRTUAL_ENV", "CONDA_", "SFRIK_SOLO_CLI"))
    }
    bin_dir = python.parent
    env["PATH"] = os.pathsep.join([str(bin_dir), env.get("PATH", "")])
    env["VIRTUAL_ENV"] = str(bin_dir.parent)
    env["PYTHONNOUSERSITE"] = "1"
    # the dev venv is seen read-only: no __pycache__ written into it from here
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PIP_NO_INPUT"] = "1"
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def install_wheel(python: Path, wheel: Path, cwd: Path) -> None:
    """``pip install --no-deps`` of ``wheel`` into the clean venv, with the dev venv's pip.

    ``--ignore-installed``: pip sees the dev venv's (editable) sfrik-plugin of the same version
    through the ``.pth`` and would otherwise call the wheel already installed, or try to
    uninstall the dev copy.
    """
    run(
        [str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed", str(wheel)],
        cwd=cwd,
        env=clean_env(python),
        timeout=300,
    )


# Run by the clean venv's interpreter (cwd outside the source tree): what got installed, where it
# is imported from, and every packaged config composed. Errors are collected per config, so one
# run reports them all; the result goes to the JSON file named by argv[1] (stdout carries the
# libraries' warnings).
PROBE = r"""
import json, sys, sysconfig, traceback
from importlib.metadata import distribution
from pathlib import Path

report = {"purelib": sysconfig.get_paths()["purelib"]}
# every folder on sys.path that holds a sfrik_plugin (only the clean site-packages should), and the
# import hooks (the dev venv's editable install would show up as an __editable__ finder)
report["holders"] = [e for e in sys.path if Path(e or ".", "sfrik_plugin").exists()]
report["hooks"] = [repr(h) for h in sys.meta_path + sys.path_hooks]
import sfrik_plugin

report["sfrik_plugin"] = sfrik_plugin.__file__
package = Path(sfrik_plugin.__file__).parent
report["files"] = sorted(
    p.relative_to(package.parent).as_posix()
    for p in package.rglob("*")
    if p.is_file() and "__pycache__" not in p.parts
)
try:
    import solo

    report["solo"] = solo.__file__
except Exception:
    report["solo_error"] = traceback.format_exc()
dist = distribution("sfrik-plugin")
report["dist_location"] = str(dist.locate_file(""))
report["console_scripts"] = sorted(ep.name for ep in dist.entry_points if ep.group == "console_scripts")

from omegaconf import OmegaConf
from sfrik_plugin.solo.config import CONFIG_KINDS, compose_config, packaged_configs

configs = {}
for kind in CONFIG_KINDS:
    for name in packaged_configs(kind):
        try:
            cfg = OmegaConf.to_container(compose_config(kind, name, []), resolve=True)
            configs[f"{kind}:{name}"] = {
                "keys": sorted(cfg),
                "method": cfg.get("method"),
                "augmentations": len(cfg.get("augmentations") or []),
            }
        except Exception as error:
            configs[f"{kind}:{name}"] = {"error": f"{type(error).__name__}: {error}"}
report["configs"] = configs

import sfrik_plugin.benchmark
from sfrik_plugin.benchmark.config import load_config
from sfrik_plugin.benchmark.plan import setting_overrides
from sfrik_plugin.benchmark.runner import Benchmark

benchmarks = {}
for path in sorted((Path(sfrik_plugin.benchmark.__file__).parent / "configs").glob("*.yaml")):
    for quick in (False, True):
        key = f"{path.name}{' --quick' if quick else ''}"
        try:
            cfg = load_config(path, quick=quick)
            composed = []
            # each method's pretraining config, with the benchmark's overrides and every grid setting
            shared = Benchmark(cfg, Path(sys.argv[1]).parent / "bench", memory_budget="8GiB").shared_overrides(1024)
            for method, spec in cfg["methods"].items():
                for setting in spec.get("grid") or [{}]:
                    overrides = shared + list(spec.get("overrides", [])) + ["max_epochs=1"]
                    compose_config("pretrain", spec["config"], overrides + setting_overrides(setting))
                    composed.append(f"{method}:{spec['config']}")
            benchmarks[key] = {"composed": composed}
        except Exception as error:
            benchmarks[key] = {"error": f"{type(error).__name__}: {error}"}
report["benchmarks"] = benchmarks

Path(sys.argv[1]).write_text(json.dumps(report, indent=1))
"""

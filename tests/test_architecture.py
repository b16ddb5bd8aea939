"""The house keeps its plan (README "Architecture"): each folder imports only the folders below it
in the plan, so there is no import circle between folders, the maths needs nothing but torch and
numpy, and a module longer than ~400 lines says at its top why it is long. The scripts in
``scripts/`` sit on top of the plan: they may use every part, through public names only, and the
length rule holds for them too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sfrik_plugin"
SCRIPTS = PACKAGE.parent / "scripts"

#: folder (or top-level module) -> the parts of the package it may import (README "Architecture")
ALLOWED = {
    "maths": set(),
    "console": set(),
    "interrupts": {"console"},
    "files": {"console"},
    "data": {"console", "files", "maths"},
    "contenders": {"maths", "console"},
    "zoo": {"files", "console"},
    "solo": {"maths", "files", "console", "interrupts", "data", "contenders"},
    "profiler": {"contenders", "maths", "files", "console"},
    "benchmark": {"solo", "data", "files", "console", "interrupts", "contenders", "profiler", "maths"},
    "__init__": {"maths"},
}
#: the scripts are above every part (the package root's re-exports included)
ALLOWED["scripts"] = set(ALLOWED)
#: the one sanctioned edge against the plan's order, lazily inside one function: the training-step
#: worker of the profiler builds its model through the adapter
EXCEPTIONS = {("profiler/workers.py", "solo")}
LONG = 400


def _part(relative: Path) -> str:
    return relative.parts[0] if len(relative.parts) > 1 else relative.stem


def _relative(path: Path) -> Path:
    """A package module relative to the package (``solo/method.py``), a script as ``scripts/x.py``."""
    return path.relative_to(PACKAGE) if PACKAGE in path.parents else path.relative_to(PACKAGE.parent)


def _imported_names(path: Path) -> list[list[str]]:
    """Every ``sfrik_plugin...`` name a module imports, split at the dots (relative imports resolved;
    ``from x import y`` gives ``x.y``)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    relative_dir = path.parent.relative_to(PACKAGE.parent)  # e.g. sfrik_plugin/solo
    found: list[list[str]] = []
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                names = [f"{node.module}.{a.name}" for a in node.names]
            else:
                base = list(relative_dir.parts)[: len(relative_dir.parts) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
                names = [f"{module}.{a.name}" for a in node.names]
        found += [name.split(".") for name in names if name.split(".")[0] == "sfrik_plugin"]
    return found


def _imported_parts(path: Path) -> set[str]:
    """Parts of the package a module imports (absolute ``sfrik_plugin.x`` or relative ``..x``); a
    name of the package root (``from .. import sfrik_loss_func``) is the part ``__init__``."""
    found = set()
    for parts in _imported_names(path):
        is_part = len(parts) > 1 and ((PACKAGE / parts[1]).is_dir() or (PACKAGE / f"{parts[1]}.py").is_file())
        found.add(parts[1] if is_part else "__init__")
    return found


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _scripts():
    return sorted(SCRIPTS.glob("*.py"))


@pytest.mark.parametrize("path", _modules() + _scripts(), ids=lambda p: str(_relative(p)))
def test_every_module_imports_only_what_its_folder_may(path):
    relative = _relative(path)
    own = _part(relative)
    assert own in ALLOWED, f"{relative}: folder {own!r} is not in the plan (README 'Architecture')"
    for target in _imported_parts(path) - {own}:
        if (relative.as_posix(), target) in EXCEPTIONS:
            continue
        assert target in ALLOWED[own], f"{relative} imports sfrik_plugin.{target}, which {own}/ may not"


def test_the_folder_graph_has_no_circle():
    edges = {part: set(allowed) for part, allowed in ALLOWED.items()}
    state: dict[str, str] = {}

    def visit(node, trail):
        state[node] = "open"
        for target in edges.get(node, ()):
            assert state.get(target) != "open", f"import circle: {' -> '.join([*trail, node, target])}"
            if target not in state:
                visit(target, [*trail, node])
        state[node] = "done"

    for part in edges:
        if part not in state:
            visit(part, [])


def test_the_maths_needs_torch_and_numpy_only():
    allowed_roots = {"torch", "numpy", "__future__", "sfrik_plugin"}
    for path in (PACKAGE / "maths").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                roots = {(node.module or "").split(".")[0]}
            else:
                continue
            import sys

            outside = {r for r in roots if r not in allowed_roots and r not in sys.stdlib_module_names}
            assert not outside, f"{path.relative_to(PACKAGE)} imports {outside}"


@pytest.mark.parametrize("path", _scripts(), ids=lambda p: p.name)
def test_scripts_use_public_names_only(path):
    for parts in _imported_names(path):
        private = [part for part in parts[1:] if part.startswith("_")]
        assert not private, f"scripts/{path.name} imports the private {'.'.join(parts)}"


@pytest.mark.parametrize("path", _modules() + _scripts(), ids=lambda p: str(_relative(p)))
def test_a_long_module_says_why(path):
    lines = path.read_text().count("\n")
    if lines <= LONG:
        return
    docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
    assert "Why this module is long" in docstring, (
        f"{_relative(path)} has {lines} lines: split it, or say at its top 'Why this module is long: ...'"
    )


def test_the_checker_sees_a_forbidden_import(tmp_path):
    # the mutation check of this file: a maths module importing the adapter is caught
    fake = PACKAGE / "maths" / "_architecture_probe.py"
    try:
        fake.write_text("from ..solo import register\n")
        assert "solo" in _imported_parts(fake)
        with pytest.raises(AssertionError, match="imports sfrik_plugin.solo"):
            test_every_module_imports_only_what_its_folder_may(fake)
    finally:
        fake.unlink()


def test_the_package_root_is_a_part_of_its_own():
    # ``from .. import sfrik_loss_func`` inside a folder imports the package root's __init__ (which
    # imports the maths), not the maths: a folder imports the module it means, the root only re-exports
    fake = PACKAGE / "contenders" / "_architecture_probe.py"
    try:
        fake.write_text("from .. import sfrik_loss_func\nfrom ..maths.losses import SFRIKLoss\n")
        assert _imported_parts(fake) == {"__init__", "maths"}
        with pytest.raises(AssertionError, match="imports sfrik_plugin.__init__, which contenders/ may not"):
            test_every_module_imports_only_what_its_folder_may(fake)
    finally:
        fake.unlink()


def test_the_checker_reads_the_scripts():
    scripts = {p.name for p in _scripts()}
    assert {"profile_loss.py", "profile_train.py", "profile_pretrain_input.py"} <= scripts
    assert "profiler" in _imported_parts(SCRIPTS / "profile_loss.py")


def _module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(relative.parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _module_edges() -> dict[str, set[str]]:
    """Module -> the package's modules it imports, lazy imports included; a package's ``__init__``
    only re-exports, so an import of a package counts as an import of the submodules it names."""
    files = {_module_name(p): p for p in _modules()}
    edges: dict[str, set[str]] = {}
    for name, path in files.items():
        if path.name == "__init__.py":
            continue
        package = name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            candidates: list[str] = []
            if isinstance(node, ast.Import):
                candidates = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                candidates = [f"{module}.{a.name}" for a in node.names] + [module]
            for candidate in candidates:
                if candidate in files and files[candidate].name != "__init__.py":
                    targets.add(candidate)
                    break
        edges[name] = targets - {name}
    return edges


def test_no_two_modules_import_each_other_even_lazily():
    edges = _module_edges()
    state: dict[str, str] = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(edges.get(node, ())):
            assert state.get(target) != "open", f"module import circle: {' -> '.join([*trail, node, target])}"
            if target not in state:
                visit(target, [*trail, node])
        state[node] = "done"

    assert len(edges) > 50, "the module graph was not read"
    for module in sorted(edges):
        if module not in state:
            visit(module, [])

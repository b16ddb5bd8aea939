"""Per-class subsets and disjoint validation splits of any ImageFolder dataset, without copying images.

The paper's protocol (ImageNet "IN20%"): pretrain and train the probes on the first ``n`` images
of every class (file names in sorted order; ``n = 260`` for IN20%), choose hyper-parameters on a
validation split made of the *next* ``m`` images of every class, and touch the real test split
once, with the chosen setting.

:func:`build_splits` writes, for each split, a folder of symbolic links ``<out>/<split>/<class>/<file>``
(an ImageFolder tree, which solo-learn's ``custom`` dataset and torchvision read as they read the
original) and a file list ``<out>/<split>.txt`` (``<class>/<file> <label>`` per line, relative to the
source root). A ``splits.json`` stamp records the settings and is written last: a finished tree is
reused, a tree built with other settings or half written is rebuilt. Classes and image files are
listed by :mod:`sfrik_plugin.data.image_folder`, with torchvision's rules.

Example::

    sfrik-benchmark-splits /data/imagenet/train /data/in20 --split train=260 --split val=52
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..console import InputError
from ..files.records import read_json, write_json, write_text_atomic
from .image_folder import IMAGE_EXTENSIONS, check_image_folder, class_files, list_classes

__all__ = [
    "IMAGE_EXTENSIONS",
    "list_classes",
    "class_files",
    "carve",
    "write_symlink_tree",
    "build_splits",
    "read_file_list",
]

_STAMP = "splits.json"


def carve(
    root: str | Path,
    per_class: dict[str, int | None],
    strict: bool = True,
) -> dict[str, dict[str, list[str]]]:
    """Consecutive, disjoint per-class slices of the sorted file list of every class.

    ``per_class`` maps split name -> images per class, in order: ``{"train": 260, "val": 52}`` gives
    each class's first 260 files to "train" and the next 52 to "val". ``None`` means "all that remain"
    (only for the last split). With ``strict`` a class with too few images raises
    :class:`~sfrik_plugin.console.InputError`; otherwise the last splits get what is left (at least
    one image per class is still required). Returns ``{split: {class: [relative file paths]}}``.

    Example:
        >>> carve("/data/pets/train", {"train": 2, "val": 1})["val"]  # doctest: +SKIP
        {'cat': ['cat_003.jpg'], 'dog': ['dog_003.jpg']}
    """
    if not per_class:
        raise InputError("no split asked for; give at least one, e.g. {'train': 260, 'val': 52}")
    names = list(per_class)
    for name in names[:-1]:
        if per_class[name] is None:
            raise InputError(f"only the last split may take 'all remaining' images, not {name!r}; give it a count")
    for name, n in per_class.items():
        if n is not None and n <= 0:
            raise InputError(f"split {name!r}: images per class must be positive, got {n}")
    out: dict[str, dict[str, list[str]]] = {name: {} for name in names}
    for cls in list_classes(root):
        files = class_files(root, cls)
        need = sum(n for n in per_class.values() if n is not None)
        if strict and len(files) < need:
            raise InputError(
                f"class {cls!r} of {root} has {len(files)} images, the splits need {need} ({per_class}); "
                "ask for fewer images per class, or allow shorter last splits (strict=False, --lenient)"
            )
        start = 0
        for name in names:
            n = per_class[name]
            stop = len(files) if n is None else min(start + n, len(files))
            chosen = files[start:stop]
            if not chosen:
                raise InputError(
                    f"class {cls!r} of {root}: no image left for split {name!r} ({len(files)} images); "
                    "ask for fewer images per class in the earlier splits"
                )
            out[name][cls] = chosen
            start = stop
    return out


def write_symlink_tree(source_root: str | Path, files: dict[str, list[str]], dest: str | Path) -> int:
    """Writes ``dest/<class>/<file>`` as symbolic links to ``source_root/<class>/<file>``; returns the count.

    Example:
        >>> write_symlink_tree("/data/pets/train", {"cat": ["cat_001.jpg"]}, "/data/pets-1")  # doctest: +SKIP
        1
    """
    source_root, dest = Path(source_root).resolve(), Path(dest)
    count = 0
    for cls, names in files.items():
        for name in names:
            link = dest / cls / name
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(source_root / cls / name, link)
            count += 1
    return count


def _write_file_list(path: Path, files: dict[str, list[str]], classes: Sequence[str]) -> str:
    label = {c: i for i, c in enumerate(classes)}
    lines = [f"{cls}/{name} {label[cls]}" for cls in sorted(files) for name in files[cls]]
    text = "\n".join(lines) + "\n"
    write_text_atomic(path, text)
    return hashlib.sha256(text.encode()).hexdigest()


def read_file_list(path: str | Path) -> list[tuple[str, int]]:
    """``[(relative path, label), ...]`` from a file list written by :func:`build_splits`.

    Example:
        >>> read_file_list("/data/in20/val.txt")[:1]  # doctest: +SKIP
        [('n01440764/n01440764_10026.JPEG', 0)]
    """
    rows = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            rel, _, label = line.rpartition(" ")
            rows.append((rel, int(label)))
    return rows


def _overlap(a: Path, b: Path) -> bool:
    a, b = a.resolve(), b.resolve()
    return a == b or a in b.parents or b in a.parents


def build_splits(
    source_root: str | Path,
    out_dir: str | Path,
    per_class: dict[str, int | None],
    strict: bool = True,
    force: bool = False,
) -> dict[str, Path]:
    """Builds the splits of :func:`carve` as symlink trees ``out_dir/<split>`` plus file lists
    ``out_dir/<split>.txt``; reuses a finished build with the same settings.

    Example (IN20% and a validation split of the next 52 images per class)::

        build_splits("/data/imagenet/train", "/data/in20", {"train": 260, "val": 52})

    Returns ``{split: folder}``; pass ``folder`` as solo-learn's ``data.train_path``/``data.val_path``.
    """
    check_image_folder(source_root, role="source", min_classes=1)
    source_root, out_dir = Path(source_root).resolve(), Path(out_dir)
    settings = {"source": str(source_root), "per_class": dict(per_class), "strict": strict}
    stamp = out_dir / _STAMP
    paths = {name: out_dir / name for name in per_class}
    for name, path in paths.items():
        if _overlap(path, source_root):
            raise InputError(
                f"split {name!r} would be written to {path}, which overlaps the source {source_root} "
                "(building it deletes that folder first); choose an output folder outside the source"
            )
    previous = read_json(stamp)
    if not force and isinstance(previous, dict) and previous.get("settings") == settings:
        return paths
    splits = carve(source_root, per_class, strict=strict)
    classes = list_classes(source_root)
    if stamp.exists():
        stamp.unlink()
    out_dir.mkdir(parents=True, exist_ok=True)
    record: dict[str, Any] = {"settings": settings, "classes": classes, "splits": {}}
    for name, files in splits.items():
        if paths[name].is_symlink() or paths[name].is_file():
            paths[name].unlink()
        elif paths[name].exists():
            shutil.rmtree(paths[name])
        n = write_symlink_tree(source_root, files, paths[name])
        digest = _write_file_list(out_dir / f"{name}.txt", files, classes)
        record["splits"][name] = {"images": n, "per_class": {c: len(v) for c, v in files.items()}, "sha256": digest}
    write_json(stamp, record)  # last: its presence means the build is complete
    return paths


def _parse_split(item: str) -> tuple[str, int | None]:
    name, sep, count = item.partition("=")
    if not sep or not name or not (count == "all" or (count.isdigit() and int(count) > 0)):
        raise InputError(f"--split {item!r} is not NAME=N (N a positive number of images per class, or 'all')")
    return name, None if count == "all" else int(count)


def main(argv: Sequence[str] | None = None) -> None:
    """``sfrik-benchmark-splits SOURCE OUT --split train=260 --split val=52`` (``python -m sfrik_plugin.data.splits``)."""
    import argparse

    parser = argparse.ArgumentParser(prog="sfrik-benchmark-splits", description=main.__doc__)
    parser.add_argument("source", help="an ImageFolder root (one folder per class)")
    parser.add_argument("out", help="where the symlink trees and file lists go")
    parser.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="NAME=N",
        help="split name and images per class, in order; N='all' takes what remains (last split only)",
    )
    parser.add_argument("--lenient", action="store_true", help="allow classes with too few images")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    try:
        per_class: dict[str, int | None] = {}
        for item in args.split or ["train=260", "val=52"]:
            name, count = _parse_split(item)
            if name in per_class:
                raise InputError(f"--split {name!r} is given twice; give each split once")
            per_class[name] = count
        paths = build_splits(args.source, args.out, per_class, strict=not args.lenient, force=args.force)
    except InputError as error:
        parser.exit(2, f"{parser.prog}: error: {error}\n")
    record = read_json(Path(args.out) / _STAMP) or {}
    for name, path in paths.items():
        print(f"{name}: {path} ({record['splits'][name]['images']} images, list {path}.txt)")


if __name__ == "__main__":
    main()

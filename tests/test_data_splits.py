"""Split construction: per-class subsets and the disjoint validation split, as symlink trees."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sfrik_plugin.data.splits import build_splits, carve, class_files, list_classes, read_file_list


def _folder(root: Path, counts: dict, seed: int = 0) -> Path:
    """An ImageFolder of real tiny PNGs, files created in a shuffled order (sorting must not rely on it)."""
    import random

    import numpy as np

    Image = pytest.importorskip("PIL.Image", reason="Pillow (a torchvision dependency) writes the test images")

    rng = random.Random(seed)
    items = [(c, i) for c, n in counts.items() for i in range(n)]
    rng.shuffle(items)
    for c, i in items:
        (root / c).mkdir(parents=True, exist_ok=True)
        value = (10 * i) % 256
        Image.fromarray(np.full((6, 6, 3), value, dtype="uint8")).save(root / c / f"img_{i:03d}.png")
    (root / "cat").mkdir(exist_ok=True)
    (root / "cat" / "notes.txt").write_text("not an image")  # ignored, like ImageFolder does
    return root


@pytest.fixture
def source(tmp_path):
    return _folder(tmp_path / "src", {"cat": 12, "dog": 9, "eel": 15})


def test_first_images_in_sorted_order_then_the_next_ones(source):
    splits = carve(source, {"train": 5, "val": 3})
    for cls in ("cat", "dog", "eel"):
        files = class_files(source, cls)
        assert files == sorted(files) and "notes.txt" not in files
        assert splits["train"][cls] == files[:5]
        assert splits["val"][cls] == files[5:8]
    assert splits["train"]["cat"][0] == "img_000.png"


def test_splits_are_disjoint_with_exact_per_class_counts(source, tmp_path):
    paths = build_splits(source, tmp_path / "out", {"train": 4, "val": 3, "rest": None})
    record = json.loads((tmp_path / "out" / "splits.json").read_text())
    assert record["splits"]["train"]["per_class"] == {"cat": 4, "dog": 4, "eel": 4}
    assert record["splits"]["val"]["per_class"] == {"cat": 3, "dog": 3, "eel": 3}
    assert record["splits"]["rest"]["per_class"] == {"cat": 5, "dog": 2, "eel": 8}
    seen = {}
    for name, folder in paths.items():
        for link in folder.rglob("*.png"):
            assert link.is_symlink(), "images must be linked, not copied"
            target = os.path.realpath(link)
            assert target.startswith(str(source.resolve()))
            assert target not in seen, f"{target} in both {seen.get(target)} and {name}"
            seen[target] = name
    assert len(seen) == 12 + 9 + 15  # together the splits cover every image exactly once


def test_deterministic_and_reused(source, tmp_path):
    a = build_splits(source, tmp_path / "a", {"train": 4, "val": 2})
    build_splits(source, tmp_path / "b", {"train": 4, "val": 2})
    for name in ("train", "val"):
        assert (tmp_path / "a" / f"{name}.txt").read_text() == (tmp_path / "b" / f"{name}.txt").read_text()
    stamp = (tmp_path / "a" / "splits.json").stat().st_mtime_ns
    assert build_splits(source, tmp_path / "a", {"train": 4, "val": 2}) == a  # finished: reused
    assert (tmp_path / "a" / "splits.json").stat().st_mtime_ns == stamp
    build_splits(source, tmp_path / "a", {"train": 2, "val": 2})  # other settings: rebuilt
    assert sum(1 for _ in (tmp_path / "a" / "train").rglob("*.png")) == 6


def test_file_list_and_labels_match_image_folder(source, tmp_path):
    tv = pytest.importorskip("torchvision")
    paths = build_splits(source, tmp_path / "out", {"train": 4, "val": 3})
    rows = read_file_list(tmp_path / "out" / "val.txt")
    assert len(rows) == 9 and rows[0] == ("cat/img_004.png", 0) and rows[-1] == ("eel/img_006.png", 2)
    ds = tv.datasets.ImageFolder(str(paths["val"]))  # what solo-learn's custom dataset builds
    assert ds.classes == list_classes(source) == ["cat", "dog", "eel"]
    assert [(os.path.relpath(p, paths["val"]), y) for p, y in ds.samples] == rows
    image, label = ds[0]
    assert image.size == (6, 6) and label == 0


def test_too_few_images(source, tmp_path):
    with pytest.raises(ValueError, match="dog"):
        carve(source, {"train": 8, "val": 2})
    lenient = carve(source, {"train": 8, "val": 2}, strict=False)
    assert len(lenient["val"]["dog"]) == 1 and len(lenient["val"]["cat"]) == 2
    with pytest.raises(ValueError, match="last split"):
        carve(source, {"train": None, "val": 2})


def test_command_line_builds_the_splits(source, tmp_path, capsys):
    from sfrik_plugin.data.splits import main

    main([str(source), str(tmp_path / "out"), "--split", "train=4", "--split", "val=all"])
    out = capsys.readouterr().out
    assert f"train: {tmp_path / 'out' / 'train'} (12 images" in out
    assert f"val: {tmp_path / 'out' / 'val'} ({8 + 5 + 11} images" in out


@pytest.mark.parametrize(
    "args, expected",
    [
        (["{missing}", "{out}"], "error: source {missing} does not exist"),
        (["{src}", "{out}", "--split", "train=x"], "error: --split 'train=x' is not NAME=N"),
        (["{src}", "{out}", "--split", "a=2", "--split", "a=3"], "error: --split 'a' is given twice"),
        (["{src}", "{out}", "--split", "train=10", "--split", "val=2"], "error: class 'dog' of"),
        (["{src}", "{src}/cat"], "overlaps the source"),
    ],
)
def test_command_line_errors_are_one_line_and_exit_2(source, tmp_path, capsys, args, expected):
    from sfrik_plugin.data.splits import main

    names = {"src": source, "out": tmp_path / "out", "missing": tmp_path / "missing"}
    with pytest.raises(SystemExit) as excinfo:
        main([a.format(**names) for a in args])
    assert excinfo.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("sfrik-benchmark-splits: error: ") and err.count("\n") == 1
    assert expected.format(**names) in err
    assert (source / "cat" / "img_000.png").is_file()  # the source is never touched


def test_splits_and_image_folder_share_one_listing():
    from sfrik_plugin.data import image_folder, splits

    assert splits.list_classes is image_folder.list_classes
    assert splits.class_files is image_folder.class_files
    assert splits.IMAGE_EXTENSIONS is image_folder.IMAGE_EXTENSIONS

"""ImageFolder checks and the decode-checking loader: every bad tree gives one clear line."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from sfrik_plugin.console import InputError
from sfrik_plugin.data.image_folder import (
    ImageDecodeError,
    check_image_folder,
    class_files,
    install_checked_loader,
    is_image_file,
    list_classes,
    load_rgb_image,
)

Image = pytest.importorskip("PIL.Image", reason="Pillow (a torchvision dependency) writes the test images")


def _png(path: Path, value: int = 0, size: int = 5) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, dtype=np.uint8)).save(path)
    return path


def _tree(root: Path, counts: dict[str, int]) -> Path:
    for cls, n in counts.items():
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            _png(root / cls / f"{i:03d}.png", value=10 * i)
    return root


def _message(excinfo: pytest.ExceptionInfo) -> str:
    text = str(excinfo.value)
    assert "\n" not in text, f"the message must be one line: {text!r}"
    return text


# check_image_folder -----------------------------------------------------------------------------


def test_a_good_tree_passes_and_reports_its_classes(tmp_path):
    root = _tree(tmp_path / "train", {"dog": 2, "cat": 1})
    (root / "cat" / "notes.txt").write_text("ignored, as ImageFolder ignores it")
    info = check_image_folder(root)
    assert info.classes == ("cat", "dog") and info.path == root


def test_missing_path(tmp_path):
    with pytest.raises(InputError) as excinfo:
        check_image_folder(tmp_path / "nowhere", role="data.val_path")
    text = _message(excinfo)
    assert text.startswith("data.val_path ") and "nowhere does not exist" in text


def test_a_file_instead_of_a_folder(tmp_path):
    path = _png(tmp_path / "one.png")
    with pytest.raises(InputError, match="is a file, not a folder") as excinfo:
        check_image_folder(path)
    assert _message(excinfo).startswith("data.train_path ")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"empty is empty; put the images in it") as excinfo:
        check_image_folder(tmp_path / "empty")
    _message(excinfo)


def test_no_image_files_and_no_class_folders(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "readme.txt").write_text("x")
    with pytest.raises(InputError, match=r"holds no image files \(only 'readme.txt'\) and no class sub-folders"):
        check_image_folder(tmp_path / "docs")


def test_images_but_no_class_folders(tmp_path):
    for i in range(3):
        _png(tmp_path / "flat" / f"{i}.png")
    with pytest.raises(InputError, match="holds 3 image file.* and no class sub-folders; labelled data needs one"):
        check_image_folder(tmp_path / "flat")
    assert check_image_folder(tmp_path / "flat", labelled=False).classes == ()  # fine when unlabelled


def test_one_class_only(tmp_path):
    root = _tree(tmp_path / "one", {"cat": 2})
    with pytest.raises(InputError) as excinfo:
        check_image_folder(root)
    assert "has only 1 class ('cat'); a classifier needs at least 2 classes" in _message(excinfo)
    assert check_image_folder(root, min_classes=1).classes == ("cat",)


def test_fewer_classes_than_asked(tmp_path):
    root = _tree(tmp_path / "two", {"a": 1, "b": 1})
    with pytest.raises(InputError, match=r"has 2 classes \('a', 'b'\); at least 3 are needed"):
        check_image_folder(root, min_classes=3)


def test_class_folders_without_images_are_named(tmp_path):
    root = _tree(tmp_path / "t", {"cat": 2, "dog": 0, "eel": 0})
    (root / "eel" / "notes.txt").write_text("not an image")
    with pytest.raises(InputError) as excinfo:
        check_image_folder(root)
    assert "class folder(s) without image files: 'dog', 'eel'" in _message(excinfo)


def test_class_folders_none_of_which_has_images(tmp_path):
    root = _tree(tmp_path / "t", {"cat": 0, "dog": 0})
    with pytest.raises(InputError, match=r"has 2 class folder\(s\) \('cat', 'dog'\) but no image files in them"):
        check_image_folder(root)


def test_many_offending_names_are_shortened(tmp_path):
    root = _tree(tmp_path / "t", {"ok": 1, **{f"c{i}": 0 for i in range(8)}})
    with pytest.raises(InputError, match=r"'c0', 'c1', 'c2', 'c3', 'c4' and 3 more"):
        check_image_folder(root)


def test_images_in_nested_folders_count(tmp_path):
    root = tmp_path / "t"
    _png(root / "cat" / "2024" / "a.png")
    _png(root / "dog" / "b.PNG")
    assert check_image_folder(root).classes == ("cat", "dog")
    assert class_files(root, "cat") == [os.path.join("2024", "a.png")]


def test_unlabelled_needs_images_at_the_top(tmp_path):
    root = _tree(tmp_path / "t", {"cat": 1, "dog": 1})
    with pytest.raises(InputError) as excinfo:
        check_image_folder(root, role="data.train_path", labelled=False)
    text = _message(excinfo)
    assert "holds no image files at its top level (it has sub-folders 'cat', 'dog'" in text
    assert "data.no_labels=false" in text


def test_unlabelled_rejects_entries_that_are_not_images(tmp_path):
    _png(tmp_path / "t" / "a.png")
    (tmp_path / "t" / "notes.txt").write_text("x")
    (tmp_path / "t" / "sub").mkdir()
    with pytest.raises(InputError, match=r"entries that are not images: 'notes.txt', 'sub/'"):
        check_image_folder(tmp_path / "t", labelled=False)


def test_listing_follows_torchvision(tmp_path):
    tv = pytest.importorskip("torchvision", reason="torchvision is what the listing must agree with")
    root = _tree(tmp_path / "t", {"b": 2, "a": 3, "c": 1})
    (root / "a" / "x.TXT").write_text("not an image")
    ds = tv.datasets.ImageFolder(str(root))
    assert ds.classes == list_classes(root)
    listed = [os.path.join(cls, f) for cls in list_classes(root) for f in class_files(root, cls)]
    assert [os.path.relpath(p, root) for p, _ in ds.samples] == listed
    assert is_image_file("X.JpEg") and not is_image_file("x.txt")


def test_list_classes_errors_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="is not a folder"):
        list_classes(tmp_path / "nowhere")
    (tmp_path / "flat").mkdir()
    with pytest.raises(InputError, match="has no class sub-folders"):
        list_classes(tmp_path / "flat")


# load_rgb_image ---------------------------------------------------------------------------------


def test_load_rgb_image_decodes_to_rgb(tmp_path):
    path = tmp_path / "grey.png"
    Image.fromarray(np.full((4, 6), 7, dtype=np.uint8)).save(path)
    image = load_rgb_image(path)
    assert image.mode == "RGB" and image.size == (6, 4) and image.getpixel((0, 0)) == (7, 7, 7)


def test_undecodable_file_names_the_file_and_the_reason(tmp_path):
    path = tmp_path / "cat" / "broken.png"
    path.parent.mkdir()
    path.write_bytes(b"this is not a PNG at all")
    with pytest.raises(ImageDecodeError) as excinfo:
        load_rgb_image(path)
    text = _message(excinfo)
    assert f"cannot decode image {path} (UnidentifiedImageError" in text
    assert "delete or replace this file" in text
    assert isinstance(excinfo.value, InputError)


def test_truncated_file_is_reported(tmp_path):
    good = _png(tmp_path / "good.png", value=200, size=64)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:-40])
    with pytest.raises(ImageDecodeError, match=r"cannot decode image .*truncated\.png \("):
        load_rgb_image(truncated)


def test_missing_file_is_reported(tmp_path):
    with pytest.raises(ImageDecodeError, match=r"cannot decode image .*gone\.png \(FileNotFoundError"):
        load_rgb_image(tmp_path / "gone.png")


def test_error_survives_a_dataloader_worker_as_one_line(tmp_path):
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision", reason="the loader is meant for torchvision's ImageFolder")
    root = _tree(tmp_path / "t", {"cat": 1, "dog": 1})
    (root / "dog" / "000.png").write_bytes(b"garbage")
    ds = tv.datasets.ImageFolder(str(root), transform=tv.transforms.PILToTensor())
    assert install_checked_loader(ds) == 1 and ds.loader is load_rgb_image
    loader = torch.utils.data.DataLoader(ds, batch_size=2, num_workers=1)
    with pytest.raises(ImageDecodeError) as excinfo:
        next(iter(loader))
    text = _message(excinfo)
    assert text.startswith("cannot decode image ") and str(root / "dog" / "000.png") in text
    assert "DataLoader worker" in excinfo.value.details  # the worker's traceback is kept aside


def test_install_reaches_wrapped_datasets_and_refuses_others(tmp_path):
    torch = pytest.importorskip("torch")
    tv = pytest.importorskip("torchvision", reason="the loader is meant for torchvision's ImageFolder")
    root = _tree(tmp_path / "t", {"cat": 2, "dog": 2})
    a, b = tv.datasets.ImageFolder(str(root)), tv.datasets.ImageFolder(str(root))
    wrapped = torch.utils.data.ConcatDataset([torch.utils.data.Subset(a, [0, 1]), b])
    assert install_checked_loader(wrapped) == 2
    assert a.loader is load_rgb_image and b.loader is load_rgb_image
    with pytest.raises(TypeError, match="TensorDataset has no `loader` attribute"):
        install_checked_loader(torch.utils.data.TensorDataset(torch.zeros(2)))

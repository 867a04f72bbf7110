"""DIGITS' folder method (sorted classes, `_` as space, recursive walk, extensions, per-class
split, minimum per class) and text-file method (regex, root)."""
from __future__ import annotations

import logging
import os

import numpy as np
import pytest
from PIL import Image

from lmdb_builder.errors import BuilderError, NotEnoughImagesError
from lmdb_builder.folders import (find_classes, labels_text, parse_list_file, plan_folder,
                                  plan_list, read_labels)


def _png(path, value=0, size=(5, 3)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full(size[::-1], value, np.uint8)).save(path)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "train"
    for i in range(6):
        _png(root / "snow_leopard" / f"{i}.png", i)
    _png(root / "snow_leopard" / "deeper" / "more" / "x.PNG")
    (root / "snow_leopard" / "notes.txt").write_text("not an image")
    for i in range(4):
        _png(root / "cat" / f"c{i}.jpg".replace(".jpg", ".png"))
    _png(root / "ant" / "only.png")                       # one image: not enough
    (root / "README").write_text("a file, not a class")
    return root


def test_find_classes_sorted_renamed_recursive(tree):
    classes = find_classes(tree)
    assert [name for name, _ in classes] == ["ant", "cat", "snow leopard"]
    leopard = dict(classes)["snow leopard"]
    assert len(leopard) == 7                               # nested x.PNG counted, notes.txt not
    assert all(os.path.isabs(e.name) for e in leopard)
    assert [e.name for e in leopard] == sorted(e.name for e in leopard)


def test_plan_folder_drops_small_classes_and_relabels(tree, caplog):
    with caplog.at_level(logging.WARNING):
        plan = plan_folder(tree, seed=3)
    assert plan.labels == ["cat", "snow leopard"]
    assert "Not enough images" in caplog.text and "'ant'" in caplog.text
    # cat 4 -> 3 train + 1 val; snow leopard 7 -> round2(5.25) = 5 train + 2 val
    assert len(plan.splits["train"]) == 8 and len(plan.splits["val"]) == 3
    assert {e.label for e in plan.splits["train"]} == {0, 1}
    assert plan_folder(tree, seed=3).splits == plan.splits
    assert plan_folder(tree, seed=4).splits != plan.splits


def test_separate_val_and_test_folders(tree, tmp_path):
    val = tmp_path / "val"
    _png(val / "cat" / "v.png")
    _png(val / "cat" / "w.png")
    _png(val / "snow_leopard" / "v.png")
    _png(val / "snow_leopard" / "w.png")
    _png(val / "zebra" / "z.png")
    _png(val / "zebra" / "y.png")
    plan = plan_folder(tree, val_dir=val, test_dir=val)
    assert len(plan.splits["train"]) == 11                 # no percentage taken from train
    assert sorted(e.label for e in plan.splits["val"]) == [0, 0, 1, 1]
    assert len(plan.splits["test"]) == 4
    assert "val:zebra" in plan.skipped_classes
    with pytest.raises(ValueError, match="not both"):
        plan_folder(tree, val_dir=val, pct_val=10)


def test_folder_errors(tmp_path):
    with pytest.raises(BuilderError, match="does not exist"):
        find_classes(tmp_path / "nope")
    _png(tmp_path / "one" / "a" / "x.png")
    with pytest.raises(BuilderError, match="at least two subdirectories"):
        find_classes(tmp_path / "one")
    _png(tmp_path / "one" / "b" / "x.png")
    with pytest.raises(NotEnoughImagesError, match="two valid categories"):
        plan_folder(tmp_path / "one")


def test_symlink_loops_are_walked_once(tmp_path):
    _png(tmp_path / "t" / "a" / "x.png")
    _png(tmp_path / "t" / "b" / "y.png")
    os.symlink(tmp_path / "t" / "a", tmp_path / "t" / "a" / "loop")
    assert len(dict(find_classes(tmp_path / "t"))["a"]) == 1


def test_list_file_regex_root_and_bad_lines(tmp_path, caplog):
    listing = tmp_path / "train.txt"
    listing.write_text("a b/c d.png 1\n\n/abs/x.jpg   0  \nno label here\nrel.png 2\n")
    with caplog.at_level(logging.WARNING):
        entries = parse_list_file(listing, root=tmp_path / "imgs")
    assert [(e.name, e.label) for e in entries] == [
        (str(tmp_path / "imgs" / "a b/c d.png"), 1), ("/abs/x.jpg", 0), (str(tmp_path / "imgs" / "rel.png"), 2)]
    assert f"{listing}:4" in caplog.text
    with pytest.raises(BuilderError, match=r"train.txt:5: label 2 is out of range"):
        parse_list_file(listing, num_labels=2)


def test_labels_file_and_plan_list(tmp_path):
    (tmp_path / "labels.txt").write_text("cat\n\n dog \n")
    assert read_labels(tmp_path / "labels.txt") == ["cat", "dog"]
    assert labels_text(["cat", "dog"]) == "cat\ndog\n"
    (tmp_path / "t.txt").write_text("x.png 0\ny.png 1\n")
    (tmp_path / "v.txt").write_text("z.png 1\n")
    plan = plan_list(tmp_path / "t.txt", tmp_path / "labels.txt", val_list=tmp_path / "v.txt", root=tmp_path)
    assert plan.labels == ["cat", "dog"] and len(plan.splits["train"]) == 2 and len(plan.splits["val"]) == 1
    (tmp_path / "empty.txt").write_text("\n")
    with pytest.raises(BuilderError, match="no labels"):
        read_labels(tmp_path / "empty.txt")
    with pytest.raises(BuilderError, match="no valid lines"):
        parse_list_file(tmp_path / "empty.txt")

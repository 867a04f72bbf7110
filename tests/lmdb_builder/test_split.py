"""DIGITS' per-class three-way split with Python 2 rounding."""
from __future__ import annotations

import logging
import random

import pytest

from lmdb_builder.split import NOT_ENOUGH, round_half_away, split_classes, three_way_split_indices

MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.mark.parametrize("x, expected", [(0.5, 1), (1.5, 2), (2.5, 3), (5056.5, 5057), (4442.25, 4442),
                                         (4065.75, 4066), (-2.5, -3), (0.49999999999999994, 0)])
def test_round_half_away_is_python2_round(x, expected):
    assert round_half_away(x) == expected
    assert round(2.5) == 2  # Python 3 would have split 6742 into 5056 + 1686


@pytest.mark.parametrize("size, val, test, expected", [
    (6742, 25, 0, (5057, 6742)),      # 5056.5 rounds up: train 5057, val 1685
    (5923, 25, 0, (4442, 5923)),
    (10, 25, 0, (8, 10)),             # 7.5 -> 8 train, 2.5 -> 3 val would overflow: b = n - a = 2
    (2, 25, 0, (1, 2)),               # 1.5 -> 2 train leaves no val: one moves over
    (3, 10, 10, (1, 2)),              # train 2.4 -> 2, val 0.3 -> 0 -> 1 taken from train, test gets the rest
    (1, 50, 0, (1, 1)),               # one image: train only (a == n, no val possible)
    (7, 0, 0, (7, 7)),
    (7, 100, 0, (0, 7)),
    (7, 0, 100, (0, 0)),
    (4, 25, 25, (2, 3)),
    (5, 20, 20, (3, 4)),
    (3, 0, 50, (2, 2)),               # train 1.5 -> 2, test 1
])
def test_three_way_split_indices(size, val, test, expected):
    a, ab = three_way_split_indices(size, val, test)
    assert (a, ab) == expected
    assert 0 <= a <= ab <= size


def test_three_way_split_rejects_bad_percentages():
    with pytest.raises(ValueError):
        three_way_split_indices(10, 60, 50)


def test_mnist_counts_give_the_seed_jobs_45002_14998():
    classes = [(str(d), list(range(n))) for d, n in enumerate(MNIST_TRAIN_COUNTS)]
    out = split_classes(classes, 25, 0, random.Random(1))
    assert (len(out.train), len(out.val), len(out.test)) == (45002, 14998, 0)
    assert out.counts["1"] == {"train": 5057, "val": 1685, "test": 0}


def test_split_is_per_class_seeded_and_labelled():
    classes = [("cat", [f"c{i}" for i in range(9)]), ("dog", [f"d{i}" for i in range(5)])]
    one = split_classes(classes, 25, 0, random.Random(7))
    two = split_classes(classes, 25, 0, random.Random(7))
    other = split_classes(classes, 25, 0, random.Random(8))
    assert one.train == two.train and one.val == two.val
    assert one.train != other.train
    assert {x for x, l in one.train + one.val if l == 0} == {f"c{i}" for i in range(9)}
    assert sum(1 for _, l in one.train if l == 0) == 7 and sum(1 for _, l in one.val if l == 1) == 1
    # class by class, as parse_folder writes train.txt
    assert [l for _, l in one.train] == sorted(l for _, l in one.train)


def test_not_enough_images_drops_the_label_and_shifts_later_classes(caplog):
    classes = [("a", ["a0", "a1", "a2"]), ("b", ["b0"]), ("c", ["c0", "c1", "c2", "c3"])]
    with caplog.at_level(logging.WARNING):
        out = split_classes(classes, 25, 0, random.Random(0))
    assert out.labels == ["a", "c"]
    assert out.skipped_classes == ["b"]
    assert {l for _, l in out.train + out.val if _.startswith("c")} == {1}
    assert NOT_ENOUGH in caplog.text and "'b'" in caplog.text


def test_min_per_class_and_max_per_class():
    classes = [("a", list("abcdef")), ("b", list("ghi"))]
    out = split_classes(classes, 0, 0, random.Random(0), min_per_class=4)
    assert out.labels == ["a"]
    capped = split_classes(classes, 0, 0, random.Random(0), max_per_class=2)
    assert sorted(x for x, _ in capped.train) == ["a", "b", "g", "h"]   # first N before the shuffle


def test_existing_labels_are_looked_up_by_name(caplog):
    classes = [("dog", ["d0", "d1"]), ("fish", ["f0", "f1"])]
    out = split_classes(classes, 100, 0, random.Random(0), labels=["cat", "dog"])
    assert out.labels == ["cat", "dog"]
    assert sorted(out.val) == [("d0", 1), ("d1", 1)]
    assert out.skipped_classes == ["fish"]

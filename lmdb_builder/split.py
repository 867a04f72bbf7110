"""DIGITS' per-class split (`digits/tools/parse_folder.py`), with Python 2 rounding.

For each class (in label order) the file list is shuffled, then cut by
`three_way_split_indices(n, pct_val, pct_test)`:

    pct_train = 100 - pct_val - pct_test
    a = round2(n * pct_train / 100)          # round2: Python 2 round, half away from zero
    a = max(a, 1) if pct_train else a
    b = round2(n * pct_val / 100);  if a + b > n: b = n - a
    if pct_val and b == 0: take one image from train (a > 1) or from the rest (a != n)
    c = n - a - b; if pct_test and c == 0: take one from val (b > 1) or from train (a > 1)
    train = items[:a], val = items[a:a+b], test = items[a+b:]

MNIST (25 % val): 5923 -> 4442 + 1481, 6742 -> 5057 + 1685 (5056.5 rounds up), ... = 45,002
train and 14,998 val, the counts of every DIGITS MNIST job.

A class with fewer images than `min_per_class` (DIGITS' default 2) or fewer than the number of
requested splits is skipped with DIGITS' warning "Not enough images"; when the labels are being
created its label is removed, so later classes move down one index. (With an existing labels
file DIGITS pops the file's *last* label, a bug; here the class is only skipped.)
`max_per_class` keeps the first N files (DIGITS stops its walk there), before the shuffle.

DIGITS shuffles with the unseeded global `random`; here one `random.Random` stream (seeded) is
used class after class, on the files sorted by name, so a seed gives one split.
"""
from __future__ import annotations

import logging
import random
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Generic, Sequence, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")

NOT_ENOUGH = "Not enough images for this category"


def round_half_away(x: float) -> int:
    """Python 2's `round(x)`: the exact double value, halves away from zero (2.5 -> 3, -2.5 -> -3)."""
    return int(Decimal(x).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def three_way_split_indices(size: int, pct_val: float, pct_test: float) -> tuple[int, int]:
    """(a, a + b): train is items[:a], val items[a:a+b], test the rest (DIGITS' formula above)."""
    if not (0 <= pct_val <= 100 and 0 <= pct_test <= 100 and pct_val + pct_test <= 100):
        raise ValueError(f"validation {pct_val}% and test {pct_test}% must each be 0-100 and add "
                         "up to at most 100")
    pct_train = 100 - (pct_val + pct_test)
    if pct_train >= 100:
        return size, size
    if pct_val >= 100:
        return 0, size
    if pct_test >= 100:
        return 0, 0
    a = round_half_away(float(size) * pct_train / 100)
    if pct_train and not a:
        a = 1
    b = round_half_away(float(size) * pct_val / 100)
    if a + b > size:
        b = size - a
    if pct_val and not b:
        if a > 1:
            a, b = a - 1, 1
        elif a != size:
            b = 1
    c = size - (a + b)
    if pct_test and not c:
        if b > 1:
            b -= 1
        elif a > 1:
            a -= 1
    return a, a + b


def requested_splits(pct_val: float, pct_test: float) -> int:
    """How many of train/val/test get a non-zero share."""
    return sum(1 for pct in (100 - pct_val - pct_test, pct_val, pct_test) if pct > 0)


@dataclass
class ClassSplit(Generic[T]):
    """The outcome for one split run: kept labels and, per split, (item, label index) pairs."""
    labels: list[str]
    train: list[tuple[T, int]] = field(default_factory=list)
    val: list[tuple[T, int]] = field(default_factory=list)
    test: list[tuple[T, int]] = field(default_factory=list)
    skipped_classes: list[str] = field(default_factory=list)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)   # label -> split -> n

    def split(self, name: str) -> list[tuple[T, int]]:
        return {"train": self.train, "val": self.val, "test": self.test}[name]


def split_classes(classes: Sequence[tuple[str, Sequence[T]]], pct_val: float, pct_test: float,
                  rng: random.Random, min_per_class: int = 2, max_per_class: int | None = None,
                  labels: Sequence[str] | None = None) -> ClassSplit[T]:
    """Shuffle and split each class as DIGITS' parse_folder does.

    `classes`: (label name, items sorted by file name) in the order the folders sort.
    `labels`: an existing label list (a separate val/test folder): classes are looked up by
    name instead of creating labels, and unknown names are skipped with a warning.
    """
    out: ClassSplit[T] = ClassSplit(labels=list(labels) if labels is not None else [])
    need = max(1, min_per_class, requested_splits(pct_val, pct_test))
    for name, items in classes:
        if labels is not None:
            if name not in out.labels:
                log.warning("category %r is not in the labels file; skipped", name)
                out.skipped_classes.append(name)
                continue
            index = out.labels.index(name)
        else:
            out.labels.append(name)
            index = len(out.labels) - 1
        items = list(items)
        if max_per_class and len(items) > max_per_class:
            items = items[:max_per_class]       # DIGITS stops its walk at the limit, before shuffling
        if len(items) < need:
            log.warning("%s: %r has %d image(s), needs %d", NOT_ENOUGH, name, len(items), need)
            out.skipped_classes.append(name)
            if labels is None:
                out.labels.pop()
            continue
        rng.shuffle(items)
        a, ab = three_way_split_indices(len(items), pct_val, pct_test)
        out.train += [(item, index) for item in items[:a]]
        out.val += [(item, index) for item in items[a:ab]]
        out.test += [(item, index) for item in items[ab:]]
        out.counts[name] = {"train": a, "val": ab - a, "test": len(items) - ab}
    return out

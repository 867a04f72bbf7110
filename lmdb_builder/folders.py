"""DIGITS' two ways of naming images: a folder of class folders, or list files.

Folder method (`digits/tools/parse_folder.py`):
- the subfolders of the folder, **sorted** as strings, are the classes (at least two); a class is
  named by its folder name with `_` replaced by a space, its label index is its position among
  the classes kept (a class dropped as "Not enough images" moves the later ones down);
- images are found by a recursive `os.walk(followlinks=True)`, so subfolders are flattened;
  only names ending (any case) in .png .jpg .jpeg .bmp .ppm .pgm count, other files are ignored;
- each class is shuffled and split per class (split.py); a separate val or test folder uses the
  labels of the train folder, looking its classes up by name.
Here the files of a class are sorted by path before the seeded shuffle (DIGITS took os.walk's
order), so a seed gives one split on every file system.

Text-file method: each line `path label`, parsed with DIGITS' regex `(.+)\\s+(\\d+)\\s*$`;
blank lines are skipped, relative paths are joined to `root`; the greedy `(.+)` keeps
the spaces before the label in the path, which DIGITS then failed to open, so they are stripped; labels.txt gives the names (one
per non-blank line, in index order).
"""
from __future__ import annotations

import logging
import os
import re
from pathlib import Path

from .errors import BuilderError, NotEnoughImagesError
from .images import is_image_file
from .plan import DatasetPlan, Entry, split_rng
from .split import ClassSplit, split_classes

log = logging.getLogger(__name__)
LINE = re.compile(r"(.+)\s+(\d+)\s*$")


# ------------------------------------------------------------------ labels

def read_labels(path: str | os.PathLike) -> list[str]:
    """labels.txt: one name per line, blank lines skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BuilderError(f"cannot read the labels file: {exc.strerror or exc}", path) from None
    labels = [line.strip() for line in text.splitlines() if line.strip()]
    if not labels:
        raise BuilderError("the labels file has no labels (one name per line)", path)
    return labels


def labels_text(labels: list[str]) -> str:
    """labels.txt as DIGITS wrote it: one per line, trailing newline."""
    return "\n".join(labels) + "\n"


# ------------------------------------------------------------------ folders

def _walk_images(folder: Path) -> list[str]:
    """Image files under `folder`, recursively, following links (each real folder once)."""
    found, seen = [], set()
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:          # a link back up the tree: DIGITS would loop forever
            dirnames[:] = []
            continue
        seen.add(real)
        found += [os.path.abspath(os.path.join(dirpath, f)) for f in filenames if is_image_file(f)]
    return sorted(found)


def find_classes(folder: str | os.PathLike) -> list[tuple[str, list[Entry]]]:
    """(label name, image entries sorted by path) for each class folder, folders sorted."""
    root = Path(folder)
    if not root.is_dir():
        raise BuilderError("folder does not exist (give a folder with one subfolder per class)", root)
    subdirs = sorted(name for name in os.listdir(root) if (root / name).is_dir())
    if len(subdirs) < 2:
        raise BuilderError(f"folder must contain at least two subdirectories, one per class; "
                           f"found {len(subdirs)}", root)
    classes = []
    for sub in subdirs:
        files = _walk_images(root / sub)
        classes.append((sub.replace("_", " "), [Entry(path, path, -1) for path in files]))
    return classes


def _entries(parsed: ClassSplit[Entry], split: str) -> list[Entry]:
    return [Entry(e.name, e.source, label) for e, label in parsed.split(split)]


def plan_folder(train_dir: str | os.PathLike, val_dir: str | os.PathLike | None = None,
                test_dir: str | os.PathLike | None = None, pct_val: float | None = None,
                pct_test: float | None = None, min_per_class: int = 2,
                max_per_class: int | None = None, seed: int = 0) -> DatasetPlan:
    """DIGITS' folder method: 25 % val by default, 0 % test; a separate val/test folder takes
    the place of its percentage."""
    if val_dir is not None and pct_val:
        raise ValueError("give either a validation folder or a validation percentage, not both")
    if test_dir is not None and pct_test:
        raise ValueError("give either a test folder or a test percentage, not both")
    pct_val = 0 if val_dir is not None else (25 if pct_val is None else pct_val)
    pct_test = 0 if (test_dir is not None or pct_test is None) else pct_test
    parsed = split_classes(find_classes(train_dir), pct_val, pct_test, split_rng(seed, "train"),
                           min_per_class, max_per_class)
    if len(parsed.labels) < 2:
        raise NotEnoughImagesError(f"Did not find two valid categories (each needs at least "
                                   f"{max(min_per_class, 1)} images)", train_dir)
    splits = {name: _entries(parsed, name) for name in ("train", "val", "test")}
    skipped = list(parsed.skipped_classes)
    for name, folder in (("val", val_dir), ("test", test_dir)):
        if folder is None:
            continue
        pcts = (100, 0) if name == "val" else (0, 100)
        other = split_classes(find_classes(folder), *pcts, split_rng(seed, name), min_per_class,
                              max_per_class, labels=parsed.labels)
        splits[name] = _entries(other, name)
        skipped += [f"{name}:{c}" for c in other.skipped_classes]
    return DatasetPlan(
        labels=parsed.labels, splits=splits, method="folder", skipped_classes=skipped,
        source={"train_dir": os.path.abspath(train_dir),
                "val_dir": os.path.abspath(val_dir) if val_dir is not None else None,
                "test_dir": os.path.abspath(test_dir) if test_dir is not None else None,
                "val_percent": pct_val, "test_percent": pct_test,
                "min_per_class": min_per_class, "max_per_class": max_per_class})


# ------------------------------------------------------------------ list files

def parse_list_file(path: str | os.PathLike, root: str | os.PathLike | None = None,
                    num_labels: int | None = None) -> list[Entry]:
    """Entries of a `path label` file; a line that does not parse is skipped with a warning."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise BuilderError(f"cannot read the list file: {exc.strerror or exc}", path) from None
    entries = []
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped:
            continue
        match = LINE.match(stripped)
        if match is None:
            log.warning("%s:%d: not '<path> <label>'; line skipped", path, lineno)
            continue
        image, label = match.group(1).rstrip(), int(match.group(2))
        if root is not None and not os.path.isabs(image):
            image = os.path.join(root, image)
        if num_labels is not None and label >= num_labels:
            raise BuilderError(f"label {label} is out of range: the labels file has {num_labels} "
                               f"labels (0..{num_labels - 1})", f"{path}:{lineno}")
        entries.append(Entry(image, image, label))
    if not entries:
        raise BuilderError("no valid lines (expected '<path> <label>' per line)", path)
    return entries


def plan_list(train_list: str | os.PathLike, labels_file: str | os.PathLike,
              val_list: str | os.PathLike | None = None, test_list: str | os.PathLike | None = None,
              root: str | os.PathLike | None = None) -> DatasetPlan:
    """DIGITS' text-file method: the lists as given, labels from labels.txt."""
    labels = read_labels(labels_file)
    splits = {"train": parse_list_file(train_list, root, len(labels)), "val": [], "test": []}
    for name, path in (("val", val_list), ("test", test_list)):
        if path is not None:
            splits[name] = parse_list_file(path, root, len(labels))
    return DatasetPlan(
        labels=labels, splits=splits, method="list",
        source={"train_list": os.path.abspath(train_list), "labels_file": os.path.abspath(labels_file),
                "val_list": os.path.abspath(val_list) if val_list else None,
                "test_list": os.path.abspath(test_list) if test_list else None,
                "root": os.path.abspath(root) if root else None})

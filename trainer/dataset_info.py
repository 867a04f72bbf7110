"""What a DIGITS dataset folder says about itself: classes, entry counts, image dims, resize mode.

Works on folders DIGITS made and on ours: labels.txt (non-empty lines), the LMDB entry counts of
train_db/val_db, the image dims from mean.binaryproto (C x H x W) or else the first Datum, and
the resize mode from a JSON summary when one is there (DIGITS kept it in status.pickle).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from lmdb_builder import DatumDB
from prototxt import blob_shape, read_blob
from prototxt.errors import PrototxtError


@dataclass(frozen=True)
class DatasetInfo:
    path: Path
    labels: tuple[str, ...]
    n_train: int
    n_val: int
    height: int
    width: int
    channels: int
    resize_mode: str = "squash"

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def mean_file(self) -> Path:
        return self.path / "mean.binaryproto"


def lmdb_entries(path: Path) -> int:
    """Number of records in the LMDB folder `path` (0 if there is none)."""
    if not (path / "data.mdb").is_file():
        return 0
    with DatumDB(path) as db:
        return len(db)


def _resize_mode(folder: Path) -> str:
    for summary in sorted(folder.glob("*.json")):
        try:
            data = json.loads(summary.read_text())
        except (OSError, ValueError):
            continue
        for scope in (data, data.get("settings", {}) if isinstance(data, dict) else {}):
            if isinstance(scope, dict) and isinstance(scope.get("resize_mode"), str):
                return scope["resize_mode"]
    return "squash"


def read_dataset_info(folder: str | Path) -> DatasetInfo:
    """Facts about the dataset job folder `folder` (absolute paths, as DIGITS uses them)."""
    folder = Path(folder).absolute()
    labels_file = folder / "labels.txt"
    if not labels_file.is_file():
        raise PrototxtError("not a dataset folder: labels.txt is missing; build one with "
                            "python -m lmdb_builder", folder)
    labels = tuple(line.strip() for line in labels_file.read_text().splitlines() if line.strip())
    n_train = lmdb_entries(folder / "train_db")
    if n_train == 0:
        raise PrototxtError("the dataset has no training records (train_db missing or empty)", folder)
    if (folder / "mean.binaryproto").is_file():
        channels, height, width = blob_shape(read_blob(folder / "mean.binaryproto"))[-3:]
    else:
        with DatumDB(folder / "train_db") as db:
            datum = db.datum(0)
        channels, height, width = datum.channels, datum.height, datum.width
    return DatasetInfo(folder, labels, n_train, lmdb_entries(folder / "val_db"), height, width,
                       channels, _resize_mode(folder))

"""Typed results passed between the stages: what to build (a DatasetPlan) and how (ImageSettings).

The seeded random streams are named here, so that every source (MNIST arrays, folders, list
files) shuffles and splits the same way for a given seed:

- per-class shuffle of a folder parse: `random.Random(f"{seed}:split:{train|val|test}")`, used
  class after class in label order (DIGITS: the unseeded global `random.shuffle`);
- order of each database: `random.Random(f"{seed}:order:{train_db|val_db|test_db}")` shuffles
  its list, as create_db's `random.shuffle(lines)`;
- the noise of fill/half_crop for the image at position p of database d:
  `numpy.random.default_rng([seed, d, p])` (d = 0 train, 1 val, 2 test), so the pixels do not
  depend on which worker process encoded the image.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from .datum import ENCODINGS
from .images import DEFAULT_MAX_PIXELS, RESIZE_MODES
from .png import DEFAULT_LEVEL as DEFAULT_PNG_LEVEL, LEVELS as PNG_LEVELS

SPLITS = ("train", "val", "test")
DB_IDS = {"train": 0, "val": 1, "test": 2}


def split_rng(seed: int, split: str) -> random.Random:
    """The stream that shuffles each class of one folder parse."""
    return random.Random(f"{seed}:split:{split}")


def order_rng(seed: int, split: str) -> random.Random:
    """The stream that shuffles the order of one database."""
    return random.Random(f"{seed}:order:{split}_db")


@dataclass(frozen=True)
class ImageSettings:
    """How every image is stored: DIGITS' form defaults are 256x256, 3 channels, squash, png.

    `png_level` is the deflate level of png records (png.py: 0 stored, 1 fastest, 9 smallest);
    DIGITS used PIL's default (6, adaptive filters). The decoded pixels are the same at any level.
    """
    height: int = 256
    width: int = 256
    channels: int = 3
    resize_mode: str = "squash"
    encoding: str = "png"
    max_pixels: int = DEFAULT_MAX_PIXELS
    png_level: int = DEFAULT_PNG_LEVEL

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ValueError(f"image size must be positive, got {self.height}x{self.width}")
        if self.channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {self.channels}")
        if self.resize_mode not in RESIZE_MODES:
            raise ValueError(f"resize mode must be one of {', '.join(RESIZE_MODES)}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {', '.join(ENCODINGS)}")
        if self.png_level not in PNG_LEVELS:
            raise ValueError(f"png_level must be 0-9, got {self.png_level}")


@dataclass(frozen=True)
class Entry:
    """One image: `name` as written to train.txt/val.txt, `source` what the loader reads (a
    file path, or an in-memory uint8 array such as an MNIST digit), and its label index."""
    name: str
    source: Union[str, np.ndarray]
    label: int


@dataclass
class DatasetPlan:
    """Labels and the entries of each split, in DIGITS' list order (class by class)."""
    labels: list[str]
    splits: dict[str, list[Entry]]
    method: str                                    # mnist, folder or list
    source: dict[str, Any] = field(default_factory=dict)   # for the summary
    skipped_classes: list[str] = field(default_factory=list)

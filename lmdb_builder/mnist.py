"""MNIST as DIGITS' downloader left it (`python -m digits.download_data mnist`), without the PNGs.

DIGITS read the four idx files (big-endian: magic 0x00000803 images / 0x00000801 labels, then
one uint32 per dimension, then bytes), **inverted every image (`255 - pixel`: a black digit on
white)** and saved it as an `L` PNG at `train/<label>/<index:05d>.png` (index = position in its
idx file), then built the dataset from that folder with the folder method. Here the arrays go
straight through the same split and encode code: per class, the images in index order (the
sorted file names) are shuffled by the seeded stream and split, exactly as `folder` would do on
those PNGs. train.txt names them `train/<label>/<index:05d>.png`, as DIGITS' folder would hold them.

The files come from `--mnist-dir`, else `$REDIGITS_MNIST_DIR`, else a cache folder
(`$XDG_CACHE_HOME/redigits/mnist`), which is filled from public mirrors with md5 checks.
"""
from __future__ import annotations

import gzip
import hashlib
import logging
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
from prototxt.io import atomic_write

from .errors import BuilderError
from .plan import DatasetPlan, Entry, split_rng
from .split import split_classes

log = logging.getLogger(__name__)

# name -> (md5 of the .gz, md5 of the decompressed file), from the LeCun distribution
FILES = {
    "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", "6bbc9ace898e44ae57da46a324031adb"),
    "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", "a25bea736e30d166cdddb491f175f624"),
    "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", "2646ac647ad5339dbf082846283269ea"),
    "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", "27ae3e4e09519cfbb04c329615203637"),
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
ENV_VAR = "REDIGITS_MNIST_DIR"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "redigits" / "mnist"


def _file_in(folder: Path, name: str) -> Path | None:
    """`name.gz` or `name` (also the original's `train-images.idx3-ubyte` spelling)."""
    dotted = name.replace("-idx", ".idx")
    for candidate in (f"{name}.gz", name, dotted, f"{dotted}.gz"):
        if (folder / candidate).is_file():
            return folder / candidate
    return None


def _missing(folder: Path) -> list[str]:
    return [f"{name}.gz" for name in FILES if _file_in(folder, name) is None]


def _where_message(folder: Path, missing: list[str]) -> str:
    what = "all four MNIST files are missing" if len(missing) == len(FILES) else \
        f"MNIST files missing: {', '.join(missing)}"
    return (f"{what}; put {', '.join(n + '.gz' for n in FILES)} in {folder}, or point "
            f"--mnist-dir or ${ENV_VAR} at a folder that has them")


def download_mnist(dest: Path, mirrors: tuple[str, ...] = MIRRORS,
                   opener: Callable[..., object] = urllib.request.urlopen,
                   timeout: float = 30.0) -> Path:
    """Fetch the missing .gz files into `dest`, each checked against its md5; atomic per file."""
    for name, (md5_gz, _) in FILES.items():
        if _file_in(dest, name) is not None:
            continue
        errors = []
        for mirror in mirrors:
            url = f"{mirror}{name}.gz"
            try:
                with opener(url, timeout=timeout) as response:   # type: ignore[attr-defined]
                    data = response.read()
            except Exception as exc:
                errors.append(f"{url}: {exc}")
                continue
            got = hashlib.md5(data).hexdigest()
            if got != md5_gz:
                errors.append(f"{url}: md5 {got}, expected {md5_gz}")
                continue
            atomic_write(dest / f"{name}.gz", data)
            log.info("downloaded %s", url)
            break
        else:
            raise BuilderError(f"could not download {name}.gz ({'; '.join(errors)}). "
                               + _where_message(dest, _missing(dest)), dest)
    return dest


def find_mnist_dir(mnist_dir: str | os.PathLike | None = None, download: bool = True) -> Path:
    """The folder holding the four files: --mnist-dir, $REDIGITS_MNIST_DIR, or the cache
    (downloaded into when `download` is true)."""
    given = mnist_dir or os.environ.get(ENV_VAR)
    if given:
        folder = Path(given)
        missing = _missing(folder)
        if missing:
            raise BuilderError(_where_message(folder, missing), folder)
        return folder
    folder = default_cache_dir()
    missing = _missing(folder)
    if not missing:
        return folder
    if not download:
        raise BuilderError(_where_message(folder, missing) + " (downloading is switched off)", folder)
    return download_mnist(folder)


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzipped or not) as a uint8 array of its dimensions."""
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as exc:
        raise BuilderError(f"cannot read the idx file: {exc}", path) from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08 or not 1 <= raw[3] <= 4:
        raise BuilderError(f"not an unsigned-byte idx file (magic {raw[:4].hex()}, expected "
                           "00000801 or 00000803)", path)
    ndim = raw[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    want = header + int(np.prod(dims))
    if len(raw) != want:
        raise BuilderError(f"idx file holds {len(raw)} bytes; its header {dims} needs {want} "
                           "(truncated?)", path)
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


@dataclass
class Mnist:
    """The four arrays; images are uint8 Nx28x28, inverted as DIGITS saved them unless told not."""
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    folder: Path
    inverted: bool


def load_mnist(folder: str | os.PathLike, invert: bool = True, limit: int | None = None) -> Mnist:
    """Read the four files from `folder`; `limit` keeps the first N of each (quick trials)."""
    folder = Path(folder)
    arrays = {}
    for name in FILES:
        path = _file_in(folder, name)
        if path is None:
            raise BuilderError(_where_message(folder, _missing(folder)), folder)
        arrays[name] = read_idx(path)[:limit]
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images, labels = arrays[f"{prefix}-images-idx3-ubyte"], arrays[f"{prefix}-labels-idx1-ubyte"]
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise BuilderError(f"MNIST {split}: {images.shape} images do not match {labels.shape} "
                               "labels", folder)
        if labels.size and labels.max() > 9:
            raise BuilderError(f"MNIST {split}: label {labels.max()} is not a digit", folder)
    convert = (lambda a: 255 - a) if invert else (lambda a: a)
    return Mnist(convert(arrays["train-images-idx3-ubyte"]), arrays["train-labels-idx1-ubyte"],
                 convert(arrays["t10k-images-idx3-ubyte"]), arrays["t10k-labels-idx1-ubyte"],
                 folder, invert)


def mnist_classes(images: np.ndarray, labels: np.ndarray, split: str) -> list[tuple[str, list[Entry]]]:
    """What DIGITS' folder parse sees in `<dir>/<split>/`: class folders 0..9 (sorted), each
    with `<index:05d>.png` files in index order. The Entry label is filled in by the split."""
    classes = []
    for digit in range(10):
        indices = np.flatnonzero(labels == digit)
        if len(indices) == 0:
            continue
        classes.append((str(digit), [Entry(f"{split}/{digit}/{i:05d}.png", images[i], -1)
                                     for i in indices]))
    return classes


def plan_mnist(mnist: Mnist, pct_val: float = 25, pct_test: float = 0, test_as_val: bool = False,
               seed: int = 0, min_per_class: int = 2) -> DatasetPlan:
    """DIGITS' MNIST dataset: train/ split per class (25 % val by default), or with
    `test_as_val` the test/ folder as the separate validation folder (60,000 / 10,000)."""
    train_classes = mnist_classes(mnist.train_images, mnist.train_labels, "train")
    if test_as_val:
        pct_val = 0
    parsed = split_classes(train_classes, pct_val, pct_test, split_rng(seed, "train"), min_per_class)
    splits = {"train": parsed.train, "val": parsed.val, "test": parsed.test}
    skipped = list(parsed.skipped_classes)
    if test_as_val:
        val = split_classes(mnist_classes(mnist.test_images, mnist.test_labels, "test"), 100, 0,
                            split_rng(seed, "val"), min_per_class, labels=parsed.labels)
        splits["val"] = val.val
        skipped += val.skipped_classes
    return DatasetPlan(
        labels=parsed.labels,
        splits={name: [Entry(e.name, e.source, label) for e, label in items]
                for name, items in splits.items()},
        method="mnist",
        source={"mnist_dir": str(mnist.folder), "inverted": mnist.inverted,
                "val_percent": pct_val, "test_percent": pct_test, "test_as_val": test_as_val,
                "train_images": int(len(mnist.train_images))},
        skipped_classes=skipped)

"""Looking into Datum LMDBs: `inspect` (counts, shapes, encodings, labels, a picture of samples)
and `verify` (every record decodes, its header agrees with its image, the mean fits the data).

Both read through a child process (reader.IsolatedItems) after the cheap file check
(reader.check_data_file): a damaged database, which can kill the process that maps it, becomes a
report of where reading stopped and which records are readable.

A PATH is either one database folder (holding data.mdb) or a dataset folder holding
train_db/, val_db/, test_db/ (then labels.txt names the labels and mean.binaryproto is checked).
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .datum import datum_encoding, datum_to_array, parse_datum
from .errors import BuilderError
from .folders import read_labels
from .mean import read_mean
from .reader import IsolatedItems, check_data_file

DIGITS_KEY = re.compile(rb"\d{8}_\d+")
CONVERT_IMAGESET_KEY = re.compile(rb"\d{8}_.+")
DB_NAMES = ("train_db", "val_db", "test_db")


def find_dbs(path: str | Path) -> list[Path]:
    """The database folders at `path`: itself, or the *_db folders of a dataset folder."""
    path = Path(path)
    if (path / "data.mdb").is_file() or path.is_file():
        return [path]
    dbs = [path / name for name in DB_NAMES if (path / name / "data.mdb").is_file()]
    if not dbs:
        raise BuilderError("neither an LMDB (data.mdb) nor a dataset folder with train_db/ "
                           "val_db/ test_db/", path)
    return dbs


def dataset_labels(db: Path) -> list[str] | None:
    """labels.txt beside the database (a DIGITS dataset folder), if there is one."""
    labels = db.parent / "labels.txt"
    return read_labels(labels) if labels.is_file() else None


def key_style(key: bytes) -> str:
    if DIGITS_KEY.fullmatch(key):
        return "DIGITS %08d_<label>"
    if CONVERT_IMAGESET_KEY.fullmatch(key):
        return "convert_imageset %08d_<file>"
    return "other"


@dataclass
class DbInfo:
    path: Path
    entries: int                                            # records the database holds
    shapes: Counter = field(default_factory=Counter)        # (C, H, W) -> records
    encodings: Counter = field(default_factory=Counter)     # png/jpg/none -> records
    labels: Counter = field(default_factory=Counter)        # label index -> records
    key_styles: Counter = field(default_factory=Counter)
    first_key: str = ""
    last_key: str = ""
    damage: str | None = None                               # why reading stopped early
    read: int = 0                                           # records read


def inspect_db(path: str | Path, samples: int = 64) -> tuple[DbInfo, list[tuple[np.ndarray, int]]]:
    """Counts of one database (headers only) and up to `samples` decoded records, evenly spaced.
    A damaged database gives what was read before the damage, and `damage` says why it stopped."""
    meta = check_data_file(path)
    info = DbInfo(Path(path), meta.entries)
    wanted = set(np.linspace(0, info.entries - 1, min(samples, info.entries)).astype(int).tolist()) \
        if info.entries else set()
    picked: list[tuple[np.ndarray, int]] = []
    items = IsolatedItems(path)
    for position, (key, value) in enumerate(items):
        info.read += 1
        name = key.decode(errors="replace")
        info.first_key = info.first_key or name
        info.last_key = name
        info.key_styles[key_style(key)] += 1
        try:
            datum = parse_datum(value, name)
        except BuilderError:
            info.encodings["unreadable"] += 1
            continue
        info.labels[datum.label] += 1
        encoding = datum_encoding(datum)
        info.encodings[encoding] += 1
        array = None
        if position in wanted or (datum.encoded and not datum.height):
            try:
                array = datum_to_array(datum, name)
            except BuilderError:
                pass
        if array is not None:
            info.shapes[array.shape] += 1
            if position in wanted:
                picked.append((array, datum.label))
        elif not datum.encoded or datum.height:
            info.shapes[(datum.channels, datum.height, datum.width)] += 1
    info.damage = items.damage
    return info, picked


def sample_grid(samples: list[tuple[np.ndarray, int]], columns: int = 8, gap: int = 2,
                max_side: int = 96) -> Image.Image:
    """An RGB picture of CxHxW BGR/gray samples in rows of `columns` (large ones scaled down)."""
    if not samples:
        raise BuilderError("no samples to draw")
    tiles = []
    for array, _ in samples:
        hwc = array.astype(np.uint8).transpose(1, 2, 0)
        image = Image.fromarray(hwc[:, :, 0]) if hwc.shape[2] == 1 else Image.fromarray(hwc[:, :, ::-1].copy())
        image = image.convert("RGB")
        if max(image.size) > max_side:
            scale = max_side / max(image.size)
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                 Image.BILINEAR)
        tiles.append(image)
    cell_w = max(t.width for t in tiles) + gap
    cell_h = max(t.height for t in tiles) + gap
    columns = min(columns, len(tiles))
    rows = -(-len(tiles) // columns)
    grid = Image.new("RGB", (columns * cell_w + gap, rows * cell_h + gap), (64, 64, 64))
    for i, tile in enumerate(tiles):
        grid.paste(tile, (gap + (i % columns) * cell_w, gap + (i // columns) * cell_h))
    return grid


def describe(info: DbInfo, labels: list[str] | None) -> list[str]:
    """The lines `inspect` prints for one database."""
    def shape(s: tuple[int, int, int]) -> str:
        return "x".join(map(str, s))
    lines = [f"{info.path}: {info.entries} records"]
    if info.damage:
        lines.append(f"  DAMAGED: reading stopped after {info.read} of {info.entries} records"
                     + (f" (last key read {info.last_key})" if info.last_key else "")
                     + f": {info.damage}; the counts below cover the records read; "
                     "`python -m lmdb_builder verify` lists the readable ones")
    if info.shapes:
        lines.append("  shape (CxHxW): " + ", ".join(f"{shape(s)} ({n})" for s, n in info.shapes.most_common()))
    if info.encodings:
        lines.append("  encoding: " + ", ".join(f"{e} ({n})" for e, n in info.encodings.most_common()))
    if info.key_styles:
        lines.append(f"  keys: {info.first_key} .. {info.last_key}; "
                     + ", ".join(f"{k} ({n})" for k, n in info.key_styles.most_common()))
    if info.labels:
        lines.append("  labels:")
        peak = max(info.labels.values())
        for label in sorted(info.labels):
            n = info.labels[label]
            name = f" {labels[label]!r}" if labels and 0 <= label < len(labels) else ""
            bar = "#" * max(1, round(30 * n / peak))
            lines.append(f"    {label:4d}{name:<14} {n:8d} {bar}")
    return lines


@dataclass
class KeyRange:
    """Records `first` .. `last` (keys, in key order), `count` of them."""
    first: str
    last: str
    count: int


@dataclass
class VerifyResult:
    path: Path
    entries: int = 0                                                 # records read
    corrupt: list[tuple[str, str]] = field(default_factory=list)     # (key, reason)
    shapes: Counter = field(default_factory=Counter)
    expected: int = 0                                                # records the database holds
    damage: str | None = None                                        # why reading stopped early
    readable: list[KeyRange] = field(default_factory=list)          # what could be read


def verify_db(path: str | Path) -> VerifyResult:
    """Decode every record; a record that does not parse or decode, or whose header disagrees
    with its image, is reported by key.

    The database is read by a child process. When the walk from the first key stops at damage
    (an LMDB error, or the child killed by SIGBUS/SIGSEGV/abort), a second walk comes back from
    the last key; `readable` gives both stretches and `damage` the reason."""
    result = VerifyResult(Path(path), expected=check_data_file(path).entries)

    def check(key: bytes, value: bytes) -> None:
        result.entries += 1
        name = key.decode(errors="replace")
        try:
            datum = parse_datum(value, name)
            array = datum_to_array(datum, name)
        except BuilderError as exc:
            result.corrupt.append((name, str(exc)))
            return
        header = (datum.channels, datum.height, datum.width)
        if datum.encoded and datum.height and header != array.shape:
            result.corrupt.append((name, f"header says {'x'.join(map(str, header))} but the "
                                         f"image is {'x'.join(map(str, array.shape))}"))
            return
        result.shapes[array.shape] += 1

    forward = IsolatedItems(path)
    first = None
    highest = b""
    for key, value in forward:
        first = first if first is not None else key
        highest = max(highest, key)
        check(key, value)
    if forward.count:
        result.readable.append(KeyRange(first.decode(errors="replace"),
                                        highest.decode(errors="replace"), forward.count))
    if forward.damage is None:
        return result
    result.damage = forward.damage
    # back from the last key to the highest one already read (damage may have left keys out of
    # order, so not simply the last one read)
    backward = IsolatedItems(path, reverse=True, after=highest if forward.count else None)
    last = None
    for key, value in backward:
        last = last if last is not None else key
        check(key, value)
    if backward.count:
        result.readable.append(KeyRange(backward.last_key.decode(errors="replace"),
                                        last.decode(errors="replace"), backward.count))
    return result


def describe_damage(result: VerifyResult) -> list[str]:
    """The lines `verify` prints for a database whose reading stopped at damage."""
    if result.damage is None:
        return []
    read = sum(r.count for r in result.readable)
    lines = [f"  DAMAGED: {result.damage}",
             f"  readable: {read} of {result.expected} records"
             + "".join(f"{';' if i else ':'} {r.first} .. {r.last} ({r.count})"
                       for i, r in enumerate(result.readable))]
    if len(result.readable) == 2:
        lines.append(f"  unreadable: the records after {result.readable[0].last} and before "
                     f"{result.readable[1].first} ({max(0, result.expected - read)} record(s))")
    elif result.readable:
        lines.append(f"  unreadable: the records after {result.readable[0].last} "
                     f"({max(0, result.expected - read)} record(s))")
    else:
        lines.append("  unreadable: every record")
    return lines


def verify_mean(dataset: Path, shape: tuple[int, ...]) -> str | None:
    """A problem with dataset/mean.binaryproto for records of `shape`, or None."""
    path = dataset / "mean.binaryproto"
    if not path.is_file():
        return None
    try:
        mean = read_mean(path)
    except Exception as exc:
        return f"{path}: {exc}"
    if mean.shape != tuple(shape):
        return (f"{path}: the mean is {'x'.join(map(str, mean.shape))} but the records are "
                f"{'x'.join(map(str, shape))}; Caffe needs them equal")
    return None

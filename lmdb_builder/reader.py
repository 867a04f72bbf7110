"""Reading Datum LMDBs for the trainer: what Caffe's Data layer sees.

Caffe's Data layer walks the keys in lexicographic order (DIGITS' `%08d_%d` and
convert_imageset's `%08d_<file>` keys make that the write order) and wraps around to the first
record at the end; each record becomes a uint8 CxHxW **BGR** array (datum.py).

    from lmdb_builder.reader import DatumDB
    with DatumDB("job/train_db") as db:
        image, label = db[17]              # random access by position in key order
        cursor = db.cursor()               # sequential, wraps around like Caffe
        for _ in range(3 * len(db)):
            image, label = next(cursor)

A DatumDB may be handed to worker processes (e.g. a PyTorch DataLoader): the LMDB environment
is opened lazily and again in each process that uses it.
"""
from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType
from typing import Iterator

import lmdb
import numpy as np
from prototxt import caffe_pb2

from .datum import datum_to_array, parse_datum
from .errors import BuilderError


def _open_env(path: Path) -> lmdb.Environment:
    if not path.exists():
        raise BuilderError("no LMDB here; give a database folder such as <dataset>/train_db", path)
    subdir = path.is_dir()
    if subdir and not (path / "data.mdb").is_file():
        raise BuilderError("this folder has no data.mdb, so it is not an LMDB", path)
    try:
        return lmdb.open(str(path), readonly=True, lock=False, readahead=False, subdir=subdir,
                         max_readers=512)
    except lmdb.Error as exc:
        raise BuilderError(f"cannot open the LMDB: {exc}", path) from None


# py-lmdb refuses to open one environment twice in a process, so readers of the same database
# share it: (pid, real path) -> [environment, users]
_SHARED: dict[tuple[int, str], list] = {}


def _acquire(path: Path) -> lmdb.Environment:
    key = (os.getpid(), os.path.realpath(path))
    if key not in _SHARED:
        _SHARED[key] = [_open_env(path), 0]
    _SHARED[key][1] += 1
    return _SHARED[key][0]


def _release(path: Path) -> None:
    key = (os.getpid(), os.path.realpath(path))
    entry = _SHARED.get(key)
    if entry is None:
        return
    entry[1] -= 1
    if entry[1] <= 0:
        entry[0].close()
        del _SHARED[key]


class DatumDB:
    """An LMDB of Caffe Datum: `len`, `db[i]`, `db.get(key)`, iteration, and `cursor()`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._env: lmdb.Environment | None = None
        self._pid = -1
        self._keys: list[bytes] | None = None
        _acquire(self.path)                  # fail early, in the caller's process
        _release(self.path)

    # -- plumbing
    @property
    def env(self) -> lmdb.Environment:
        if self._env is None or self._pid != os.getpid():
            self._env = _acquire(self.path)
            self._pid = os.getpid()
        return self._env

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_env=None, _pid=-1)
        return state

    def close(self) -> None:
        if self._env is not None and self._pid == os.getpid():
            _release(self.path)
        self._env = None

    def __enter__(self) -> "DatumDB":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- access
    def __len__(self) -> int:
        return int(self.env.stat()["entries"])

    @property
    def keys(self) -> list[bytes]:
        """All keys in Caffe's (lexicographic) order; read once, then kept."""
        if self._keys is None:
            with self.env.begin(buffers=False) as txn:
                self._keys = list(txn.cursor().iternext(keys=True, values=False))
        return self._keys

    def raw(self, index: int) -> tuple[bytes, bytes]:
        """(key, serialized Datum) at position `index` (negative counts from the end)."""
        keys = self.keys
        if not -len(keys) <= index < len(keys):
            raise IndexError(f"record {index} out of range: {self.path} has {len(keys)} records")
        key = keys[index]
        with self.env.begin() as txn:
            return key, txn.get(key)

    def datum(self, index: int) -> caffe_pb2.Datum:
        key, value = self.raw(index)
        return parse_datum(value, key.decode(errors="replace"))

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        """(uint8 CxHxW BGR array, label) of the record at position `index`."""
        key, value = self.raw(index)
        name = key.decode(errors="replace")
        datum = parse_datum(value, name)
        return datum_to_array(datum, name), datum.label

    def get(self, key: str | bytes) -> tuple[np.ndarray, int]:
        """(array, label) of the record with this key."""
        key_b = key.encode() if isinstance(key, str) else key
        with self.env.begin() as txn:
            value = txn.get(key_b)
        if value is None:
            raise KeyError(f"{self.path} has no record {key!r}")
        name = key_b.decode(errors="replace")
        datum = parse_datum(value, name)
        return datum_to_array(datum, name), datum.label

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """(key, serialized Datum) once through, in key order."""
        with self.env.begin() as txn:
            yield from txn.cursor().iternext(keys=True, values=True)

    def __iter__(self) -> Iterator[tuple[np.ndarray, int]]:
        """(array, label) once through, in key order (no wrap-around)."""
        for key, value in self.items():
            name = key.decode(errors="replace")
            datum = parse_datum(value, name)
            yield datum_to_array(datum, name), datum.label

    def cursor(self, start: int = 0) -> "Cursor":
        """A sequential reader from position `start` that wraps around like Caffe's DataReader."""
        return Cursor(self, start)


class Cursor:
    """Caffe's sequential read: `next(cursor)` gives (array, label) forever, wrapping at the end.

    `key` is the key of the record returned last, `epoch` how many times it wrapped.
    """

    def __init__(self, db: DatumDB, start: int = 0):
        if len(db) == 0:
            raise BuilderError("the database is empty; there is nothing to read", db.path)
        self.db = db
        self.epoch = 0
        self.key: bytes | None = None
        self._txn = db.env.begin()
        self._cursor = self._txn.cursor()
        if start:
            self._cursor.set_key(db.keys[start % len(db)])
        else:
            self._cursor.first()

    def __iter__(self) -> "Cursor":
        return self

    def __next__(self) -> tuple[np.ndarray, int]:
        key, value = self._cursor.item()
        self.key = bytes(key)
        name = self.key.decode(errors="replace")
        datum = parse_datum(bytes(value), name)
        if not self._cursor.next():
            self._cursor.first()
            self.epoch += 1
        return datum_to_array(datum, name), datum.label

    def close(self) -> None:
        self._txn.abort()

"""Writing an LMDB as DIGITS' `_create_lmdb` / `_write_batch_lmdb` did.

- `lmdb.open(dir, map_size=10 MiB, map_async=True, max_dbs=0)`: DIGITS never passed a map size,
  and py-lmdb's default is 10485760 bytes; the folder holds `data.mdb` and `lock.mdb`.
- One write transaction per batch of `min(100, count)` records; the last, partial batch at the end.
- Key `'%08d_%d' % (running index, label)`, e.g. `00000000_3`; the index counts written records
  from 0, so the keys' lexicographic order (Caffe's read order) is the write order.
- On `MapFullError` the map size doubles and the same batch is written again.

One difference: DIGITS' commits each waited for the disk (py-lmdb's default `sync=True`); here
they do not (`sync=False`), and `close` syncs once. The database is built inside a temporary
folder that is renamed only when complete (build.py), so a commit that reached the disk early
would not make an interrupted build usable anyway; the file is the same.
"""
from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

import lmdb

log = logging.getLogger(__name__)

BATCH_SIZE = 100
INITIAL_MAP_SIZE = 10 * 1024 * 1024


def make_key(index: int, label: int) -> bytes:
    """DIGITS' key: `%08d_%d` of the running index and the label."""
    return b"%08d_%d" % (index, label)


class LmdbWriter:
    """Append (label, serialized Datum) records to a new LMDB, 100 per transaction."""

    def __init__(self, path: str | Path, map_size: int = INITIAL_MAP_SIZE,
                 batch_size: int = BATCH_SIZE):
        self.path = Path(path)
        self.batch_size = batch_size
        self.env = lmdb.open(str(self.path), map_size=map_size, map_async=True, max_dbs=0, sync=False)
        self.count = 0          # records committed
        self.transactions = 0   # committed write transactions
        self.map_growths = 0
        self._batch: list[tuple[int, bytes]] = []

    def put(self, label: int, value: bytes) -> None:
        """Queue one record; a full batch is committed at once."""
        self._batch.append((label, value))
        if len(self._batch) >= self.batch_size:
            self.flush()

    def flush(self) -> None:
        """Commit the queued records in one transaction, growing the map until they fit."""
        if not self._batch:
            return
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    for i, (label, value) in enumerate(self._batch):
                        txn.put(make_key(self.count + i, label), value)
                break
            except lmdb.MapFullError:
                new_size = self.env.info()["map_size"] * 2
                log.debug("LMDB map full; growing it to %d bytes", new_size)
                self.env.set_mapsize(new_size)
                self.map_growths += 1
        self.count += len(self._batch)
        self.transactions += 1
        self._batch = []

    def close(self) -> None:
        """Commit what is queued, sync once and close (the commits did not wait for the disk)."""
        try:
            self.flush()
            self.env.sync(True)
        finally:
            self.env.close()

    def abort(self) -> None:
        """Close without committing what is queued (the build failed)."""
        self._batch = []
        self.env.close()

    def __enter__(self) -> "LmdbWriter":
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

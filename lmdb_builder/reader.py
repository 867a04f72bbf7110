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

Every open first checks data.mdb (`check_data_file`: three small reads, no scan), so a truncated
file or a damaged meta or root page is a BuilderError naming the file, not a SIGBUS. Damage deeper
in the tree can still kill the process that reads that record; `IsolatedItems` reads in a child
process for inspect and verify, which report where reading stopped and what is readable.
"""
from __future__ import annotations

import os
import signal
import struct
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Iterator

import lmdb
import numpy as np
from prototxt import caffe_pb2

from .datum import datum_to_array, parse_datum
from .errors import BuilderError


# ---------------------------------------------------------------- the file, before LMDB maps it
#
# LMDB maps data.mdb and trusts it: a page number past the end of a truncated file is a SIGBUS,
# a damaged root page an assertion abort, both killing the process. `check_data_file` reads what
# LMDB reads first (liblmdb mdb.c: mdb_env_read_header, mdb_env_pick_meta, mdb_page_search) and
# refuses a file that cannot be right, with a reason. Layout (native byte order, pgno_t and
# size_t the pointer size W; W = 8 gives the offsets in brackets):
#
#   page header  pgno W [0], pad u16 [8], flags u16 [10], lower u16 [12], upper u16 [14]  (16)
#   page 0 and page 1 (at byte `psize`) are meta pages (flags & P_META), their header followed by
#   MDB_meta     magic u32 0xBEEFC0DE [16], version u32 = 1 [20], address W [24], mapsize W [32],
#                dbs[2] (free pages, main) [40], [88], last_pg W [136], txnid W [144]
#   MDB_db       pad u32 (psize in dbs[0]) [+0], flags u16 [+4], depth u16 [+6], branch_pages W,
#                leaf_pages W, overflow_pages W, entries W, root W [+40]      (48)
#   LMDB uses the meta with the larger txnid; pages 0..last_pg must lie inside the file.

P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
MDB_MAGIC = 0xBEEFC0DE
MDB_DATA_VERSION = 1
P_INVALID = (1 << (8 * struct.calcsize("P"))) - 1
MAX_DEPTH = 32                      # liblmdb's CURSOR_STACK
MAX_MAP_SIZE = 1 << 48              # beyond any address space a map could have


@dataclass(frozen=True)
class LmdbMeta:
    """The current meta page of a data.mdb: what LMDB will read the database from."""
    page_size: int
    map_size: int
    last_page: int
    txnid: int
    entries: int
    depth: int
    root: int
    file_size: int


def _layout() -> tuple[str, str, str, int]:
    w = "Q" if struct.calcsize("P") == 8 else "I"
    page = f"={w}HHHH"                  # pgno, pad, flags, lower, upper
    meta = f"=II{w}{w}"                 # magic, version, address, mapsize
    db = f"=IHH{w}{w}{w}{w}{w}"         # pad, flags, depth, branch, leaf, overflow, entries, root
    return page, meta, db, struct.calcsize(f"={w}")


def data_file(path: str | os.PathLike) -> Path:
    """data.mdb of a database folder (or the file itself for a single-file LMDB)."""
    path = Path(path)
    return path / "data.mdb" if path.is_dir() else path


def check_data_file(path: str | os.PathLike) -> LmdbMeta:
    """Check a database's data.mdb before LMDB maps it: both meta pages (flag, magic, version,
    page size), the file long enough for the current meta's last page, a plausible map size, and
    the main tree's root page (number, type, bounds, children). Reads three pages, never the
    records; raises BuilderError naming the file and what is wrong."""
    file = data_file(path)
    page_fmt, meta_fmt, db_fmt, w = _layout()
    header = struct.calcsize(page_fmt)
    db_size = struct.calcsize(db_fmt)
    meta_size = struct.calcsize(meta_fmt) + 2 * db_size + 2 * w

    def damaged(reason: str) -> BuilderError:
        return BuilderError(f"damaged LMDB: {reason}; rebuild the dataset (python -m lmdb_builder) "
                            "or copy the database again", file)

    try:
        with open(file, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size < header + meta_size:
                raise damaged(f"the file is {size} bytes, too short for even one meta page")

            def read_meta(offset: int, number: int) -> tuple[int, ...]:
                f.seek(offset)
                raw = f.read(header + meta_size)
                if len(raw) < header + meta_size:
                    raise damaged(f"the file ({size} bytes) ends inside meta page {number}: "
                                  "it was truncated")
                _, _, flags, _, _ = struct.unpack_from(page_fmt, raw)
                magic, version, _, map_size = struct.unpack_from(meta_fmt, raw, header)
                at = header + struct.calcsize(meta_fmt)
                free_db = struct.unpack_from(db_fmt, raw, at)
                main_db = struct.unpack_from(db_fmt, raw, at + db_size)
                last_page, txnid = struct.unpack_from(f"={'Q' if w == 8 else 'I'}"
                                                      f"{'Q' if w == 8 else 'I'}", raw,
                                                      at + 2 * db_size)
                if not flags & P_META:
                    raise damaged(f"page {number} is not a meta page (flags 0x{flags:04x}): "
                                  "zeroed or overwritten")
                if magic != MDB_MAGIC:
                    raise damaged(f"meta page {number} has magic 0x{magic:08X}, not 0x{MDB_MAGIC:08X}")
                if version != MDB_DATA_VERSION:
                    raise damaged(f"meta page {number} has format version {version}, not "
                                  f"{MDB_DATA_VERSION}")
                page_size = free_db[0]
                if page_size < 512 or page_size > 65536 or page_size & (page_size - 1):
                    raise damaged(f"meta page {number} gives a page size of {page_size}")
                return page_size, map_size, last_page, txnid, main_db

            meta0 = read_meta(0, 0)
            page_size = meta0[0]
            meta1 = read_meta(page_size, 1)
            if meta1[0] != page_size:
                raise damaged(f"the meta pages disagree on the page size ({page_size}, {meta1[0]})")
            number, (_, map_size, last_page, txnid, main_db) = \
                (1, meta1) if meta0[3] < meta1[3] else (0, meta0)
            _, _, depth, branch, leaf, overflow, entries, root = main_db
            needed = (last_page + 1) * page_size
            where = f"meta page {number} (transaction {txnid})"
            if last_page < 1 or last_page >= MAX_MAP_SIZE // page_size:
                raise damaged(f"{where} gives {last_page} as the last page")
            if size < needed:
                missing = needed - size
                raise damaged(f"the file is {size} bytes but {where} needs {needed} "
                              f"({last_page + 1} pages of {page_size}): the last {missing} bytes "
                              f"({-(-missing // page_size)} pages) are missing, the file was "
                              "truncated (a copy cut short, a full disk)")
            if not needed <= map_size <= MAX_MAP_SIZE:
                raise damaged(f"{where} gives a map size of {map_size} bytes, which cannot hold "
                              f"its {needed} bytes of pages" if map_size < needed else
                              f"{where} gives an impossible map size of {map_size} bytes")
            if depth == 0:
                if root != P_INVALID or entries:
                    raise damaged(f"{where}: an empty tree with root {root} and {entries} records")
                return LmdbMeta(page_size, map_size, last_page, txnid, 0, 0, root, size)
            if depth > MAX_DEPTH or not 2 <= root <= last_page:
                raise damaged(f"{where}: tree depth {depth}, root page {root} of {last_page}")
            if branch + leaf + overflow > last_page + 1 or entries > size:
                raise damaged(f"{where}: {branch}+{leaf}+{overflow} pages and {entries} records "
                              f"in a file of {last_page + 1} pages")
            f.seek(root * page_size)
            _check_root(f.read(page_size), root, depth, last_page, page_fmt, header, w, damaged)
    except FileNotFoundError:
        raise BuilderError("this folder has no data.mdb, so it is not an LMDB", path) from None
    except IsADirectoryError:
        raise BuilderError("data.mdb is a folder, not an LMDB file", file) from None
    except OSError as exc:
        raise BuilderError(f"cannot read: {exc.strerror}", file) from None
    return LmdbMeta(page_size, map_size, last_page, txnid, entries, depth, root, size)


def _check_root(page: bytes, root: int, depth: int, last_page: int, page_fmt: str, header: int,
                w: int, damaged) -> None:
    """The root page: its own number, branch or leaf as the depth says, node offsets inside it,
    and (a branch) children that exist."""
    pgno, _, flags, lower, upper = struct.unpack_from(page_fmt, page)
    kind = flags & (P_BRANCH | P_LEAF | P_OVERFLOW | P_META)
    expected = P_LEAF if depth == 1 else P_BRANCH
    page_size = len(page)
    if pgno != root or kind != expected:
        raise damaged(f"the root page {root} reads as page {pgno} with flags 0x{flags:04x} "
                      f"(expected a {'leaf' if depth == 1 else 'branch'} page)")
    if not header <= lower <= upper <= page_size or (lower - header) % 2:
        raise damaged(f"the root page {root} has free space bounds {lower}..{upper}")
    count = (lower - header) // 2
    if count < (1 if depth == 1 else 2):
        raise damaged(f"the root page {root} holds {count} nodes")
    node = 8  # MDB_node header: lo, hi, flags, ksize (u16 each)
    for i in range(count):
        (offset,) = struct.unpack_from("=H", page, header + 2 * i)
        if not upper <= offset <= page_size - node:
            raise damaged(f"the root page {root}: node {i} at offset {offset}, outside "
                          f"{upper}..{page_size}")
        lo, hi, nflags, ksize = struct.unpack_from("=HHHH", page, offset)
        if offset + node + ksize > page_size:
            raise damaged(f"the root page {root}: node {i} has a {ksize}-byte key past the page end")
        if depth > 1:
            child = lo | hi << 16 | ((nflags << 32) if w == 8 else 0)
            if not 2 <= child <= last_page:
                raise damaged(f"the root page {root}: node {i} points to page {child} "
                              f"(pages 2..{last_page} exist)")


def _open_env(path: Path) -> lmdb.Environment:
    if not path.exists():
        raise BuilderError("no LMDB here; give a database folder such as <dataset>/train_db", path)
    subdir = path.is_dir()
    if subdir and not (path / "data.mdb").is_file():
        raise BuilderError("this folder has no data.mdb, so it is not an LMDB", path)
    check_data_file(path)
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


# ---------------------------------------------------------------- reading in a child process

SIGNAL_MEANINGS = {
    "SIGBUS": "bus error: a page lies past the end of the file",
    "SIGSEGV": "segmentation fault: a damaged page points outside the map",
    "SIGABRT": "LMDB stopped on a failed internal check (abort)",
}


class IsolatedItems:
    """(key, serialized Datum) of the records in key order (or reversed), read by a child process.

    LMDB trusts its file; a damaged page can kill the reading process (SIGBUS, SIGSEGV, an
    assertion's abort) in the middle of a walk. Here only a child reads, and sends each record
    as soon as it has it, so every record received is known readable and a crash ends the
    iteration instead of the program. After the iteration `damage` says why it ended early (the
    LMDB error, or the signal and LMDB's own message), or is None when every record was read.

        items = IsolatedItems("job/train_db")
        for key, value in items: ...
        if items.damage: ...

    `after`: with `reverse`, stop before reaching this key (the last one a forward walk read).
    """

    def __init__(self, path: str | os.PathLike, reverse: bool = False,
                 after: bytes | None = None):
        self.path = Path(path)
        self.reverse = reverse
        self.after = after
        self.damage: str | None = None
        self.count = 0
        self.last_key: bytes | None = None

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        import multiprocessing
        import tempfile

        from .encode import start_method

        check_data_file(self.path)       # a truncated file or damaged meta: a clear error here
        method = start_method()
        context = multiprocessing.get_context(method)
        receive, send = context.Pipe(duplex=False)
        parent = None if method == "forkserver" else os.getpid()
        with tempfile.NamedTemporaryFile(prefix="lmdb-child-", suffix=".log") as log:
            child = context.Process(target=_read_child, daemon=True,
                                    args=(str(self.path), self.reverse, self.after, send,
                                          log.name, parent))
            child.start()
            send.close()
            error = None
            finished = False
            try:
                while True:
                    try:
                        message = receive.recv()
                    except EOFError:
                        finished = True
                        break
                    if message[0] == "record":
                        self.count += 1
                        self.last_key = message[1]
                        yield message[1], message[2]
                    elif message[0] == "error":
                        error = message[1]
            finally:
                receive.close()
                if not finished:       # the consumer stopped early: the walk is not needed
                    child.kill()
                child.join()
            if child.exitcode and child.exitcode < 0:
                name = signal.Signals(-child.exitcode).name
                said = Path(log.name).read_text(errors="replace").splitlines()
                said = [line.strip() for line in said if "mdb" in line.lower()][-1:]
                self.damage = (f"the reading process died with {name} "
                               f"({SIGNAL_MEANINGS.get(name, 'killed')})"
                               + (f"; LMDB said: {said[0][:300]}" if said else ""))
            elif error is not None:
                self.damage = error
            elif child.exitcode:
                self.damage = f"the reading process exited with status {child.exitcode}"


def _read_child(path: str, reverse: bool, after: bytes | None, send, log: str,
                parent: int | None) -> None:
    """In the child: walk the records and send each; LMDB errors are sent as text."""
    import faulthandler

    from prototxt.processes import die_with_parent

    die_with_parent(parent)
    faulthandler.disable()   # the crash is reported by the parent, not as a Python traceback
    fd = os.open(log, os.O_WRONLY | os.O_APPEND)
    os.dup2(fd, 2)   # LMDB's assertion message goes to stderr: keep it for the report
    try:
        env = lmdb.open(path, readonly=True, lock=False, readahead=False,
                        subdir=os.path.isdir(path), max_readers=512)
        with env.begin(buffers=False) as txn:
            cursor = txn.cursor()
            more = cursor.last() if reverse else cursor.first()
            while more:
                key = cursor.key()
                if after is not None and key <= after:
                    break
                send.send(("record", key, cursor.value()))
                more = cursor.prev() if reverse else cursor.next()
    except (lmdb.Error, BuilderError, OSError) as exc:
        send.send(("error", f"LMDB error: {exc}"))
    finally:
        send.close()

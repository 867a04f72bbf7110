"""Damaged data.mdb files (issue 14, defect 6): truncated, zeroed and bit-flipped databases are
refused by the file check before LMDB maps them (every reader: DatumDB, the trainer, inspect,
verify), and what still crashes LMDB (a damaged leaf deep in the tree) is read by a child process,
so that `verify` reports where reading stopped and which records are readable.

The page layout the tests write into is liblmdb's on 64-bit machines (see reader.py)."""
from __future__ import annotations

import struct
import subprocess
import sys
import time

import lmdb
import numpy as np
import pytest

from lmdb_builder.datum import encode_datum
from lmdb_builder.errors import BuilderError
from lmdb_builder.inspection import inspect_db, verify_db
from lmdb_builder.reader import DatumDB, check_data_file
from lmdb_builder.writer import LmdbWriter

pytestmark = pytest.mark.skipif(struct.calcsize("P") != 8, reason="64-bit page layout")

RECORDS = 120
META = 16          # page header size; the meta follows it
MAIN_DB = META + 8 + 16 + 48   # magic, version, address, mapsize, free db


@pytest.fixture
def db(tmp_path, rng):
    """120 records (28x28 gray png, 40x40 colour raw: some on overflow pages), depth 2."""
    path = tmp_path / "train_db"
    with LmdbWriter(path) as writer:
        for i in range(RECORDS):
            image = rng.integers(0, 256, (28, 28) if i % 3 else (40, 40, 3), dtype=np.uint8)
            writer.put(i % 10, encode_datum(image, i % 10, "png" if i % 3 else "none"))
    return path


def _metas(data: bytes) -> list[dict]:
    page = struct.unpack_from("=I", data, META + 24)[0]  # dbs[0].md_pad = page size
    metas = []
    for number, offset in enumerate((0, page)):
        magic, version, _, mapsize = struct.unpack_from("=IIQQ", data, offset + META)
        _, _, depth, _, _, _, entries, root = struct.unpack_from("=IHHQQQQQ", data, offset + MAIN_DB)
        last, txnid = struct.unpack_from("=QQ", data, offset + MAIN_DB + 48)
        metas.append(dict(number=number, offset=offset, page=page, last=last, txnid=txnid,
                          depth=depth, root=root, entries=entries, mapsize=mapsize))
    return metas


def _current(data: bytes) -> dict:
    m0, m1 = _metas(data)
    return m1 if m0["txnid"] < m1["txnid"] else m0


def _leaf_node(data: bytes, key: bytes) -> int:
    """The byte offset of the node holding `key` (walking the current tree from its root)."""
    meta = _current(data)
    page = meta["page"]
    pgno = meta["root"]
    while True:
        base = pgno * page
        _, _, flags, lower, _ = struct.unpack_from("=QHHHH", data, base)
        nodes = [base + struct.unpack_from("=H", data, base + 16 + 2 * i)[0]
                 for i in range((lower - 16) // 2)]
        if flags & 0x02:  # leaf
            for node in nodes:
                ksize = struct.unpack_from("=H", data, node + 6)[0]
                if data[node + 8:node + 8 + ksize] == key:
                    return node
            raise KeyError(key)
        child = None
        for i, node in enumerate(nodes):  # branch: the last node whose key <= key (node 0: -inf)
            ksize = struct.unpack_from("=H", data, node + 6)[0]
            if i == 0 or data[node + 8:node + 8 + ksize] <= key:
                lo, hi, top = struct.unpack_from("=HHH", data, node)
                child = lo | hi << 16 | top << 32
        pgno = child


def _damage(db, edit) -> None:
    path = db / "data.mdb"
    data = bytearray(path.read_bytes())
    edit(data)
    path.write_bytes(bytes(data))


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lmdb_builder", *args], capture_output=True,
                          text=True, timeout=120)


# ---------------------------------------------------------------- the check before opening

def test_sound_databases_pass_the_check(db, tmp_path, rng):
    meta = check_data_file(db)
    assert meta.entries == RECORDS and meta.depth == 2 and meta.page_size == 4096
    assert meta.file_size >= (meta.last_page + 1) * meta.page_size
    empty = tmp_path / "empty_db"
    LmdbWriter(empty).close()
    assert check_data_file(empty).entries == 0 and len(DatumDB(empty)) == 0
    # a deep tree, a grown map, a compacted copy and a writemap file (sized to the map)
    deep = tmp_path / "deep_db"
    with LmdbWriter(deep, map_size=1 << 16) as writer:
        for i in range(6000):
            writer.put(i % 10, b"\x08\x01\x10\x01\x18\x01\x22\x01\x00" + bytes(1000 + i % 7))
    assert check_data_file(deep).depth >= 3 and writer.map_growths > 0
    env = lmdb.open(str(deep), readonly=True, lock=False)
    (tmp_path / "compact_db").mkdir()
    env.copy(str(tmp_path / "compact_db"), compact=True)
    env.close()
    assert check_data_file(tmp_path / "compact_db").entries == 6000
    env = lmdb.open(str(tmp_path / "writemap_db"), writemap=True, map_size=1 << 22)
    with env.begin(write=True) as txn:
        for i in range(300):
            txn.put(b"%08d_1" % i, bytes(rng.integers(0, 256, 500, dtype=np.uint8)))
    env.close()
    assert check_data_file(tmp_path / "writemap_db").entries == 300
    with DatumDB(db) as reader:
        assert len(reader) == RECORDS and reader[RECORDS - 1][1] == 9


def test_the_check_is_cheap(db, monkeypatch):
    """No scan: a few reads of a page or less, whatever the database's size."""
    import builtins

    reads = []
    real_open = builtins.open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def read(self, n=-1):
            data = self.f.read(n)
            reads.append(len(data))
            return data

        def __getattr__(self, name):
            return getattr(self.f, name)

    monkeypatch.setattr(builtins, "open", lambda *a, **k: Counting(real_open(*a, **k)))
    check_data_file(db)
    assert len(reads) <= 3 and sum(reads) <= 3 * 4096


@pytest.mark.parametrize("fraction", [i / 11 for i in range(1, 11)])
def test_truncated_file_is_refused_by_every_reader(db, fraction):
    size = (db / "data.mdb").stat().st_size
    _damage(db, lambda data: data.__delitem__(slice(int(size * fraction), None)))
    for read in (check_data_file, DatumDB, inspect_db, verify_db):
        with pytest.raises(BuilderError, match=r"data\.mdb: damaged LMDB: .*truncated"):
            read(db)


def test_truncated_file_cli_and_trainer_reader_report_instead_of_crashing(db):
    """Before the check, all three died with SIGBUS (exit -7)."""
    size = (db / "data.mdb").stat().st_size
    _damage(db, lambda data: data.__delitem__(slice(size // 2, None)))
    verify = _cli("verify", str(db))
    assert verify.returncode == 1, verify.stderr
    assert "DAMAGED" in verify.stdout and "truncated" in verify.stdout and "pages) are missing" in verify.stdout
    inspect = _cli("inspect", "--no-grid", str(db))
    assert inspect.returncode == 2 and "error:" in inspect.stderr and "truncated" in inspect.stderr
    trainer_view = subprocess.run(
        [sys.executable, "-c", "import sys; from lmdb_builder import DatumDB; "
         "from lmdb_builder.errors import BuilderError\n"
         "try: DatumDB(sys.argv[1])[0]\nexcept BuilderError as e: print(e); sys.exit(3)", str(db)],
        capture_output=True, text=True, timeout=60)
    assert trainer_view.returncode == 3 and "truncated" in trainer_view.stdout


@pytest.mark.parametrize("damage, message", [
    (lambda d, m: d.__setitem__(slice(0, 4096), bytes(4096)), "page 0 is not a meta page"),
    (lambda d, m: d.__setitem__(slice(4096, 8192), bytes(4096)), "page 1 is not a meta page"),
    (lambda d, m: d.__setitem__(slice(m["offset"] + META, m["offset"] + META + 1), b"\xdf"),
     "has magic 0xBEEFC0DF"),
    (lambda d, m: struct.pack_into("=I", d, m["offset"] + META + 4, 999), "format version 999"),
    (lambda d, m: struct.pack_into("=Q", d, m["offset"] + META + 16, 4096), "map size of 4096"),
    (lambda d, m: struct.pack_into("=Q", d, m["offset"] + META + 16, 1 << 62), "impossible map size"),
    (lambda d, m: struct.pack_into("=Q", d, m["offset"] + MAIN_DB + 48, m["last"] + 1000),
     "truncated"),
    (lambda d, m: struct.pack_into("=Q", d, m["offset"] + MAIN_DB + 40, m["last"] + 5),
     "root page"),
    (lambda d, m: struct.pack_into("=H", d, m["offset"] + MAIN_DB + 6, 40), "tree depth 40"),
    (lambda d, m: d.__setitem__(slice(m["root"] * 4096, (m["root"] + 1) * 4096), bytes(4096)),
     "the root page .* reads as page 0"),
    (lambda d, m: struct.pack_into("=H", d, m["root"] * 4096 + 16, 9), "node 0 at offset 9"),
    (lambda d, m: struct.pack_into("=H", d, m["root"] * 4096 + 12, 4000), "free space bounds"),
])
def test_damaged_meta_or_root_page_is_refused(db, damage, message):
    meta = _current((db / "data.mdb").read_bytes())
    _damage(db, lambda data: damage(data, meta))
    with pytest.raises(BuilderError, match=message):
        DatumDB(db)


def test_branch_root_pointing_past_the_last_page_is_refused(db):
    data = (db / "data.mdb").read_bytes()
    meta = _current(data)
    base = meta["root"] * 4096
    node = base + struct.unpack_from("=H", data, base + 16 + 2)[0]   # the second child
    _damage(db, lambda d: struct.pack_into("=HH", d, node, 0xFFFF, 0x7FFF))
    with pytest.raises(BuilderError, match="node 1 points to page"):
        check_data_file(db)


# ---------------------------------------------------------------- damage deep in the tree

def _break_record(db, key: bytes) -> None:
    """Turn `key`'s record into an overflow record on the last page whose size reaches past the
    end of the file: reading it makes LMDB copy from file pages that do not exist (SIGBUS)."""
    data = (db / "data.mdb").read_bytes()
    node = _leaf_node(data, key)
    meta = _current(data)
    flags, ksize = struct.unpack_from("=HH", data, node + 4)
    size = len(data) - meta["last"] * meta["page"] + 3 * meta["page"]

    def edit(d: bytearray) -> None:
        struct.pack_into("=HHH", d, node, size & 0xFFFF, size >> 16, flags | 0x01)  # F_BIGDATA
        struct.pack_into("=Q", d, node + 8 + ksize, meta["last"])
    _damage(db, edit)


def test_verify_reports_a_crash_and_the_readable_records(db):
    _break_record(db, b"00000044_4")
    result = verify_db(db)
    assert result.damage and "died with SIG" in result.damage
    assert [(r.first, r.last, r.count) for r in result.readable] == [
        ("00000000_0", "00000043_3", 44), ("00000045_5", "00000119_9", 75)]
    assert result.entries == RECORDS - 1 and result.expected == RECORDS and result.corrupt == []

    run = _cli("verify", str(db))
    assert run.returncode == 1, run.stderr
    out = run.stdout
    assert "119 of 120 records read" in out and "DAMAGED: the reading process died with SIG" in out
    assert "readable: 119 of 120 records: 00000000_0 .. 00000043_3 (44); 00000045_5 .. 00000119_9 (75)" in out
    assert "unreadable: the records after 00000043_3 and before 00000045_5 (1 record(s))" in out


def test_inspect_reports_the_damage_instead_of_dying(db, tmp_path):
    _break_record(db, b"00000044_4")
    info, samples = inspect_db(db, samples=8)
    assert info.entries == RECORDS and info.read == 44 and "died with SIG" in info.damage
    assert info.last_key == "00000043_3" and sum(info.labels.values()) == 44
    run = _cli("inspect", "--grid", str(tmp_path / "grid.png"), str(db))
    assert run.returncode == 1
    assert "DAMAGED: reading stopped after 44 of 120 records (last key read 00000043_3)" in run.stdout
    assert "damaged database" in run.stderr


def test_lmdb_assertion_abort_mid_walk_is_reported_with_lmdbs_message(db):
    """A leaf page with its type flags cleared: LMDB's assertion aborts the reading process."""
    data = (db / "data.mdb").read_bytes()
    node = _leaf_node(data, b"00000070_0")
    page = node - node % 4096
    _damage(db, lambda d: struct.pack_into("=H", d, page + 10, 0))
    result = verify_db(db)
    assert "SIGABRT" in result.damage and "Assertion" in result.damage
    first, last = result.readable
    assert first.first == "00000000_0" and last.last == "00000119_9"
    assert first.count + last.count < RECORDS and first.last < "00000070_0" < last.first


def test_lmdb_error_mid_walk_is_reported(db):
    """A record whose size runs past its page: LMDB answers MDB_CORRUPTED."""
    data = (db / "data.mdb").read_bytes()
    node = _leaf_node(data, b"00000050_0")
    _damage(db, lambda d: struct.pack_into("=HH", d, node, 0xFFFF, 0x0007))
    result = verify_db(db)
    assert "MDB_CORRUPTED" in result.damage
    assert [(r.last, r.first) for r in result.readable] == [("00000049_9", "00000000_0"),
                                                            ("00000119_9", "00000051_1")]


def test_a_sound_database_is_read_at_full_speed(db):
    """The child process costs one start, not a slowdown per record."""
    start = time.perf_counter()
    result = verify_db(db)
    assert result.damage is None and result.entries == RECORDS
    assert [(r.first, r.last, r.count) for r in result.readable] == [("00000000_0", "00000119_9", RECORDS)]
    assert time.perf_counter() - start < 10

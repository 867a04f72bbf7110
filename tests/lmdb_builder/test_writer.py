"""LMDB writing as DIGITS did: `%08d_%d` keys, 100 per transaction, map doubling."""
from __future__ import annotations

import lmdb
import pytest

from lmdb_builder.writer import INITIAL_MAP_SIZE, LmdbWriter, make_key


def _read_all(path) -> list[tuple[bytes, bytes]]:
    env = lmdb.open(str(path), readonly=True, lock=False)
    with env.begin() as txn:
        items = list(txn.cursor())
    env.close()
    return items


def test_key_format():
    assert make_key(0, 3) == b"00000000_3"
    assert make_key(45001, 12) == b"00045001_12"
    assert make_key(123456789, 0) == b"123456789_0"


def test_records_keys_and_transactions_of_100(tmp_path):
    labels = [i % 7 for i in range(250)]
    with LmdbWriter(tmp_path / "db") as writer:
        for i, label in enumerate(labels):
            writer.put(label, b"v%d" % i)
    assert writer.count == 250 and writer.transactions == 3     # 100 + 100 + 50
    items = _read_all(tmp_path / "db")
    assert [k for k, _ in items] == [b"%08d_%d" % (i, l) for i, l in enumerate(labels)]
    assert [v for _, v in items] == [b"v%d" % i for i in range(250)]
    assert (tmp_path / "db" / "data.mdb").is_file() and (tmp_path / "db" / "lock.mdb").is_file()


def test_map_doubles_until_the_batch_fits(tmp_path):
    start = 64 * 1024
    with LmdbWriter(tmp_path / "db", map_size=start) as writer:
        for i in range(300):
            writer.put(1, bytes([i % 256]) * 3000)
        growths = writer.map_growths
        size = writer.env.info()["map_size"]
    assert growths >= 3 and size == start * 2 ** growths
    assert len(_read_all(tmp_path / "db")) == 300


def test_digits_initial_map_size():
    assert INITIAL_MAP_SIZE == 10485760


def test_failure_inside_the_block_commits_nothing_more(tmp_path):
    with pytest.raises(RuntimeError):
        with LmdbWriter(tmp_path / "db") as writer:
            for i in range(150):
                writer.put(0, b"x")
            raise RuntimeError("stop")
    assert len(_read_all(tmp_path / "db")) == 100          # the queued 50 were dropped

"""Fuzzing the LMDB opener (issue 14, tests to keep): seeded damage to a small database's meta
pages, root page, any page, and its length. Opening (DatumDB: the file check, then LMDB) either
works or raises BuilderError, in this process; reading every record goes through a child
(IsolatedItems), so a crash there is a report. Nothing but BuilderError may escape, and nothing
may kill the test process. Bounded to a few seconds."""
from __future__ import annotations

import struct
import time

import numpy as np
import pytest

from lmdb_builder.datum import encode_datum
from lmdb_builder.errors import BuilderError
from lmdb_builder.reader import DatumDB, IsolatedItems
from lmdb_builder.writer import LmdbWriter

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(struct.calcsize("P") != 8, reason="64-bit page layout")]

SEED = 7103
CASES = 400
WALKS = 40              # cases whose records are also walked (one child process each)
BUDGET_S = 10.0
PAGE = 4096


@pytest.fixture(scope="module")
def original(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("fuzz") / "db"
    rng = np.random.default_rng(SEED)
    with LmdbWriter(path) as writer:
        for i in range(150):
            image = rng.integers(0, 256, (20, 20) if i % 2 else (48, 48, 3), dtype=np.uint8)
            writer.put(i % 10, encode_datum(image, i % 10, "png" if i % 3 else "none"))
    return (path / "data.mdb").read_bytes()


def damage(data: bytes, rng: np.random.Generator) -> bytes:
    data = bytearray(data)
    pages = len(data) // PAGE
    kind = int(rng.integers(0, 6))
    if kind == 0:                                      # bits in a meta page
        meta = int(rng.integers(0, 2)) * PAGE
        for _ in range(int(rng.integers(1, 4))):
            data[meta + int(rng.integers(0, 160))] ^= 1 << int(rng.integers(0, 8))
    elif kind == 1:                                    # a whole field of a meta page
        meta = int(rng.integers(0, 2)) * PAGE
        at = meta + 16 + 8 * int(rng.integers(0, 18))
        data[at:at + 8] = rng.choice([b"\0" * 8, b"\xff" * 8,
                                      struct.pack("=Q", int(rng.integers(0, 1 << 40)))])
    elif kind == 2:                                    # bits in the first bytes of any page
        page = int(rng.integers(2, pages))
        for _ in range(int(rng.integers(1, 6))):
            data[page * PAGE + int(rng.integers(0, 256))] ^= 1 << int(rng.integers(0, 8))
    elif kind == 3:                                    # a zeroed page
        page = int(rng.integers(0, pages))
        data[page * PAGE:(page + 1) * PAGE] = bytes(PAGE)
    elif kind == 4:                                    # truncated anywhere
        del data[int(rng.integers(0, len(data))):]
    else:                                              # random bytes over a span
        at = int(rng.integers(0, len(data)))
        size = int(rng.integers(1, 2 * PAGE))
        data[at:at + size] = rng.integers(0, 256, size, dtype=np.uint8).tobytes()[:len(data) - at]
    return bytes(data)


def test_damaged_databases_raise_only_builder_errors(original, tmp_path):
    rng = np.random.default_rng(SEED)
    db = tmp_path / "db"
    db.mkdir()
    deadline = time.monotonic() + BUDGET_S
    opened = walked = 0
    for case in range(CASES):
        if time.monotonic() > deadline:
            break
        (db / "data.mdb").write_bytes(damage(original, rng))
        try:
            with DatumDB(db) as reader:
                len(reader)
                opened += 1
        except BuilderError as exc:
            assert str(exc).startswith(str(db)), f"case {case}: {exc}"
            continue
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"case {case} (seed {SEED}): {type(exc).__name__}: {str(exc)[:300]}")
        if walked < WALKS:
            walked += 1
            items = IsolatedItems(db)
            count = sum(1 for _ in items)
            assert count <= 150 or items.damage, f"case {case}"
    assert opened >= 10 and walked >= 10

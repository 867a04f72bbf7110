"""inspect (counts, shapes, encodings, labels, sample picture) and verify (corrupt keys, mean)."""
from __future__ import annotations

import lmdb
import numpy as np
import pytest
from PIL import Image

from lmdb_builder.build import BuildOptions, build_dataset
from lmdb_builder.errors import BuilderError
from lmdb_builder.folders import plan_folder
from lmdb_builder.inspection import (describe, find_dbs, inspect_db, key_style, sample_grid,
                                     verify_db, verify_mean)
from lmdb_builder.mean import write_mean
from lmdb_builder.plan import ImageSettings


@pytest.fixture
def dataset(tmp_path, rng):
    for c in ("ant", "bee"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(9):
            Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    return build_dataset(plan_folder(tmp_path / "imgs"), tmp_path / "ds", ImageSettings(24, 32, 3, "crop", "jpg"),
                         BuildOptions(workers=1)).out


def test_inspect_counts_and_describes(dataset):
    assert [p.name for p in find_dbs(dataset)] == ["train_db", "val_db"]
    info, samples = inspect_db(dataset / "train_db", samples=5)
    assert info.entries == 14 and info.shapes == {(3, 24, 32): 14} and info.encodings == {"jpg": 14}
    assert info.labels == {0: 7, 1: 7} and info.first_key == "00000000_" + info.first_key[-1]
    assert len(samples) == 5 and samples[0][0].shape == (3, 24, 32)
    text = "\n".join(describe(info, ["ant", "bee"]))
    assert "14 records" in text and "3x24x32" in text and "'bee'" in text and "DIGITS" in text
    grid = sample_grid(samples, columns=3)
    assert grid.mode == "RGB" and grid.size == (3 * 34 + 2, 2 * 26 + 2)


def test_key_styles():
    assert key_style(b"00000012_3").startswith("DIGITS")
    assert key_style(b"00000012_cat/a.jpg").startswith("convert_imageset")
    assert key_style(b"whatever") == "other"


def test_verify_reports_corrupt_records_by_key(dataset):
    assert verify_db(dataset / "val_db").corrupt == []
    env = lmdb.open(str(dataset / "val_db"))
    with env.begin(write=True) as txn:
        key = next(iter(txn.cursor().iternext(values=False)))
        txn.put(key, b"\x0a\x05garbage")
    env.close()
    result = verify_db(dataset / "val_db")
    assert result.entries == 4 and [k for k, _ in result.corrupt] == [key.decode()]


def test_verify_mean_shape(dataset):
    assert verify_mean(dataset, (3, 24, 32)) is None
    write_mean(np.zeros((8, 8), np.uint8), dataset / "mean.binaryproto")
    assert "Caffe needs them equal" in verify_mean(dataset, (3, 24, 32))


def test_not_a_database(tmp_path):
    with pytest.raises(BuilderError, match="neither an LMDB"):
        find_dbs(tmp_path)

"""verify reports labels a classifier cannot take (issue 14 defect 5): negative ones, and labels
>= the number of lines of the dataset's labels.txt, by key."""
from __future__ import annotations

import numpy as np

from lmdb_builder.__main__ import main
from lmdb_builder.datum import encode_datum
from lmdb_builder.labels import check_labels
from lmdb_builder.writer import LmdbWriter


def write(folder, labels, rng):
    folder.mkdir(parents=True, exist_ok=True)
    with LmdbWriter(folder / "train_db") as writer:
        for label in labels:
            image = rng.integers(0, 256, (5, 7), dtype=np.uint8)
            writer.put(max(label, 0), encode_datum(image, label, "png"))
    (folder / "labels.txt").write_text("zero\none\ntwo\n")


def test_labels_outside_the_classes_are_listed_by_key(tmp_path, rng):
    write(tmp_path / "ds", [0, 2, 99, 1, -1, 3, 99], rng)
    report = check_labels(tmp_path / "ds" / "train_db", 3)
    assert report.records == 7 and report.bad == 4
    assert dict(report.outside) == {99: ["00000002_99", "00000006_99"], -1: ["00000004_0"],
                                    3: ["00000005_3"]}
    assert check_labels(tmp_path / "ds" / "train_db", None).bad == 1  # only -1 without labels.txt


def test_verify_reports_them_and_fails(tmp_path, rng, capsys):
    write(tmp_path / "ds", [0, 2, 1, 2], rng)
    assert main(["verify", str(tmp_path / "ds")]) == 0
    write(tmp_path / "bad", [0, 2, 99, 1], rng)
    assert main(["verify", str(tmp_path / "bad")]) == 1
    out = capsys.readouterr().out
    assert ("  label 99 outside 0 to 2 (3 labels in labels.txt): 1 record(s): 00000002_99"
            in out.splitlines())

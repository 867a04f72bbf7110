"""python -m lmdb_builder: subcommands, one-line errors, exit codes."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from lmdb_builder.__main__ import main


def test_mnist_command(mnist_dir, tmp_path, capsys):
    rc = main(["mnist", "--mnist-dir", str(mnist_dir), "--limit", "500", "--out", str(tmp_path / "m"),
               "--image-size", "24x32", "--channels", "3", "--encoding", "none", "--workers", "1"])
    captured = capsys.readouterr()
    out = captured.out
    assert captured.err == ""                          # no progress bar or log off a terminal
    # per-class rounding: 376 + 124, not 375 + 125
    assert rc == 0 and "train_db 376, val_db 124 records (24x32x3 none, squash)" in out
    assert "mean 1x3x24x32" in out
    rc = main(["mnist", "--mnist-dir", str(mnist_dir), "--limit", "500", "--out", str(tmp_path / "m")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "already exists" in err and "Traceback" not in err
    rc = main(["mnist", "--mnist-dir", str(mnist_dir), "--limit", "500", "--test-as-val", "--force",
               "--out", str(tmp_path / "m"), "--workers", "1"])
    assert rc == 0 and "train_db 500, val_db 500 records (28x28x1 png" in capsys.readouterr().out


def test_mnist_without_files(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("REDIGITS_MNIST_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["mnist", "--no-download", "--out", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "error: " in err and "put train-images-idx3-ubyte.gz" in err
    with pytest.raises(Exception):
        main(["--debug", "mnist", "--no-download", "--out", str(tmp_path / "m")])


def test_folder_list_inspect_verify(tmp_path, rng, capsys, monkeypatch):
    for c in ("cat", "dog"):
        (tmp_path / "imgs" / c).mkdir(parents=True)
        for i in range(5):
            Image.fromarray(rng.integers(0, 256, (12, 10, 3), dtype=np.uint8)).save(tmp_path / "imgs" / c / f"{i}.png")
    assert main(["folder", str(tmp_path / "imgs"), "--out", str(tmp_path / "f"), "--image-size", "8",
                 "--resize-mode", "half_crop", "--workers", "1"]) == 0
    assert "train_db 8, val_db 2 records (8x8x3 png level 1, half_crop)" in capsys.readouterr().out
    (tmp_path / "list.txt").write_text("".join(f"{c}/{i}.png {n}\n" for n, c in enumerate(("cat", "dog")) for i in range(5)))
    (tmp_path / "labels.txt").write_text("cat\ndog\n")
    assert main(["list", str(tmp_path / "list.txt"), "--labels", str(tmp_path / "labels.txt"),
                 "--root", str(tmp_path / "imgs"), "--out", str(tmp_path / "l"), "--workers", "1"]) == 0
    assert "train_db 10 records (256x256x3 png level 1, squash)" in capsys.readouterr().out
    monkeypatch.chdir(tmp_path)
    assert main(["inspect", str(tmp_path / "f"), "--samples", "4"]) == 0
    out = capsys.readouterr().out
    assert "train_db: 8 records" in out and "3x8x8" in out and "'dog'" in out
    assert Image.open(tmp_path / "f_train_db_samples.png").mode == "RGB"
    assert main(["inspect", str(tmp_path / "l" / "train_db"), "--grid", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").is_file()
    assert main(["verify", str(tmp_path / "f")]) == 0
    assert "0 corrupt" in capsys.readouterr().out
    import lmdb
    env = lmdb.open(str(tmp_path / "f" / "val_db"))
    with env.begin(write=True) as txn:
        txn.put(b"00000001_1", b"\x22\x03abc")
    env.close()
    assert main(["verify", str(tmp_path / "f")]) == 1
    captured = capsys.readouterr()
    assert "corrupt 00000001_1" in captured.out and captured.err.startswith("error: ")


def test_bad_flags(capsys):
    with pytest.raises(SystemExit):
        main(["mnist", "--out", "x", "--image-size", "0x3"])
    with pytest.raises(SystemExit):
        main(["mnist", "--out", "x", "--val-percent", "10", "--test-as-val"])
    assert main([]) == 2

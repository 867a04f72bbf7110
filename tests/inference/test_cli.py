"""python -m inference: classify, classify-many (DIGITS' list files), bench, and its errors."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from inference.__main__ import main

from .conftest import drawn_canvas


@pytest.fixture(scope="module")
def digit_folder(tmp_path_factory, mnist_test):
    """MNIST test digits as DIGITS' downloader left them: test/<label>/<index:05d>.png, black
    on white, and test.txt with `<path> <label>` lines, paths relative to the folder."""
    root = tmp_path_factory.mktemp("mnist-png")
    lines = []
    for index, (digit, label) in enumerate(zip(mnist_test.images[:300], mnist_test.labels[:300])):
        path = root / "test" / str(label) / f"{index:05d}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(255 - digit).save(path)
        lines.append(f"test/{label}/{index:05d}.png {label}")
    (root / "test.txt").write_text("\n".join(lines) + "\n")
    return root


def test_classify_prints_digits_top5(lenet, digit_folder, mnist_test, capsys):
    image = digit_folder / "test" / str(mnist_test.labels[0]) / "00000.png"
    assert main(["classify", str(lenet.onnx), str(image), str(image)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == str(image) and len(lines) == 12
    percent, label = lines[1].split("%")
    assert label.strip() == str(mnist_test.labels[0]) and 50 < float(percent) <= 100


def test_classify_json_and_drawing(lenet, mnist_test, tmp_path, capsys):
    canvas = tmp_path / "canvas.png"
    drawn_canvas(mnist_test.images[1], np.random.default_rng(0)).save(canvas)
    assert main(["classify", str(lenet.onnx), str(canvas), "--drawing", "--top", "3", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["provider"] == "cpu" or answer["provider"] in ("cuda", "tensorrt")
    (result,) = answer["results"]
    assert len(result["predictions"]) == 3
    assert result["predictions"][0]["label"] == str(mnist_test.labels[1])


def test_classify_many_scores_a_list_file(lenet, digit_folder, capsys):
    assert main(["classify-many", str(lenet.onnx), str(digit_folder / "test.txt"), "--batch", "37"]) == 0
    out = capsys.readouterr().out
    first = out.splitlines()[0]
    assert first.startswith("300 images: top-1 accuracy") and "top-5 accuracy" in first
    assert "confusion matrix (rows: true, columns: predicted)" in out


def test_classify_many_json_root_and_unreadable_images(lenet, digit_folder, tmp_path, capsys):
    listing = tmp_path / "list.txt"
    lines = (digit_folder / "test.txt").read_text().splitlines()[:50]
    listing.write_text("\n".join(lines + ["test/3/missing.png 3", "not a line"]) + "\n")
    assert main(["classify-many", str(lenet.onnx), str(listing), "--root", str(digit_folder),
                 "--top", "2", "--json"]) == 0
    captured = capsys.readouterr()
    result = json.loads(captured.out)
    assert result["count"] == 50 and result["top1_accuracy"] >= 0.9
    assert result["top2_accuracy"] >= result["top1_accuracy"]
    matrix = np.array(result["confusion_matrix"])
    assert matrix.shape == (10, 10) and matrix.sum() == 50
    assert np.trace(matrix) == round(result["top1_accuracy"] * 50)
    assert len(result["failed"]) == 1 and "missing.png" in result["failed"][0]["path"]


def test_bench_json(lenet, capsys):
    assert main(["bench", str(lenet.onnx), "--batch", "1,3", "--seconds", "0.05", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["batch"] for r in rows] == [1, 3]
    assert all(r["runs"] >= 5 and r["p99_ms"] >= r["p50_ms"] > 0 and r["images_per_s"] > 0
               for r in rows)


def test_errors_are_one_line(lenet, tmp_path, capsys):
    assert main(["classify", str(lenet.onnx), str(tmp_path / "nope.png")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nope.png" in err and "Traceback" not in err
    bad = tmp_path / "bad.txt"
    bad.write_text("a.png 12\n")
    assert main(["classify-many", str(lenet.onnx), str(bad)]) == 2
    assert "label 12 is out of range" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["bench", str(lenet.onnx), "--batch", "0"])


def test_serve_passes_its_options(lenet, monkeypatch):
    import inference.server
    seen = {}
    monkeypatch.setattr(inference.server, "serve", lambda *args: seen.setdefault("args", args))
    assert main(["serve", str(lenet.onnx), "--port", "8123", "--max-batch", "8", "--max-wait-ms",
                 "2.5", "--max-upload-mb", "2", "--provider", "cpu"]) == 0
    model, host, port, settings, provider, crop, access_log = seen["args"]
    assert (model, host, port, provider, crop, access_log) == (str(lenet.onnx), "127.0.0.1", 8123,
                                                               "cpu", "resize", False)
    assert (settings.max_batch, settings.max_wait_ms, settings.max_upload_bytes) == (8, 2.5, 2 * 2**20)

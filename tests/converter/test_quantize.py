"""converter onnx --int8 --calibrate: Caffe's TEST transform equals what inference feeds, the
calibration set, the int8 file (QDQ, metadata, runs in `python -m inference` unchanged), and the
self-check that refuses a model which disagrees with fp32, naming the numbers."""
from __future__ import annotations

import base64
import json
import re

import numpy as np
import onnx
import pytest
from PIL import Image

from converter import ConverterError
from converter.__main__ import main
from converter.calibration import CaffeTransform, find_val_db, load_calibration, spread
from converter.quantize import export_int8
from lmdb_builder import DatumDB


def _meta(channels, size, mean, mean_type, scale, stored):
    meta = {"input_shape": f"{channels}x{size[0]}x{size[1]}", "mean_type": mean_type,
            "scale": repr(scale), "dataset_image_size": f"{stored[0]}x{stored[1]}x{channels}",
            "resize_mode": "squash"}
    if mean_type == "image":
        meta["mean_shape"] = "x".join(map(str, mean.shape))
        meta["mean_data"] = base64.b64encode(mean.astype("<f4").tobytes()).decode()
    elif mean_type == "pixel":
        meta["mean_pixel"] = json.dumps([float(v) for v in mean])
    return meta


@pytest.mark.parametrize("channels, mean_type", [(3, "image"), (3, "pixel"), (1, "image"),
                                                 (1, "none")])
def test_caffe_transform_equals_inference_center_crop(rng, channels, mean_type):
    """Stored 13x11, input 8x5 (offsets 2, 3): converter's transform of the BGR Datum array
    equals inference's Preprocessor(crop='center') on the same picture."""
    from inference.metadata import model_info
    from inference.preprocess import Preprocessor
    stored, size = (13, 11), (8, 5)
    mean = {"image": rng.uniform(0, 255, (channels, *stored)),
            "pixel": rng.uniform(0, 255, channels), "none": None}[mean_type]
    meta = _meta(channels, size, mean, mean_type, 0.0125, stored)
    ours = CaffeTransform.from_metadata(meta)
    info = model_info(meta, "data", (None, channels, *size), "prob")
    theirs = Preprocessor(info, crop="center")
    for _ in range(3):
        picture = rng.integers(0, 256, (*stored, channels), dtype=np.uint8)  # RGB / gray
        datum = picture.transpose(2, 0, 1)[::-1] if channels == 3 else picture.transpose(2, 0, 1)
        pil = Image.fromarray(picture if channels == 3 else picture[:, :, 0])
        expected = theirs(pil)
        got = ours(np.ascontiguousarray(datum))
        assert got.shape == expected.shape == (channels, *size)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-5)
    # the crop is centred (offsets 2, 3): the pixels the network sees are the middle ones
    if mean is None:
        np.testing.assert_allclose(got, datum[:, 2:10, 3:8] * np.float32(0.0125), atol=1e-6)


def test_caffe_transform_refuses_what_caffe_cannot_do():
    meta = _meta(1, (8, 5), None, "none", 1.0, (13, 11))
    transform = CaffeTransform.from_metadata(meta)
    with pytest.raises(ConverterError, match="3 channels; the network takes 1"):
        transform(np.zeros((3, 13, 11), np.uint8), "record 4")
    with pytest.raises(ConverterError, match="record 5 is 7x11, smaller than the network input 8x5"):
        transform(np.zeros((1, 7, 11), np.uint8), "record 5")
    with pytest.raises(ConverterError, match="does not say how to feed it"):
        CaffeTransform.from_metadata({"labels": "[]"}, "m.onnx")


def test_calibration_set_spreads_over_val_db(trained_lenet, tmp_path):
    meta = {p.key: p.value for p in onnx.load(str(trained_lenet.onnx)).metadata_props}
    transform = CaffeTransform.from_metadata(meta)
    calibration = load_calibration(trained_lenet.dataset, transform, 60)
    with DatumDB(trained_lenet.dataset / "val_db") as db:
        total = len(db)
        positions = spread(total, 60)
        assert len(calibration) == len(positions) == 60 and calibration.total == total
        assert positions[0] == 0 and positions[-1] == total - 1
        for k in (0, 17, 59):
            image, label = db[int(positions[k])]
            np.testing.assert_array_equal(calibration.images[k], transform(image))
            assert calibration.labels[k] == label
    assert set(calibration.labels.tolist()) == set(range(10))
    assert find_val_db(trained_lenet.dataset / "val_db") == trained_lenet.dataset / "val_db"
    assert len(load_calibration(trained_lenet.dataset, transform, 10 ** 6)) == total
    with pytest.raises(ConverterError, match="no val_db"):
        find_val_db(tmp_path)


def _agreement(text: str) -> float:
    return float(re.search(r"int8 vs fp32 top-1 agreement ([\d.]+) %", text).group(1))


@pytest.mark.slow
def test_int8_export_runs_in_inference_unchanged(trained_lenet, mnist_test, tmp_path, capsys):
    from inference import Classifier
    from inference.__main__ import main as inference_main
    out = tmp_path / "lenet-int8.onnx"
    assert main(["onnx", "--job", str(trained_lenet.job), "--out", str(out), "--int8",
                 "--calibrate", str(trained_lenet.dataset), "--calibration-images", "400"]) == 0
    printed = capsys.readouterr().out
    assert _agreement(printed) >= 99.0 and "400/400 images" in printed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lenet-int8.onnx"]

    proto, fp32 = onnx.load(str(out)), onnx.load(str(trained_lenet.onnx))
    ops = [n.op_type for n in proto.graph.node]
    assert "QuantizeLinear" in ops and "DequantizeLinear" in ops
    int8_weights = [t for t in proto.graph.initializer if t.data_type == onnx.TensorProto.INT8]
    assert any(len(t.dims) == 4 for t in int8_weights)      # conv filters stored as int8
    scales = {t.name: t for t in proto.graph.initializer}
    per_channel = [n for n in proto.graph.node if n.op_type == "DequantizeLinear"
                   and n.input[0] in {t.name for t in int8_weights}
                   and len(scales[n.input[1]].dims) == 1 and scales[n.input[1]].dims[0] > 1]
    assert per_channel, "weights are quantized per output channel"
    softmax = next(n for n in proto.graph.node if n.op_type == "Softmax")
    assert not any(n.op_type == "QuantizeLinear" and n.input[0] == softmax.output[0]
                   for n in proto.graph.node)
    meta, meta32 = ({p.key: p.value for p in m.metadata_props} for m in (proto, fp32))
    assert {k: v for k, v in meta.items() if k not in ("precision", "quantization")} == meta32
    assert meta["precision"] == "int8" and "agreement" in meta["quantization"]
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT

    # inference runs it unchanged: the same digits as the fp32 model on MNIST's test digits
    images = [Image.fromarray(255 - d) for d in mnist_test.images[:200]]
    int8_top = [r[0].index for r in Classifier(out, provider="cpu").classify(images)]
    fp32_top = [r[0].index for r in Classifier(trained_lenet.onnx, provider="cpu").classify(images)]
    assert np.mean(np.equal(int8_top, fp32_top)) >= 0.99
    assert np.mean(np.equal(int8_top, mnist_test.labels[:200])) >= 0.93
    png = tmp_path / "digit.png"
    images[0].save(png)
    assert inference_main(["classify", str(out), str(png), "--top", "2"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split("%")[1].strip() == str(mnist_test.labels[0])
    assert inference_main(["bench", str(out), "--batch", "1,3", "--seconds", "0.2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["batch"] for r in rows["rows"]] == [1, 3] and all(r["runs"] > 0 for r in rows["rows"])


def _squeezed(images: np.ndarray) -> np.ndarray:
    """Calibration that does not look like the data: every image shrunk 50 times towards the
    mean, so the activation ranges found are far too narrow and real images saturate."""
    return images * np.float32(0.02)


def test_int8_self_check_fails_with_the_numbers(trained_lenet):
    meta = {p.key: p.value for p in onnx.load(str(trained_lenet.onnx)).metadata_props}
    real = load_calibration(trained_lenet.dataset, CaffeTransform.from_metadata(meta), 200)
    bad = type(real)(_squeezed(real.images), real.labels, real.source, real.total)
    fp32 = trained_lenet.onnx.read_bytes()
    with pytest.raises(ConverterError) as caught:
        export_int8(fp32, bad, check=real, where="lenet-int8.onnx")
    message = str(caught.value)
    rate = _agreement(message)
    assert rate < 99.0 and re.search(r"\((\d+)/200 images", message)
    assert int(re.search(r"\((\d+)/200 images", message).group(1)) == round(rate * 2)
    assert "at least 99 % is required, nothing was written" in message
    assert re.search(r"top-1 accuracy fp32 \d+\.\d\d %, int8 \d+\.\d\d %", message)
    # the same images with a threshold it meets pass
    assert export_int8(fp32, real, check=real).agreement.rate >= 0.99


def test_int8_cli_refusal_leaves_nothing(trained_lenet, tmp_path, capsys, monkeypatch):
    import converter.quantize as quantize
    original = quantize.calibration_batches
    monkeypatch.setattr(quantize, "calibration_batches",
                        lambda images, batch=8: original(_squeezed(images), batch))
    out = tmp_path / "lenet-int8.onnx"
    code = main(["onnx", "--job", str(trained_lenet.job), "--out", str(out), "--int8",
                 "--calibrate", str(trained_lenet.dataset), "--calibration-images", "200",
                 "--triton", str(tmp_path / "repo")])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: ") and "Traceback" not in err
    assert str(out) in err and _agreement(err) < 99.0 and "/200 images" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, message", [
    (["--int8"], "--int8 checks itself on real images: give --calibrate DATASET_DIR"),
    (["--fp16"], "--fp16 checks itself on real images"),
    (["--calibrate", "x"], "--calibrate goes with --int8 or --fp16"),
    (["--max-batch-size", "4"], "go with --triton REPO_DIR"),
])
def test_option_errors(trained_lenet, tmp_path, capsys, args, message):
    out = tmp_path / "m.onnx"
    assert main(["onnx", "--job", str(trained_lenet.job), "--out", str(out), *args]) != 0
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and not out.exists()
    with pytest.raises(SystemExit) as caught:   # argparse: not allowed together
        main(["onnx", "--job", str(trained_lenet.job), "--out", str(out), "--int8", "--fp16",
              "--calibrate", str(trained_lenet.dataset)])
    assert caught.value.code == 2 and "not allowed with argument --int8" in capsys.readouterr().err

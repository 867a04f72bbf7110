"""ONNX export: the seed job folder end to end, metadata, the pooling recipe in the graph,
PyTorch vs ONNX Runtime on random and real (MNIST) inputs, many layer types, and errors."""
from __future__ import annotations

import base64
import gzip
import json
import shutil

import numpy as np
import onnx
import pytest
import torch
from PIL import Image

from converter import ConverterError, build_model
from converter.__main__ import main
from converter.caffemodel import save_caffemodel
from converter.onnx_export import export_job, export_onnx, find_job, ort_session
from prototxt import DatasetFacts, build_network, digits_split, read_blob, write_text

from .util import parse_net

TOLERANCE = 1e-5  # the bar for probabilities


def mnist_digits(mnist_dir, count=4):
    with gzip.open(mnist_dir / "t10k-images-idx3-ubyte.gz") as f:
        data = f.read(16 + 28 * 28 * count)
    return np.frombuffer(data, np.uint8, offset=16).reshape(count, 28, 28)


def digits_as_googlenet_input(digits, mean):
    """DIGITS' inference on the seed job: grey -> 3 channels, resize to 224 (squash), subtract
    the mean image resized to 224 as well."""
    def resize(plane):
        return np.asarray(Image.fromarray(plane.astype(np.float32), mode="F").resize((224, 224), Image.BILINEAR))
    mean224 = np.stack([resize(c) for c in mean])
    images = np.stack([np.stack([resize(d.astype(np.float32))] * 3) for d in digits])
    return (images - mean224).astype(np.float32)


@pytest.fixture(scope="module")
def seed_export(tmp_path_factory, seed_job, mnist_dir):
    job = tmp_path_factory.mktemp("job")
    for f in seed_job.iterdir():
        shutil.copy(f, job / f.name)
    old = build_model(job / "deploy.prototxt", seed=1)
    save_caffemodel(old, job / "snapshot_iter_700.caffemodel")
    model = build_model(job / "deploy.prototxt", seed=2).eval()
    save_caffemodel(model, job / "snapshot_iter_2814.caffemodel")
    mean = np.asarray(read_blob(job / "mean.binaryproto").data, np.float32).reshape(3, 256, 256)
    real = digits_as_googlenet_input(mnist_digits(mnist_dir), mean)
    report = export_job(job / "model.onnx", job=job, real_inputs=real)
    return job, model, report, real, mean


def test_job_folder_picks_the_newest_snapshot(seed_export):
    job, *_ = seed_export
    assert find_job(job).weights.name == "snapshot_iter_2814.caffemodel"


def test_graph_opset_dynamic_batch_and_checker(seed_export):
    job, model, report, *_ = seed_export
    proto = onnx.load(job / "model.onnx")
    onnx.checker.check_model(proto, full_check=True)
    assert max(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")) >= 17
    (inp,), (out,) = proto.graph.input, proto.graph.output
    dims = [d.dim_param or d.dim_value for d in inp.type.tensor_type.shape.dim]
    assert inp.name == "data" and dims == ["batch", 3, 224, 224] and out.name == "softmax"
    ops = [n.op_type for n in proto.graph.node]
    assert ops.count("Conv") == 57 + 2  # two LRN layers: their channel sums are 1x1 Convs
    assert ops.count("MaxPool") == 13 and ops.count("AveragePool") == 1 and "LRN" not in ops
    for node in proto.graph.node:  # no runtime's ceil_mode semantics are relied on
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        if node.op_type in ("MaxPool", "AveragePool"):
            assert attrs.get("ceil_mode", 0) == 0
            assert all(p < k for p, k in zip(attrs["pads"], attrs["kernel_shape"] * 2))
        if node.op_type == "AveragePool":  # Caffe's pad is a Pad node, so the divisor counts it
            assert attrs["pads"][:2] == [0, 0] and attrs["count_include_pad"] == 0


def test_metadata_carries_the_preprocessing(seed_export):
    job, model, report, real, mean = seed_export
    meta = {p.key: p.value for p in onnx.load(job / "model.onnx").metadata_props}
    assert json.loads(meta["labels"]) == [str(i) for i in range(10)]
    assert meta["input_shape"] == "3x224x224" and meta["channel_order"] == "BGR"
    assert meta["resize_mode"] == "squash" and meta["dataset_image_size"] == "256x256x3"
    assert meta["scale"] == "1.0" and meta["mean_type"] == "image" and meta["mean_shape"] == "3x256x256"
    decoded = np.frombuffer(base64.b64decode(meta["mean_data"]), "<f4").reshape(3, 256, 256)
    np.testing.assert_array_equal(decoded, mean)
    np.testing.assert_allclose(json.loads(meta["mean_pixel"]), mean.reshape(3, -1).mean(1), rtol=1e-6)
    assert meta["input_name"] == "data" and meta["output_name"] == "softmax"
    assert "resize to 224x224 (squash)" in meta["preprocessing"]


def test_pytorch_vs_onnxruntime(seed_export):
    job, model, report, real, _ = seed_export
    print("export self-check:", report.summary())
    assert set(report.differences) == {"random batch 1", "random batch 3", "real inputs"}
    assert max(report.differences.values()) <= TOLERANCE
    session = ort_session((job / "model.onnx").read_bytes())
    x = np.concatenate([real, np.random.default_rng(0).normal(0, 60, (1, 3, 224, 224)).astype(np.float32)])
    (theirs,) = session.run(None, {"data": x})
    with torch.no_grad():
        ours = model(torch.from_numpy(x))["softmax"].numpy()
    diff = float(np.abs(ours - theirs).max())
    print(f"GoogLeNet batch 5 (4 MNIST digits + noise): max abs diff {diff:.2e}")
    assert theirs.shape == (5, 10) and diff <= TOLERANCE
    np.testing.assert_allclose(theirs.sum(1), 1.0, rtol=1e-5)


def test_cli_model_and_weights_for_lenet(tmp_path, mnist_dir, capsys):
    facts = DatasetFacts(num_classes=10, height=28, width=28, channels=1, dataset_dir="/d")
    write_text(digits_split(build_network("lenet"), facts).deploy, tmp_path / "deploy.prototxt")
    model = build_model(tmp_path / "deploy.prototxt", seed=4)
    save_caffemodel(model, tmp_path / "w.caffemodel")
    (tmp_path / "labels.txt").write_text("".join(f"digit {i}\n" for i in range(10)))
    assert main(["onnx", "--model", str(tmp_path / "deploy.prototxt"), "--weights",
                 str(tmp_path / "w.caffemodel"), "--labels", str(tmp_path / "labels.txt"),
                 "--out", str(tmp_path / "lenet.onnx")]) == 0
    out = capsys.readouterr().out
    assert "opset 17" in out and "PyTorch vs ONNX Runtime max abs difference" in out
    proto = onnx.load(tmp_path / "lenet.onnx")
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["channel_order"] == "GRAY" and meta["mean_type"] == "none"
    assert json.loads(meta["labels"])[3] == "digit 3"
    digits = mnist_digits(mnist_dir, 8).astype(np.float32)[:, None] - 33.3
    (theirs,) = ort_session(proto.SerializeToString()).run(None, {"data": digits})
    with torch.no_grad():
        ours = model.eval()(torch.from_numpy(digits))["softmax"].numpy()
    assert np.abs(ours - theirs).max() <= TOLERANCE


ZOO = """
name: "zoo" input: "data" input_shape { dim: 1 dim: 3 dim: 17 dim: 22 }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 8 kernel_h: 3 kernel_w: 2 pad_h: 1 stride_h: 1 stride_w: 2
                            weight_filler { type: "gaussian" std: 0.2 } bias_filler { type: "gaussian" } } }
layer { name: "bn" type: "BatchNorm" bottom: "conv" top: "conv" }
layer { name: "sc" type: "Scale" bottom: "conv" top: "conv" scale_param { bias_term: true filler { type: "uniform" } } }
layer { name: "prelu" type: "PReLU" bottom: "conv" top: "conv" }
layer { name: "avepool" type: "Pooling" bottom: "conv" top: "ave" pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "bigpad" type: "Pooling" bottom: "conv" top: "bigpad" pooling_param { pool: AVE kernel_size: 4 stride: 3 pad: 3 } }
layer { name: "corner" type: "Pooling" bottom: "conv" top: "corner" pooling_param { pool: MAX kernel_size: 1 stride: 2 } }
layer { name: "lrn" type: "LRN" bottom: "ave" top: "lrn" lrn_param { norm_region: WITHIN_CHANNEL local_size: 3 alpha: 0.5 } }
layer { name: "lrn2" type: "LRN" bottom: "lrn" top: "lrn2" lrn_param { local_size: 3 alpha: 0.5 k: 2 } }
layer { name: "deconv" type: "Deconvolution" bottom: "lrn2" top: "up"
        convolution_param { num_output: 4 kernel_size: 4 stride: 2 pad: 1 weight_filler { type: "bilinear" } } }
layer { name: "crop" type: "Crop" bottom: "up" bottom: "ave" top: "cropped" crop_param { offset: 1 } }
layer { name: "sl" type: "Slice" bottom: "cropped" top: "s1" top: "s2" slice_param { slice_point: 1 } }
layer { name: "elt" type: "Eltwise" bottom: "s2" bottom: "s2" top: "elt" eltwise_param { operation: MAX } }
layer { name: "sig" type: "Sigmoid" bottom: "elt" top: "elt" }
layer { name: "flat" type: "Flatten" bottom: "elt" top: "flat" }
layer { name: "fl2" type: "Flatten" bottom: "bigpad" top: "fl2" }
layer { name: "fl3" type: "Reshape" bottom: "corner" top: "fl3" reshape_param { shape { dim: 0 dim: -1 } } }
layer { name: "cat" type: "Concat" bottom: "flat" bottom: "fl2" bottom: "fl3" top: "cat" concat_param { axis: 1 } }
layer { name: "power" type: "Power" bottom: "cat" top: "cat" power_param { power: 2 shift: 1 scale: 0.5 } }
layer { name: "elu" type: "ELU" bottom: "cat" top: "cat" }
layer { name: "ip" type: "InnerProduct" bottom: "cat" top: "ip" inner_product_param { num_output: 5 transpose: true
        weight_filler { type: "gaussian" std: 0.004 } } }
layer { name: "softmax" type: "Softmax" bottom: "ip" top: "prob" }
"""


def test_many_layer_types_export_and_agree(tmp_path):
    model = build_model(parse_net(ZOO), seed=9).eval()
    bn = model.caffe_blobs("bn")
    bn[0].copy_(torch.linspace(-1, 1, 8)), bn[1].copy_(torch.linspace(0.5, 2, 8)), bn[2].fill_(1)
    real = np.random.default_rng(3).normal(0, 2, (2, 3, 17, 22)).astype(np.float32)
    report = export_onnx(model, tmp_path / "zoo.onnx", real_inputs=real)
    print("zoo self-check:", report.differences)
    assert max(report.differences.values()) <= TOLERANCE
    with torch.no_grad():
        prob = model(torch.from_numpy(real))["prob"]
    assert 0.05 < prob.min() and prob.max() < 0.6  # not saturated: the comparison means something
    ops = {n.op_type for n in onnx.load(tmp_path / "zoo.onnx").graph.node}
    assert {"ConvTranspose", "PRelu", "Sqrt", "AveragePool", "MaxPool", "Pad", "Elu"} <= ops


def test_disagreement_fails_and_writes_nothing(tmp_path):
    model = build_model(parse_net(ZOO), seed=9)
    with pytest.raises(ConverterError, match=r"disagree: max abs difference random batch 1 .*nothing was written"):
        export_onnx(model, tmp_path / "x.onnx", tolerance=-1.0)
    assert not list(tmp_path.iterdir())


def test_errors(tmp_path, seed_job, capsys):
    assert main(["onnx", "--job", str(tmp_path / "nope"), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "no such model job folder" in capsys.readouterr().err
    shutil.copy(seed_job / "deploy.prototxt", tmp_path / "deploy.prototxt")
    assert main(["onnx", "--job", str(tmp_path), "--out", str(tmp_path / "m.onnx")]) == 2
    assert "no snapshot_iter_N.caffemodel" in capsys.readouterr().err
    assert main(["onnx", "--model", str(tmp_path / "deploy.prototxt"), "--out", "m.onnx"]) == 2
    assert "give --job MODEL_DIR, or --model" in capsys.readouterr().err
    no_softmax = parse_net('input: "x" input_shape { dim: 1 dim: 3 } '
                           'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }')
    with pytest.raises(ConverterError, match="must end in one Softmax"):
        export_onnx(build_model(no_softmax), tmp_path / "m.onnx")
    with pytest.raises(ConverterError, match="opset 13 is too old"):
        export_onnx(build_model(parse_net(ZOO)), tmp_path / "m.onnx", opset=13)


def test_pixel_mean_from_digits_settings(seed_job, tmp_path):
    from converter.onnx_export import JobFiles, preprocessing_metadata
    model = build_model(seed_job / "deploy.prototxt", seed=0)
    pixel = JobFiles(seed_job / "deploy.prototxt", tmp_path / "w", info={"mean subtraction": "pixel"})
    meta = preprocessing_metadata(model, pixel, seed_job / "mean.binaryproto", ["a"])
    assert meta["mean_type"] == "pixel" and "mean_data" not in meta
    assert len(json.loads(meta["mean_pixel"])) == 3
    write_text(parse_net('layer { name: "d" type: "Data" top: "data" include { phase: TEST } '
                         'transform_param { mean_value: 104 mean_value: 117 mean_value: 123 scale: 0.5 } }'),
               tmp_path / "train_val.prototxt")
    from_train_val = JobFiles(seed_job / "deploy.prototxt", tmp_path / "w", train_val=tmp_path / "train_val.prototxt")
    meta = preprocessing_metadata(model, from_train_val, None, [])
    assert json.loads(meta["mean_pixel"]) == [104, 117, 123] and meta["scale"] == "0.5"
    none = JobFiles(seed_job / "deploy.prototxt", tmp_path / "w", info={"mean subtraction": "none"})
    assert preprocessing_metadata(model, none, seed_job / "mean.binaryproto", [])["mean_type"] == "none"


def test_a_mean_whose_values_do_not_fill_its_shape_is_named(tmp_path):
    # issue 14: the error said "<string>" instead of the mean file
    from converter.onnx_export import read_mean
    from prototxt import caffe_pb2, write_binary
    from prototxt.errors import PrototxtError
    blob = caffe_pb2.BlobProto(shape=caffe_pb2.BlobShape(dim=[1, 1, 4, 5]), data=[1.0] * 7)
    path = write_binary(blob, tmp_path / "mean.binaryproto")
    with pytest.raises(PrototxtError) as err:
        read_mean(path, 1)
    assert str(err.value).startswith(str(path)) and "<string>" not in str(err.value)

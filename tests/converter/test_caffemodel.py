"""Loading and saving .caffemodel files: by name, shape checks, legacy V1 blobs, every blob
storage (BVLC data, NVIDIA Caffe raw FLOAT/FLOAT16/DOUBLE) and damaged blobs, missing/extra
layers, and a field-identical round trip. BatchNorm layouts: test_batch_norm_layouts.py."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model
from converter.caffemodel import array_blob, blob_array, load_caffemodel, save_caffemodel, to_net_parameter
from prototxt import BlobError, caffe_pb2, read_caffemodel, write_binary

from .caffe_files import RAW, STORAGES, kept
from .caffe_files import blob as caffe_blob
from .util import layer_net, parse_net, rng

LENET_DEPLOY = """
name: "LeNet" input: "data" input_shape { dim: 1 dim: 1 dim: 28 dim: 28 }
layer { name: "scale" type: "Power" bottom: "data" top: "scaled" power_param { scale: 0.0125 } }
layer { name: "conv1" type: "Convolution" bottom: "scaled" top: "conv1" param { lr_mult: 1 } param { lr_mult: 2 }
        convolution_param { num_output: 20 kernel_size: 5 weight_filler { type: "xavier" } bias_filler { type: "gaussian" } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "bn" type: "BatchNorm" bottom: "pool1" top: "pool1" }
layer { name: "sc" type: "Scale" bottom: "pool1" top: "pool1" scale_param { bias_term: true filler { type: "gaussian" } bias_filler { type: "gaussian" } } }
layer { name: "prelu" type: "PReLU" bottom: "pool1" top: "pool1" }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1" inner_product_param { num_output: 7 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }
"""


def lenet(seed=0):
    model = build_model(parse_net(LENET_DEPLOY), seed=seed)
    bn = model.caffe_blobs("bn")
    bn[0].copy_(torch.arange(20) * 0.3), bn[1].copy_(torch.arange(20) + 2.0), bn[2].fill_(3.0)
    return model


def test_round_trip_is_bit_exact_and_field_identical(tmp_path):
    model = lenet(seed=1)
    first = tmp_path / "a.caffemodel"
    save_caffemodel(model, first)
    other = build_model(parse_net(LENET_DEPLOY), seed=2)
    report = load_caffemodel(other, first, strict=True)
    assert report.loaded == ["conv1", "bn", "sc", "prelu", "ip1"] and not report.missing
    for a, b in zip(model.state_dict().values(), other.state_dict().values()):
        assert torch.equal(a, b)
    second = tmp_path / "b.caffemodel"
    save_caffemodel(other, second)
    assert first.read_bytes() == second.read_bytes()
    assert read_caffemodel(first) == to_net_parameter(model)


def test_saved_layout_is_caffes(tmp_path):
    path = tmp_path / "lenet.caffemodel"
    save_caffemodel(lenet(), path)
    net = read_caffemodel(path)
    assert net.name == "LeNet"
    assert [(l.name, l.type) for l in net.layer][:2] == [("input", "Input"), ("scale", "Power")]
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 1, 28, 28]
    shapes = {l.name: [list(b.shape.dim) for b in l.blobs] for l in net.layer if len(l.blobs)}
    assert shapes == {"conv1": [[20, 1, 5, 5], [20]], "bn": [[20], [20], [1]], "sc": [[20], [20]],
                      "prelu": [[20]], "ip1": [[7, 2880], [7]]}
    conv1 = next(l for l in net.layer if l.name == "conv1")
    assert conv1.param[1].lr_mult == 2 and conv1.convolution_param.num_output == 20
    assert not any(len(b.diff) for l in net.layer for b in l.blobs)


def test_array_blob_equals_protobufs_own_encoding():
    values = rng().standard_normal((3, 4)).astype(np.float32)
    slow = caffe_pb2.BlobProto()
    slow.shape.dim.extend([3, 4])
    slow.data.extend(values.ravel().tolist())
    assert array_blob(values).SerializeToString() == slow.SerializeToString()
    np.testing.assert_array_equal(blob_array(array_blob(values)).reshape(3, 4), values)


def test_v1_legacy_blobs_are_reshaped(tmp_path):
    r = rng()
    w, b = r.standard_normal((6, 12)).astype(np.float32), r.standard_normal(6).astype(np.float32)
    old = caffe_pb2.NetParameter(name="old")
    v1 = old.layers.add(name="fc", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT)
    v1.blobs.add(num=1, channels=1, height=6, width=12, data=w.ravel().tolist())
    v1.blobs.add(num=1, channels=1, height=1, width=6, data=b.tolist())
    path = tmp_path / "v1.caffemodel"
    write_binary(old, path)
    model = build_model(layer_net('type: "InnerProduct" inner_product_param { num_output: 6 }',
                                  {"x": (2, 3, 2, 2)}, name="fc"))
    report = load_caffemodel(model, path, strict=True)
    assert any("legacy shape [1, 1, 6, 12] read as [6, 12]" in n for n in report.notes)
    np.testing.assert_array_equal(model.caffe_blobs("fc")[0].detach().numpy(), w)
    np.testing.assert_array_equal(model.caffe_blobs("fc")[1].detach().numpy(), b)


def test_missing_extra_and_strict(tmp_path):
    path = tmp_path / "w.caffemodel"
    save_caffemodel(lenet(), path)
    net = read_caffemodel(path)
    for layer in net.layer:
        if layer.name == "ip1":
            layer.name = "ip_other"
    model = build_model(parse_net(LENET_DEPLOY))
    report = load_caffemodel(model, net)
    assert report.missing == ["ip1"] and report.extra == ["ip_other"]
    assert "not in the file (kept their fillers): ip1" in report.summary()
    with pytest.raises(ConverterError, match="do not match the net.*ip_other"):
        load_caffemodel(model, net, strict=True)


def test_shape_and_count_mismatch(tmp_path):
    net = to_net_parameter(lenet())
    conv1 = next(l for l in net.layer if l.name == "conv1")
    conv1.blobs[0].CopyFrom(array_blob(np.zeros((20, 1, 5, 4), np.float32)))
    with pytest.raises(ConverterError, match=r"layer 'conv1' \(Convolution\): cannot copy blob 0: "
                                             r"shape mismatch.*rename the layer"):
        load_caffemodel(build_model(parse_net(LENET_DEPLOY)), net)
    del conv1.blobs[1:]
    with pytest.raises(ConverterError, match="incompatible number of blobs"):
        load_caffemodel(build_model(parse_net(LENET_DEPLOY)), net)


@pytest.mark.parametrize("storage", STORAGES)
def test_every_blob_storage_loads(storage, tmp_path, caplog):
    """A whole net's weights as BVLC (float data) or NVIDIA Caffe 0.16+ (raw FLOAT, FLOAT16,
    DOUBLE) writes them; the report and the log say which; saving writes BVLC float data."""
    source = lenet(seed=4)
    net = to_net_parameter(source)
    values = {}
    for layer in net.layer:
        for j, b in enumerate(layer.blobs):
            array = blob_array(b).astype(np.float64) * 1.001  # not exactly float32 values
            values[layer.name, j] = kept(array, storage)
            b.CopyFrom(caffe_blob(array, storage))
    path = write_binary(net, tmp_path / "nv.caffemodel")
    model = build_model(parse_net(LENET_DEPLOY), seed=5)
    with caplog.at_level(logging.INFO):
        report = load_caffemodel(model, path, strict=True)
    kind = "BVLC float data" if storage == "data" else f"NVIDIA Caffe raw {storage}"
    assert report.storage == f"{kind} blobs"
    assert f"nv.caffemodel: weights: {kind} blobs" in caplog.text
    for (name, j), want in values.items():
        np.testing.assert_array_equal(model.caffe_blobs(name)[j].detach().numpy(),
                                      want.astype(np.float32).reshape(model.caffe_blobs(name)[j].shape))
    saved = to_net_parameter(model)
    assert all(not b.HasField("raw_data") and len(b.data) for l in saved.layer for b in l.blobs)


def test_mixed_storage_and_a_net_parameter_source_are_logged(caplog):
    net = to_net_parameter(lenet())
    conv1 = next(l for l in net.layer if l.name == "conv1")
    conv1.blobs[0].CopyFrom(caffe_blob(blob_array(conv1.blobs[0]), "FLOAT16"))
    with caplog.at_level(logging.INFO):
        report = load_caffemodel(build_model(parse_net(LENET_DEPLOY)), net)
    assert report.storage == "mixed: BVLC float data (9 blobs), NVIDIA Caffe raw FLOAT16 (1 blob)"
    assert f"<caffemodel>: weights: {report.storage}" in caplog.text


@pytest.mark.parametrize("storage", ["data", "FLOAT", "FLOAT16", "DOUBLE"])
def test_damaged_blob_names_layer_index_and_sizes(storage):
    net = to_net_parameter(lenet())
    ip1 = next(l for l in net.layer if l.name == "ip1")
    ip1.blobs[1].CopyFrom(caffe_blob(np.arange(6.0), storage, shape=[7]))
    if storage == "data":
        want = r"layer 'ip1' blob 1: its shape \[7\] needs 7 values but the file holds 6 \(float data\)"
    else:
        size = np.dtype(RAW[storage]).itemsize
        want = (rf"layer 'ip1' blob 1: its shape \[7\] needs 7 {storage} values = {7 * size} bytes "
                rf"of raw_data but the file holds {6 * size} bytes")
    with pytest.raises(BlobError, match=want) as info:
        load_caffemodel(build_model(parse_net(LENET_DEPLOY)), net)
    assert (info.value.layer, info.value.index) == ("ip1", 1)


def test_opencv_reads_the_same_raw_blobs(tmp_path):
    """OpenCV's Caffe importer reads NVIDIA Caffe's raw FLOAT and FLOAT16 blobs on its own:
    the same file gives the same output (an independent check of the field numbers)."""
    cv2 = pytest.importorskip("cv2")
    text = LENET_DEPLOY.replace('layer { name: "bn" type: "BatchNorm" bottom: "pool1" top: "pool1" }\n', "")
    text = text.replace('layer { name: "prelu" type: "PReLU" bottom: "pool1" top: "pool1" }\n', "")
    model = build_model(parse_net(text), seed=6).eval()
    net = to_net_parameter(model)
    for layer in net.layer:
        for j, b in enumerate(layer.blobs):
            b.CopyFrom(caffe_blob(blob_array(b), "FLOAT16" if j == 0 else "FLOAT"))
    (tmp_path / "deploy.prototxt").write_text(text)
    write_binary(net, tmp_path / "fp16.caffemodel")
    ours = build_model(parse_net(text)).eval()
    assert load_caffemodel(ours, tmp_path / "fp16.caffemodel", strict=True).storage.startswith("mixed")
    x = np.random.default_rng(2).uniform(-100, 100, (2, 1, 28, 28)).astype(np.float32)
    cv = cv2.dnn.readNetFromCaffe(str(tmp_path / "deploy.prototxt"), str(tmp_path / "fp16.caffemodel"))
    cv.setInput(x)
    theirs = cv.forward("ip1")
    with torch.no_grad():
        mine = ours(torch.from_numpy(x), keep=["ip1"])["ip1"].numpy()
    assert np.abs(mine - theirs).max() <= 1e-4 * max(1.0, float(np.abs(theirs).max()))

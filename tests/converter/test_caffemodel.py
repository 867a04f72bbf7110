"""Loading and saving .caffemodel files: by name, shape checks, legacy V1 blobs, NVIDIA Caffe
BatchNorm, missing/extra layers, and a field-identical round trip."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model
from converter.caffemodel import array_blob, blob_array, load_caffemodel, save_caffemodel, to_net_parameter
from prototxt import caffe_pb2, read_caffemodel, write_binary

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


@pytest.mark.parametrize("layout", ["nvcaffe-0.15", "nvcaffe-0.16"])
def test_nvcaffe_batchnorm_five_blobs(layout, tmp_path):
    r = rng()
    c = 4
    scale, bias, mean = (r.standard_normal(c).astype(np.float32) for _ in range(3))
    var = r.uniform(0.5, 2, c).astype(np.float32)
    blobs = ([scale, bias, mean, var, np.array([5.0], np.float32)] if layout == "nvcaffe-0.15"
             else [mean, var, np.array([1.0], np.float32), scale, bias])
    weights = caffe_pb2.NetParameter()
    weights.layer.add(name="l", type="BatchNorm").blobs.extend(array_blob(b) for b in blobs)
    model = build_model(layer_net('type: "BatchNorm"', {"x": (2, c, 3, 5)}))
    report = load_caffemodel(model, weights, strict=True)
    assert report.notes == [f"l: NVIDIA Caffe BatchNorm ({layout}) mapped"]
    x = torch.from_numpy(r.standard_normal((2, c, 3, 5)).astype(np.float32))
    k = (slice(None), None, None)
    want = (x.numpy() - mean[k]) / np.sqrt(var[k] + 1e-5) * scale[k] + bias[k]
    np.testing.assert_allclose(model(x)["y"].detach().numpy(), want, rtol=1e-5, atol=1e-5)
    again = to_net_parameter(model).layer[1]
    assert [list(blob_array(b)) for b in again.blobs] == [list(b) for b in blobs]

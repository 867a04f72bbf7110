"""Caffe's fillers: exact values where deterministic, distributions where random, seeding."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from google.protobuf import text_format

from converter import ConverterError, build_model, fill
from converter.fillers import fans
from prototxt import build_network, caffe_pb2


def filler(text: str) -> caffe_pb2.FillerParameter:
    return text_format.Parse(text, caffe_pb2.FillerParameter())


def filled(text: str, shape, seed: int = 0) -> np.ndarray:
    blob = torch.empty(shape, dtype=torch.float64)
    fill(blob, filler(text), torch.Generator().manual_seed(seed))
    return blob.numpy()


def f32(v):
    return float(np.float32(v))


def test_constant_and_schema_default():
    assert (filled('type: "constant" value: 0.2', (3, 4)) == f32(0.2)).all()
    assert (filled("", (3, 4)) == 0).all()  # unset filler: constant 0, as Caffe


def test_uniform():
    x = filled('type: "uniform" min: -2 max: 3', (100, 300))
    assert x.min() >= -2 and x.max() < 3 and abs(x.mean() - 0.5) < 0.05


def test_gaussian_and_sparse():
    x = filled('type: "gaussian" mean: 1 std: 0.5', (200, 300))
    assert abs(x.mean() - 1) < 0.01 and abs(x.std() - 0.5) < 0.01
    sparse = filled('type: "gaussian" std: 1 sparse: 10', (50, 400))
    assert abs((sparse != 0).mean() - 10 / 50) < 0.01  # Caffe keeps with p = sparse / shape[0]


def test_positive_unitball():
    x = filled('type: "positive_unitball"', (6, 5, 4))
    assert (x >= 0).all() and (x <= 1).all()
    np.testing.assert_allclose(x.reshape(6, -1).sum(1), 1.0)


@pytest.mark.parametrize("norm", ["FAN_IN", "FAN_OUT", "AVERAGE"])
@pytest.mark.parametrize("shape", [(64, 16, 3, 5), (300, 200), (500,)])
def test_xavier_and_msra(norm, shape):
    fan_in, fan_out = fans(shape)
    assert fan_in == math.prod(shape) // shape[0]
    assert fan_out == (math.prod(shape) // shape[1] if len(shape) > 1 else math.prod(shape))
    n = {"FAN_IN": fan_in, "FAN_OUT": fan_out, "AVERAGE": (fan_in + fan_out) / 2}[norm]
    x = filled(f'type: "xavier" variance_norm: {norm} std: 7', shape)  # std is ignored
    bound = math.sqrt(3 / n)
    assert np.abs(x).max() <= bound and np.abs(x).max() > 0.98 * bound
    assert abs(x.std() / (bound / math.sqrt(3)) - 1) < 0.05
    y = filled(f'type: "msra" variance_norm: {norm}', shape)
    assert abs(y.std() / math.sqrt(2 / n) - 1) < 0.05 and abs(y.mean()) < 0.1 * y.std()


def test_bilinear():
    x = filled('type: "bilinear"', (2, 3, 4, 4))
    ramp = np.array([0.25, 0.75, 0.75, 0.25])
    np.testing.assert_allclose(x, np.broadcast_to(np.outer(ramp, ramp), x.shape))
    y = filled('type: "bilinear"', (1, 1, 3, 3))
    np.testing.assert_allclose(y[0, 0], np.outer([0.5, 1, 0.5], [0.5, 1, 0.5]))


def test_seeded():
    a = filled('type: "gaussian"', (4, 5), seed=1)
    assert (a == filled('type: "gaussian"', (4, 5), seed=1)).all()
    assert (a != filled('type: "gaussian"', (4, 5), seed=2)).any()


@pytest.mark.parametrize("text,shape,message", [
    ('type: "nope"', (2,), "unknown filler type 'nope'"),
    ('type: "uniform" sparse: 3', (2, 3), "sparsity is only supported by the gaussian filler"),
    ('type: "bilinear"', (2, 3, 4, 5), "square kernels"),
])
def test_errors(text, shape, message):
    with pytest.raises(ConverterError, match=message):
        filled(text, shape)


def test_build_applies_prototxt_fillers_seeded():
    net = build_network("googlenet")
    for layer in net.layer:
        if layer.type == "InnerProduct" and not layer.inner_product_param.num_output:
            layer.inner_product_param.num_output = 10
    shapes = {"data": (1, 3, 224, 224)}
    a = build_model(net, "TEST", ["deploy"], input_shapes=shapes, seed=5)
    b = build_model(net, "TEST", ["deploy"], input_shapes=shapes, seed=5)
    w, bias = a.caffe_blobs("conv1/7x7_s2")
    bound = math.sqrt(3 / (3 * 7 * 7))
    assert w.abs().max() <= bound and w.abs().max() > 0.95 * bound  # xavier, its std ignored
    assert (bias == f32(0.2)).all()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

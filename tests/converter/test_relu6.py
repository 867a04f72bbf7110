"""ReLU6 (the MobileNetV2 forks' relu6_layer.cpp) against a float64 NumPy transcription of its
Forward_cpu and Backward_cpu, finite differences, ONNX Runtime and OpenCV."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import build_model
from converter.onnx_export import export_onnx, ort_session

from .onnx_parity import op_types, ort_vs_torch
from .opencv_util import opencv_forward
from .util import build_layer, gradcheck, parse_net, rng, run

SHAPE = (2, 3, 5, 7)


def f32(value: float) -> float:
    return float(np.float32(value))


def caffe_relu6(x, slope=0.0):
    slope = f32(slope)
    return np.minimum(np.maximum(x, 0) + slope * np.minimum(x, 0), 6.0)


def caffe_relu6_backward(x, dy, slope=0.0):
    slope = f32(slope)
    return dy * ((x > 0) + slope * (x <= 0)) * (x < 6)


def data(seed=0):
    """Normal values over [-10, 10] plus exact hits on both kinks."""
    x = rng(seed).standard_normal(SHAPE) * 4
    x.flat[:6] = [0.0, 6.0, -0.0, np.nextafter(6.0, 0), np.nextafter(6.0, 7), -3.5]
    return x


def text(slope):
    return 'type: "ReLU6"' + ("" if slope is None else f" relu6_param {{ negative_slope: {slope} }}")


@pytest.mark.parametrize("slope", [None, 0.1, -2.0])
def test_forward_and_backward_match_the_fork(slope):
    """-2.0 takes slope x above 6 for x < -3: top 6, gradient still slope (mask x < 6)."""
    x, dy = data(), rng(1).standard_normal(SHAPE)
    model = build_layer(text(slope), {"x": SHAPE})
    np.testing.assert_array_equal(run(model, x), caffe_relu6(x, slope or 0.0))
    xt = torch.from_numpy(x).requires_grad_(True)
    model(xt)["y"].backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(xt.grad.numpy(), caffe_relu6_backward(x, dy, slope or 0.0))


def test_kinks_are_the_forks():
    model = build_layer(text(None), {"x": (1, 4)})
    x = torch.tensor([[0.0, 6.0, -1.0, 5.5]], dtype=torch.float64, requires_grad=True)
    model(x)["y"].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, 0.0, 0.0, 1.0]])


@pytest.mark.parametrize("slope", [None, 0.25])
def test_gradcheck(slope):
    x = data(3)
    x[(np.abs(x) < 1e-3) | (np.abs(x - 6) < 1e-3)] = 1.0  # off the kinks
    assert gradcheck(build_layer(text(slope), {"x": SHAPE}), x)


def test_in_place():
    net = parse_net('input: "x" input_shape { dim: 2 dim: 3 }\n'
                    'layer { name: "r" type: "ReLU6" bottom: "x" top: "x" }')
    x = np.array([[-1.0, 3.0, 9.0], [6.0, 0.5, -0.0]])
    with torch.no_grad():
        y = build_model(net).double()(torch.from_numpy(x))["x"]
    np.testing.assert_array_equal(y.numpy(), caffe_relu6(x))


@pytest.mark.parametrize("slope", [None, 0.1, -2.0])
def test_onnx(slope, tmp_path):
    x = data(4).astype(np.float32)
    model = build_layer(text(slope), {"x": SHAPE}, double=False)
    export_onnx(model, tmp_path / "r.onnx", output="y", real_inputs=x, tolerance=1e-5)
    (got,) = ort_session((tmp_path / "r.onnx").read_bytes()).run(None, {"x": x})
    np.testing.assert_allclose(got, caffe_relu6(x.astype(np.float64), slope or 0.0), atol=1e-6)


def test_plain_relu6_exports_as_clip():
    _, _, proto = ort_vs_torch(build_layer(text(None), {"x": SHAPE}), {"x": data(5)})
    assert op_types(proto) - {"Constant"} == {"Clip"}


def test_matches_opencv(tmp_path):
    """OpenCV reads ReLU6 (no relu6_param: its schema has none)."""
    x = data(6).astype(np.float32)
    ours = run(build_layer(text(None), {"x": SHAPE}, double=False), x)
    assert np.abs(ours - opencv_forward(text(None), {"x": x}, tmp_path)).max() <= 1e-6

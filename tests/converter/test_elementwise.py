"""Threshold, Clip and Swish against float64 NumPy transcriptions of threshold_layer.cpp,
clip_layer.cpp and swish_layer.cpp (forward and Backward_cpu), ONNX Runtime and OpenCV."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from converter import ConverterError, build_model
from converter.onnx_export import export_onnx, ort_session

from .util import build_layer, gradcheck, layer_net, rng, run

SHAPE = (2, 3, 5, 7)


def f32(value: float) -> float:
    return float(np.float32(value))


def caffe_threshold(x, t=0.0):
    return np.where(x > f32(t), 1.0, 0.0)


def caffe_clip(x, low, high):
    return np.maximum(f32(low), np.minimum(x, f32(high)))


def caffe_clip_backward(x, dy, low, high):
    return dy * ((x >= f32(low)) & (x <= f32(high)))


def caffe_swish(x, beta=1.0):
    return x / (1 + np.exp(-f32(beta) * x))


def caffe_swish_backward(x, dy, beta=1.0):
    beta = f32(beta)
    y, sig = caffe_swish(x, beta), 1 / (1 + np.exp(-beta * x))
    return dy * (beta * y + sig * (1 - beta * y))


def data(seed=0):
    """Normal values plus exact hits on the parameters used below."""
    x = rng(seed).standard_normal(SHAPE) * 2
    x.flat[:6] = [0.0, f32(0.3), f32(-0.75), f32(1.5), f32(-0.3), f32(0.5)]
    return x


@pytest.mark.parametrize("t", [None, 0.3, -0.75])
def test_threshold(t):
    x = data()
    text = 'type: "Threshold"' + ("" if t is None else f" threshold_param {{ threshold: {t} }}")
    model = build_layer(text, {"x": SHAPE})
    np.testing.assert_array_equal(run(model, x), caffe_threshold(x, t or 0.0))
    xt = torch.from_numpy(x).requires_grad_(True)
    assert not model(xt)["y"].requires_grad  # Caffe: Backward NOT_IMPLEMENTED


def test_threshold_is_strict():
    y = run(build_layer('type: "Threshold" threshold_param { threshold: 0.5 }', {"x": (1, 3)}),
            np.array([[0.5, np.nextafter(0.5, 1), 0.25]]))
    np.testing.assert_array_equal(y, [[0.0, 1.0, 0.0]])


CLIPS = [(-0.75, 1.5), (0.3, 0.3), (0.0, 6.0)]


@pytest.mark.parametrize("low,high", CLIPS)
def test_clip(low, high):
    x = data()
    model = build_layer(f'type: "Clip" clip_param {{ min: {low} max: {high} }}', {"x": SHAPE})
    np.testing.assert_array_equal(run(model, x), caffe_clip(x, low, high))
    dy = rng(1).standard_normal(SHAPE)
    xt = torch.from_numpy(x).requires_grad_(True)
    model(xt)["y"].backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(xt.grad.numpy(), caffe_clip_backward(x, dy, low, high))


def test_clip_gradient_passes_at_both_ends():
    model = build_layer('type: "Clip" clip_param { min: -0.75 max: 1.5 }', {"x": (1, 4)})
    x = torch.tensor([[-0.75, 1.5, -0.76, 1.51]], dtype=torch.float64, requires_grad=True)
    model(x)["y"].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[1.0, 1.0, 0.0, 0.0]])


def test_clip_with_min_above_max_gives_min():
    """Caffe's max(min, min(x, max)); torch.clamp would give max."""
    x = data()
    model = build_layer('type: "Clip" clip_param { min: 0.5 max: -0.3 }', {"x": SHAPE})
    np.testing.assert_array_equal(run(model, x), np.full(SHAPE, 0.5))
    xt = torch.from_numpy(x).requires_grad_(True)
    model(xt)["y"].sum().backward()
    assert not xt.grad.any()


def test_clip_gradcheck():
    x = data(3)
    x[np.minimum(np.abs(x + 0.75), np.abs(x - 1.5)) < 1e-3] = 0.1  # off the kinks
    assert gradcheck(build_layer('type: "Clip" clip_param { min: -0.75 max: 1.5 }',
                                 {"x": SHAPE}), x)


def test_clip_needs_min_and_max():
    with pytest.raises(ConverterError, match="needs both min and max"):
        build_model(layer_net('type: "Clip" clip_param { min: 0 }', {"x": SHAPE}))


@pytest.mark.parametrize("beta", [None, 0.5, 2.25])
def test_swish(beta):
    x = data()
    text = 'type: "Swish"' + ("" if beta is None else f" swish_param {{ beta: {beta} }}")
    model = build_layer(text, {"x": SHAPE})
    np.testing.assert_allclose(run(model, x), caffe_swish(x, beta or 1.0), rtol=1e-12,
                               atol=1e-15)
    dy = rng(1).standard_normal(SHAPE)
    xt = torch.from_numpy(x).requires_grad_(True)
    model(xt)["y"].backward(torch.from_numpy(dy))
    np.testing.assert_allclose(xt.grad.numpy(), caffe_swish_backward(x, dy, beta or 1.0),
                               rtol=1e-12, atol=1e-15)
    assert gradcheck(model, x)


ONNX_CASES = ['type: "Threshold" threshold_param { threshold: 0.3 }',
              'type: "Clip" clip_param { min: -0.75 max: 1.5 }',
              'type: "Clip" clip_param { min: 0.5 max: -0.3 }',
              'type: "Swish"', 'type: "Swish" swish_param { beta: 2.25 }']
REFERENCE = [lambda x: caffe_threshold(x, 0.3), lambda x: caffe_clip(x, -0.75, 1.5),
             lambda x: caffe_clip(x, 0.5, -0.3), caffe_swish, lambda x: caffe_swish(x, 2.25)]


@pytest.mark.parametrize("text,reference", list(zip(ONNX_CASES, REFERENCE)), ids=ONNX_CASES)
def test_onnx(text, reference, tmp_path):
    x = data(4).astype(np.float32)
    model = build_layer(text, {"x": SHAPE}, double=False)
    export_onnx(model, tmp_path / "e.onnx", output="y", real_inputs=x, tolerance=1e-5)
    (got,) = ort_session((tmp_path / "e.onnx").read_bytes()).run(None, {"x": x})
    np.testing.assert_allclose(got, reference(x.astype(np.float64)), rtol=1e-5, atol=1e-6)


def opencv_forward(text, x, tmp_path):
    dims = " ".join(f"dim: {d}" for d in x.shape)
    prototxt = tmp_path / "e.prototxt"
    prototxt.write_text(f'input: "x" input_shape {{ {dims} }}\n'
                        f'layer {{ name: "l" bottom: "x" top: "y" {text} }}\n')
    net = cv2.dnn.readNetFromCaffe(str(prototxt))
    net.setInput(x)
    return net.forward("l")


def test_swish_matches_opencv(tmp_path):
    """OpenCV reads Swish (not Threshold or Clip: "Can't create layer")."""
    x = data(5).astype(np.float32)
    ours = run(build_layer('type: "Swish"', {"x": SHAPE}, double=False), x)
    assert np.abs(ours - opencv_forward('type: "Swish"', x, tmp_path)).max() <= 1e-5


def test_opencv_swish_ignores_beta(tmp_path):
    x = data(5).astype(np.float32)
    text = 'type: "Swish" swish_param { beta: 2.25 }'
    theirs = opencv_forward(text, x, tmp_path)
    assert np.abs(theirs - caffe_swish(x.astype(np.float64), 1.0)).max() <= 1e-5
    ours = run(build_layer(text, {"x": SHAPE}, double=False), x)
    assert np.abs(ours - caffe_swish(x.astype(np.float64), 2.25)).max() <= 1e-5

"""MVN against a float64 NumPy transcription of mvn_layer.cpp (Forward_cpu and Backward_cpu),
ONNX Runtime, and OpenCV's Caffe importer."""
from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from torch.autograd.gradcheck import GradcheckError

from converter import ConverterError, build_model
from converter.onnx_export import export_onnx, ort_session

from .util import build_layer, gradcheck, layer_net, rng, run

SHAPE = (2, 3, 5, 7)


def legacy4(shape):
    return tuple(shape) + (1,) * (4 - len(shape))


def caffe_mvn(x, normalize_variance=True, across_channels=False, eps=1e-9):
    """MVNLayer::Forward_cpu on a (num, dim) view; returns the top and the (num, 1) std + eps."""
    n, c, h, w = legacy4(x.shape)
    num = n if across_channels else n * c
    rows = x.reshape(num, -1)
    top = rows - rows.mean(1, keepdims=True)
    std = np.sqrt((top ** 2).mean(1, keepdims=True)) + np.float32(eps)
    if normalize_variance:
        top = top / std
    return top.reshape(n, c, h, w), std


def caffe_mvn_backward(x, dy, normalize_variance=True, across_channels=False, eps=1e-9):
    """MVNLayer::Backward_cpu."""
    top, std = caffe_mvn(x, normalize_variance, across_channels, eps)
    n, c, h, w = top.shape
    num = n if across_channels else n * c
    y, dy = top.reshape(num, -1), dy.reshape(num, -1)
    dim = y.shape[1]
    if not normalize_variance:
        return (dy - dy.mean(1, keepdims=True)).reshape(top.shape)
    diff = y * (y * dy).sum(1, keepdims=True) + dy.sum(1, keepdims=True)
    return ((dy - diff / dim) / std).reshape(top.shape)


def mvn_text(normalize_variance=True, across_channels=False, eps=None):
    parts = [f"normalize_variance: {str(normalize_variance).lower()}",
             f"across_channels: {str(across_channels).lower()}"]
    if eps is not None:
        parts.append(f"eps: {eps}")
    return f'type: "MVN" mvn_param {{ {" ".join(parts)} }}'


CASES = [  # (normalize_variance, across_channels, eps)
    (True, False, None), (True, True, None), (False, False, None), (False, True, None),
    (True, False, 0.25), (True, True, 0.5),
]


@pytest.mark.parametrize("case", CASES, ids=str)
@pytest.mark.parametrize("shape", [SHAPE, (3, 4, 6), (4, 6)], ids=lambda s: "x".join(map(str, s)))
def test_forward_and_caffes_backward(case, shape):
    nv, ac, eps = case
    eps = 1e-9 if eps is None else eps
    x = rng().standard_normal(shape) * 3 + 1
    model = build_layer(mvn_text(*case), {"x": shape})
    want, _ = caffe_mvn(x, nv, ac, eps)
    np.testing.assert_allclose(run(model, x), want, rtol=1e-12, atol=1e-12)
    assert model.blob_shapes()["y"] == legacy4(shape)  # Caffe's top is always 4-D
    dy = rng(1).standard_normal(want.shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    model(xt)["y"].backward(torch.from_numpy(dy))
    want_grad = caffe_mvn_backward(x, dy, nv, ac, eps).reshape(shape)
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_gradient_is_the_derivative_at_the_default_eps(case):
    x = rng(2).standard_normal(SHAPE)
    assert gradcheck(build_layer(mvn_text(*case), {"x": SHAPE}), x)


def test_caffes_backward_is_not_the_derivative_for_a_large_eps():
    """Caffe's Backward_cpu leaves eps out of the std's derivative; we follow Caffe."""
    x = rng(3).standard_normal((1, 1, 2, 3))
    model = build_layer(mvn_text(eps=0.5), {"x": x.shape})
    with pytest.raises(GradcheckError):
        gradcheck(model, x)


def test_eps_is_added_to_the_std():
    """Two values +-1: var 1, std 1, so (x - m)/(1 + eps) = +-1/(1 + eps), not +-1/sqrt(1 + eps)."""
    x = np.array([[[[1.0, -1.0]]]])
    y = run(build_layer(mvn_text(eps=0.5), {"x": x.shape}), x)
    np.testing.assert_allclose(y.ravel(), [1 / 1.5, -1 / 1.5], rtol=1e-15)


def test_half_precision_inputs_keep_float32_statistics():
    """Under autocast a bf16 bottom is normalized in float32; the top keeps the bottom's dtype."""
    x = torch.from_numpy(rng(8).standard_normal(SHAPE) * 3 + 100).to(torch.bfloat16)
    model = build_layer('type: "MVN"', {"x": SHAPE}, double=False)
    y = model(x.requires_grad_(True))["y"]
    assert y.dtype == torch.bfloat16
    want, _ = caffe_mvn(x.detach().double().numpy())
    assert np.abs(y.detach().double().numpy() - want).max() < 0.05  # bf16 rounding of the top
    y.sum().backward()
    assert x.grad.dtype == torch.bfloat16


def test_too_many_axes():
    with pytest.raises(ConverterError, match="1 to 4 axes"):
        build_model(layer_net('type: "MVN"', {"x": (2, 3, 4, 5, 6)}))


@pytest.mark.parametrize("case", CASES, ids=str)
def test_onnx(case, tmp_path):
    nv, ac, eps = case
    x = (rng(5).standard_normal(SHAPE) * 3 + 1).astype(np.float32)
    model = build_layer(mvn_text(*case), {"x": SHAPE}, double=False)
    export_onnx(model, tmp_path / "m.onnx", output="y", real_inputs=x, tolerance=1e-5)
    (got,) = ort_session((tmp_path / "m.onnx").read_bytes()).run(None, {"x": x})
    want, _ = caffe_mvn(x.astype(np.float64), nv, ac, 1e-9 if eps is None else eps)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def opencv_mvn(text, x, tmp_path):
    dims = " ".join(f"dim: {d}" for d in x.shape)
    prototxt = tmp_path / "mvn.prototxt"
    prototxt.write_text(f'input: "x" input_shape {{ {dims} }}\n'
                        f'layer {{ name: "l" bottom: "x" top: "y" {text} }}\n')
    net = cv2.dnn.readNetFromCaffe(str(prototxt))
    net.setInput(x)
    return net.forward("l")  # OpenCV names a layer's output after the layer


@pytest.mark.parametrize("case", CASES[:4], ids=str)
def test_opencv_parity(case, tmp_path):
    x = (rng(6).standard_normal(SHAPE) * 3 + 1).astype(np.float32)
    model = build_layer(mvn_text(*case), {"x": SHAPE}, double=False)
    with torch.no_grad():
        ours = model(torch.from_numpy(x))["y"].numpy()
    assert np.abs(ours - opencv_mvn(mvn_text(*case), x, tmp_path)).max() <= 1e-5


def test_opencv_puts_eps_inside_the_sqrt(tmp_path):
    """OpenCV divides by sqrt(var + eps); Caffe (and we) by sqrt(var) + eps."""
    x = (rng(7).standard_normal(SHAPE)).astype(np.float32)
    theirs = opencv_mvn(mvn_text(eps=0.25), x, tmp_path)
    ours = run(build_layer(mvn_text(eps=0.25), {"x": SHAPE}, double=False), x)
    rows = x.astype(np.float64).reshape(6, -1)
    centered = rows - rows.mean(1, keepdims=True)
    inside = (centered / np.sqrt((centered ** 2).mean(1, keepdims=True) + 0.25)).reshape(SHAPE)
    assert np.abs(theirs - inside).max() <= 1e-5
    assert np.abs(ours - theirs).max() > 1e-2
    assert math.isclose(float(np.abs(ours - caffe_mvn(x.astype(np.float64), eps=0.25)[0]).max()),
                        0, abs_tol=1e-5)

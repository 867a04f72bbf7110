"""Axpy (SENet's axpy_layer.cpp as NVIDIA Caffe 0.17 ships it) against a float64 NumPy
transcription of its Forward_cpu and Backward_cpu, finite differences, ONNX Runtime, and what
OpenCV's importer makes of it."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from converter import ConverterError, build_model

from .onnx_parity import ort_vs_torch
from .opencv_util import opencv_forward
from .util import build_layer, gradcheck, layer_net, rng

X = (2, 3, 5, 4)
TEXT = 'type: "Axpy"'


def caffe_axpy(a, x, y):
    """top = copy of bottom 2, then caffe_axpy(spatial, a[n, c], x[n, c], top[n, c])."""
    top = y.copy()
    n, c = x.shape[:2]
    for i in range(n):
        for j in range(c):
            top[i, j] += a.reshape(n, c)[i, j] * x[i, j]
    return top


def caffe_axpy_backward(a, x, dtop):
    """(da, dx, dy): da = sum over space of dtop x (a gemv), dx = a dtop, dy = dtop."""
    n, c = x.shape[:2]
    da = (dtop * x).reshape(n, c, -1).sum(-1).reshape(a.shape)
    return da, a.reshape(n, c, *([1] * (x.ndim - 2))) * dtop, dtop.copy()


def inputs(a_shape, seed=0):
    g = rng(seed)
    return g.standard_normal(a_shape), g.standard_normal(X), g.standard_normal(X)


@pytest.mark.parametrize("a_shape", [(2, 3, 1, 1), (2, 3)], ids=["NxCx1x1", "NxC"])
def test_forward_and_backward_match_caffe(a_shape):
    a, x, y = inputs(a_shape)
    model = build_layer(TEXT, {"a": a_shape, "x": X, "z": X})
    tensors = [torch.from_numpy(v).requires_grad_(True) for v in (a, x, y)]
    top = model(*tensors)["y"]
    np.testing.assert_allclose(top.detach().numpy(), caffe_axpy(a, x, y), rtol=1e-14, atol=1e-15)
    dtop = rng(1).standard_normal(X)
    top.backward(torch.from_numpy(dtop))
    for got, want in zip(tensors, caffe_axpy_backward(a, x, dtop)):
        np.testing.assert_allclose(got.grad.numpy(), want, rtol=1e-13, atol=1e-14)


def test_gradcheck():
    a, x, y = inputs((2, 3, 1, 1), seed=2)
    assert gradcheck(build_layer(TEXT, {"a": a.shape, "x": X, "z": X}), a, x, y)


@pytest.mark.parametrize("shapes,message", [
    ({"a": (2, 4, 1, 1), "x": X, "z": X}, "must be N x C of bottom 1"),
    ({"a": (2, 3, 2, 1), "x": X, "z": X}, "N x C or N x C x 1 x 1"),
    ({"a": (2, 3, 1, 1), "x": X, "z": (2, 3, 4, 5)}, "must have the shape of bottom 1"),
])
def test_errors_name_the_layer(shapes, message):
    with pytest.raises(ConverterError, match=message) as info:
        build_model(layer_net(TEXT, shapes))
    assert "Axpy" in str(info.value)


def test_onnx():
    a, x, y = inputs((2, 3, 1, 1), seed=3)
    model = build_layer(TEXT, {"a": a.shape, "x": X, "z": X})
    ours, theirs, _ = ort_vs_torch(model, {"a": a, "x": x, "z": y}, dynamic=("a", "x", "z"))
    np.testing.assert_allclose(theirs, ours, rtol=1e-6, atol=1e-6)
    f32 = [v.astype(np.float32).astype(np.float64) for v in (a, x, y)]
    np.testing.assert_allclose(theirs, caffe_axpy(*f32), rtol=1e-5, atol=1e-6)


def test_opencv_scales_the_wrong_bottom(tmp_path):
    """OpenCV's importer turns Axpy into Scale(bottom 2 by bottom 0) + Eltwise(bottom 1): it
    computes a Y + X, not Caffe's a X + Y (ours), with a batch of 1; a batch of 2 it refuses."""
    a, x, y = (v[:1].astype(np.float32) for v in inputs((2, 3, 1, 1), seed=4))
    theirs = opencv_forward(TEXT, {"a": a, "x": x, "z": y}, tmp_path)
    ours = build_layer(TEXT, {"a": a.shape, "x": x.shape, "z": y.shape}, double=False)
    with torch.no_grad():
        ours_xy = ours(*map(torch.from_numpy, (a, x, y)))["y"].numpy()
        ours_yx = ours(*map(torch.from_numpy, (a, y, x)))["y"].numpy()
    assert np.abs(theirs - ours_yx).max() <= 1e-6
    assert np.abs(theirs - ours_xy).max() > 0.1
    a, x, y = (v.astype(np.float32) for v in inputs((2, 3, 1, 1), seed=4))
    with pytest.raises(cv2.error):
        opencv_forward(TEXT, {"a": a, "x": x, "z": y}, tmp_path)

"""SPP against a float64 transcription of spp_layer.cpp (GetPoolingParam per level, Caffe's
pooling from test_pooling.py, flatten, concat), gradients, ONNX Runtime."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from converter import ConverterError, build_model
from converter.onnx_export import export_onnx, ort_session

from .test_pooling import caffe_pool
from .util import build_layer, gradcheck, layer_net, rng, run


def caffe_spp(x, pyramid_height, method):
    """SPPLayer: level l pools with bins = 2^l, kernel = ceil(H / bins), stride = kernel,
    pad = (kernel * bins - H + 1) / 2; height 1 keeps the pooling's 4-D top."""
    levels = []
    for level in range(pyramid_height):
        bins = 2 ** level
        kernel, pad = [], []
        for size in x.shape[2:]:
            k = int(math.ceil(size / float(bins)))
            kernel.append(k)
            pad.append((k * bins - size + 1) // 2)
        levels.append(caffe_pool(x, method, kernel, kernel, pad))
    if pyramid_height == 1:
        return levels[0]
    return np.concatenate([y.reshape(x.shape[0], -1) for y in levels], 1)


def spp_text(height, method):
    return f'type: "SPP" spp_param {{ pyramid_height: {height} pool: {method} }}'


CASES = [((13, 10), 3), ((23, 30), 4), ((7, 9), 2), ((6, 5), 1), ((11, 16), 3)]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("size,height", CASES, ids=str)
def test_spp_matches_caffe(size, height, method):
    x = rng().standard_normal((2, 3, *size))
    model = build_layer(spp_text(height, method), {"x": x.shape})
    want = caffe_spp(x, height, method)
    np.testing.assert_allclose(run(model, x), want, rtol=1e-12, atol=1e-12)
    assert model.blob_shapes()["y"] == want.shape


def test_shapes():
    x_shape = (2, 3, 13, 10)
    assert build_model(layer_net(spp_text(3, "MAX"), {"x": x_shape})).blob_shapes()["y"] == \
        (2, 3 * (1 + 4 + 16))
    assert build_model(layer_net(spp_text(1, "AVE"), {"x": x_shape})).blob_shapes()["y"] == \
        (2, 3, 1, 1)  # pyramid_height 1: the pooling's own top, not flattened


def test_bins_are_caffes_not_adaptive():
    """H = 7 at 2 bins: kernel 4, pad 1, so the bins are rows [-1, 3) and [3, 7); adaptive
    pooling takes [0, 4) and [3, 7). AVE divides the first bin by 4 (the pad row counts).
    (W = 2: kernel 1, pad 0; W = 1 would need pad 1 >= kernel 1, which Caffe refuses.)"""
    x = np.broadcast_to(np.arange(7.0)[:, None], (1, 1, 7, 2)).copy()
    spp_max = run(build_layer(spp_text(2, "MAX"), {"x": x.shape}), x)
    spp_ave = run(build_layer(spp_text(2, "AVE"), {"x": x.shape}), x)
    np.testing.assert_array_equal(spp_max[0, 1:], [2.0, 2.0, 6.0, 6.0])
    np.testing.assert_allclose(spp_ave[0, 1:], np.repeat([(0 + 1 + 2) / 4, (3 + 4 + 5 + 6) / 4], 2))
    adaptive = F.adaptive_max_pool2d(torch.from_numpy(x), (2, 2)).numpy().ravel()
    np.testing.assert_array_equal(adaptive, [3.0, 3.0, 6.0, 6.0])


@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_gradient(method):
    x = rng(3).standard_normal((2, 3, 7, 9))
    assert gradcheck(build_layer(spp_text(3, method), {"x": x.shape}), x)


@pytest.mark.parametrize("text,message", [
    (spp_text(3, "MAX"), "level 2 (4 bins) on a 5x6 input"),
    ('type: "SPP"', "pyramid_height must be at least 1"),
    (spp_text(2, "STOCHASTIC"), "STOCHASTIC is not supported"),
])
def test_errors(text, message):
    with pytest.raises(ConverterError) as err:
        build_model(layer_net(text, {"x": (2, 3, 5, 6)}))
    assert message in str(err.value) and "(SPP)" in str(err.value)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("size,height", CASES, ids=str)
def test_onnx(size, height, method, tmp_path):
    x = rng(4).standard_normal((2, 3, *size)).astype(np.float32)
    model = build_layer(spp_text(height, method), {"x": x.shape}, double=False)
    export_onnx(model, tmp_path / "s.onnx", output="y", real_inputs=x, tolerance=1e-5)
    (got,) = ort_session((tmp_path / "s.onnx").read_bytes()).run(None, {"x": x})
    np.testing.assert_allclose(got, caffe_spp(x.astype(np.float64), height, method), rtol=1e-5,
                               atol=1e-6)

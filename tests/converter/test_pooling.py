"""Pooling against a float64 NumPy transcription of Caffe's PoolingLayer::Forward_cpu."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model
from converter.layers.pooling import CaffePooling, pooled_size

from .util import build_layer, gradcheck, layer_net, rng, run

FLT_MAX = float(np.finfo(np.float32).max)


def caffe_pool(x, method, kernel, stride, pad, ceil=True, global_pooling=False):
    """Caffe's pooling, loop for loop (the AVE 0/0 corner gives 0 here, see pooling.py)."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw) = ((h, w) if global_pooling else kernel), stride, pad

    def size(length, k, s, p):
        out = (math.ceil if ceil else math.floor)((length + 2 * p - k) / s) + 1
        if (ph or pw) and (out - 1) * s >= length + p:
            out -= 1
        return out

    oh, ow = size(h, kh, sh, ph), size(w, kw, sw, pw)
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            hstart, wstart = i * sh - ph, j * sw - pw
            if method == "MAX":
                hend, wend = min(hstart + kh, h), min(wstart + kw, w)
                hstart, wstart = max(hstart, 0), max(wstart, 0)
                window = x[:, :, hstart:hend, wstart:wend].reshape(n, c, -1)
                y[:, :, i, j] = np.maximum(window.max(-1), -FLT_MAX) if window.shape[-1] else -FLT_MAX
            else:
                hend, wend = min(hstart + kh, h + ph), min(wstart + kw, w + pw)
                pool_size = (hend - hstart) * (wend - wstart)
                hstart, wstart, hend, wend = max(hstart, 0), max(wstart, 0), min(hend, h), min(wend, w)
                total = x[:, :, hstart:hend, wstart:wend].sum((2, 3))
                y[:, :, i, j] = total / pool_size if pool_size > 0 else 0.0
    return y


def params_text(method, kernel, stride, pad, ceil=True, global_pooling=False):
    parts = [f"pool: {method}"]
    if global_pooling:
        parts.append("global_pooling: true")
    else:
        parts.append(f"kernel_h: {kernel[0]} kernel_w: {kernel[1]}")
    parts.append(f"stride_h: {stride[0]} stride_w: {stride[1]} pad_h: {pad[0]} pad_w: {pad[1]}")
    if not ceil:
        parts.append("round_mode: FLOOR")
    return f'type: "Pooling" pooling_param {{ {" ".join(parts)} }}'


CASES = [  # (input H, W, kernel, stride, pad, ceil, global)
    ((7, 9), (3, 3), (2, 2), (0, 0), True, False),   # GoogLeNet's max pools: ceil overhang
    ((5, 6), (2, 2), (2, 2), (1, 1), True, False),   # the clip rule drops a window in the pad
    ((4, 4), (3, 3), (2, 2), (1, 1), True, False),   # pytorch#183528's AVE border case
    ((8, 11), (3, 3), (2, 2), (0, 0), True, False),  # AVE overhang: divisor excludes it
    ((7, 9), (3, 2), (2, 1), (1, 0), True, False),   # kernel/stride/pad h and w differ
    ((8, 8), (2, 1), (2, 2), (1, 0), True, False),   # pad_h alone clips the w axis too
    ((9, 7), (3, 3), (2, 2), (1, 1), False, False),  # round_mode FLOOR
    ((9, 7), (4, 4), (3, 3), (3, 2), True, False),   # pad > kernel/2: PyTorch refuses it
    ((6, 5), (7, 6), (2, 2), (0, 0), True, False),   # kernel > input by less than stride -> 1
    ((5, 6), None, (1, 1), (0, 0), True, True),      # global pooling
    ((13, 10), (5, 5), (3, 3), (0, 0), True, False), # GoogLeNet's aux heads (AVE 5/3)
]


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}k{c[1]}s{c[2]}p{c[3]}{'' if c[4] else 'floor'}")
@pytest.mark.parametrize("explicit", [False, True], ids=["native", "explicit"])
def test_forward_matches_caffe(method, case, explicit):
    (h, w), kernel, stride, pad, ceil, global_pooling = case
    x = rng().standard_normal((2, 3, h, w))
    model = build_layer(params_text(method, kernel, stride, pad, ceil, global_pooling),
                        {"x": x.shape})
    model.l.force_explicit = explicit
    want = caffe_pool(x, method, kernel, stride, pad, ceil, global_pooling)
    got = run(model, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert model.blob_shapes()["y"] == want.shape


def test_hand_computed_average_border():
    """4x4 ones, AVE k3 s2 p1: Caffe divides by the window clipped at H + p (3x3, 3x2, 2x2)."""
    model = build_layer(params_text("AVE", (3, 3), (2, 2), (1, 1)), {"x": (1, 1, 4, 4)})
    y = run(model, np.ones((1, 1, 4, 4)))[0, 0]
    assert y[0, 0] == pytest.approx(4 / 9) and y[0, 2] == pytest.approx(2 / 6)
    assert y[2, 2] == pytest.approx(1 / 4) and y[1, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("size,kernel,stride,pad,ceil,want", [
    (112, 3, 2, 0, True, 56),    # GoogLeNet pool1: floor would give 55
    (112, 3, 2, 0, False, 55),
    (32, 1, 2, 0, True, 17),     # pytorch#57178: PyTorch gives 16
    (7, 7, 1, 0, True, 1),       # pool5/7x7_s1
    (14, 5, 3, 0, True, 4),      # loss1/ave_pool
    (5, 2, 2, 1, True, 3),       # clipped from 4
    (6, 7, 1, 0, True, 0),       # GoogLeNet pool5 on 6x6: too small
])
def test_pooled_size(size, kernel, stride, pad, ceil, want):
    assert pooled_size(size, kernel, stride, pad, ceil, clip=pad > 0) == want


def test_window_outside_the_input_warns_and_keeps_caffes_size(caplog):
    """pad 0, kernel < stride: Caffe's last window starts past the input (-FLT_MAX for MAX)."""
    x = rng().standard_normal((1, 2, 6, 4))
    model = build_layer(params_text("MAX", (1, 1), (2, 2), (0, 0)), {"x": x.shape})
    assert "starts outside the input" in caplog.text
    y = run(model, x)
    assert y.shape == (1, 2, 4, 3)  # PyTorch's ceil_mode gives 3x2
    np.testing.assert_array_equal(y, caffe_pool(x, "MAX", (1, 1), (2, 2), (0, 0)))
    assert (y[..., -1] == -FLT_MAX).all()


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("explicit", [False, True], ids=["native", "explicit"])
def test_gradient(method, explicit):
    x = rng(3).standard_normal((2, 3, 6, 5))
    model = build_layer(params_text(method, (3, 3), (2, 2), (1, 1)), {"x": x.shape})
    model.l.force_explicit = explicit
    assert gradcheck(model, x)


@pytest.mark.parametrize("text,message", [
    ('pool: MAX kernel_size: 3 kernel_h: 3 kernel_w: 3', "not both"),
    ('pool: MAX kernel_h: 3', "kernel_size (or kernel_h and kernel_w) is required"),
    ('pool: MAX global_pooling: true kernel_size: 2', "cannot be specified"),
    ('pool: MAX global_pooling: true stride: 2', "only pad = 0 and stride = 1"),
    ('pool: MAX kernel_size: 3 pad: 3', "must be smaller than the kernel"),
    ('pool: STOCHASTIC kernel_size: 3 pad: 1', "padding is implemented only for AVE and MAX"),
    ('pool: AVE kernel_size: 9', "the output would be -3x-2"),
])
def test_errors_name_the_layer(text, message):
    with pytest.raises(ConverterError) as err:
        build_model(layer_net(f'type: "Pooling" pooling_param {{ {text} }}', {"x": (1, 2, 5, 6)}))
    assert message in str(err.value) and "layer 'l' (Pooling)" in str(err.value)


def test_torch_ceil_mode_differs_where_caffe_says():
    """The corner where PyTorch's own ceil_mode disagrees (so the explicit path is used)."""
    torch_size = torch.nn.functional.max_pool2d(torch.zeros(1, 1, 32, 32), 1, 2, ceil_mode=True)
    assert torch_size.shape[-1] == 16
    assert CaffePooling(0, (1, 1), (2, 2), (0, 0), True).output_size(32, 32) == (17, 17)


@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}k{c[1]}s{c[2]}p{c[3]}{'' if c[4] else 'floor'}")
def test_onnx_export_agrees_with_caffe(method, case, tmp_path):
    """Exported as Pad + pooling without ceil_mode, ONNX Runtime gives Caffe's numbers."""
    from converter.onnx_export import export_onnx
    (h, w), kernel, stride, pad, ceil, global_pooling = case
    x = rng().standard_normal((2, 3, h, w)).astype(np.float32)
    model = build_layer(params_text(method, kernel, stride, pad, ceil, global_pooling),
                        {"x": x.shape}, double=False)
    report = export_onnx(model, tmp_path / "pool.onnx", output="y", real_inputs=x, tolerance=1e-5)
    assert report.differences["real inputs"] <= 1e-5
    from converter.onnx_export import ort_session
    (got,) = ort_session((tmp_path / "pool.onnx").read_bytes()).run(None, {"x": x})
    np.testing.assert_allclose(got, caffe_pool(x.astype(np.float64), method, kernel, stride, pad, ceil,
                                               global_pooling), rtol=1e-5, atol=1e-6)


def test_degenerate_average_window_is_not_exported(tmp_path):
    from converter import ConverterError
    from converter.onnx_export import export_onnx
    model = build_layer(params_text("AVE", (1, 1), (3, 3), (0, 0)), {"x": (1, 2, 7, 5)}, double=False)
    with pytest.raises(ConverterError, match="no ONNX form"):
        export_onnx(model, tmp_path / "p.onnx", output="y")

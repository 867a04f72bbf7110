"""STOCHASTIC pooling against float64 transcriptions of pooling_layer.cu's StoPoolForwardTest,
StoPoolForwardTrain and StoPoolBackward (Caffe has no CPU version)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model

from .onnx_parity import ort_vs_torch
from .util import build_layer, gradcheck, layer_net, rng, run


def pooled(length, k, s, ceil=True):
    return (math.ceil if ceil else math.floor)((length - k) / s) + 1


def windows(x, kernel, stride, ceil):
    n, c, h, w = x.shape
    kh, kw = kernel or (h, w)
    sh, sw = stride
    for ph in range(pooled(h, kh, sh, ceil)):
        for pw in range(pooled(w, kw, sw, ceil)):
            hstart, wstart = ph * sh, pw * sw
            yield ph, pw, range(hstart, min(hstart + kh, h)), range(wstart, min(wstart + kw, w))


def shape_out(x, kernel, stride, ceil):
    kh, kw = kernel or x.shape[2:]
    return (*x.shape[:2], pooled(x.shape[2], kh, stride[0], ceil), pooled(x.shape[3], kw, stride[1], ceil))


def caffe_test(x, kernel, stride, ceil=True):
    """StoPoolForwardTest: sum(x^2)/sum(x) over the clipped window, 0 unless sum > 0."""
    y = np.zeros(shape_out(x, kernel, stride, ceil))
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for ph, pw, hs, ws in windows(x, kernel, stride, ceil):
                cumsum = cumvalues = 0.0
                for h in hs:
                    for w in ws:
                        cumsum += x[n, c, h, w]
                        cumvalues += x[n, c, h, w] ** 2
                y[n, c, ph, pw] = cumvalues / cumsum if cumsum > 0 else 0.0
    return y


def caffe_train(x, kernel, stride, u, ceil=True):
    """StoPoolForwardTrain given the uniforms: (top, rand_idx as (h, w) or None)."""
    y = np.zeros(shape_out(x, kernel, stride, ceil))
    index = {}
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for ph, pw, hs, ws in windows(x, kernel, stride, ceil):
                total = sum(x[n, c, h, w] for h in hs for w in ws)
                threshold = u[n, c, ph, pw] * total
                cumsum = 0.0
                for h, w in ((h, w) for h in hs for w in ws):
                    cumsum += x[n, c, h, w]
                    if cumsum >= threshold:
                        y[n, c, ph, pw], index[n, c, ph, pw] = x[n, c, h, w], (h, w)
                        break
    return y, index


def caffe_backward(shape, top_diff, index):
    """StoPoolBackward: each bottom gets the top diffs of the windows that drew it."""
    diff = np.zeros(shape)
    for (n, c, ph, pw), (h, w) in index.items():
        diff[n, c, h, w] += top_diff[n, c, ph, pw]
    return diff


def text(kernel, stride, ceil=True):
    k = "global_pooling: true" if kernel is None else f"kernel_h: {kernel[0]} kernel_w: {kernel[1]}"
    return (f'type: "Pooling" pooling_param {{ pool: STOCHASTIC {k} stride_h: {stride[0]} '
            f'stride_w: {stride[1]} {"" if ceil else "round_mode: FLOOR"} }}')


CASES = [  # (H, W), kernel, stride, ceil
    ((7, 9), (3, 3), (2, 2), True),    # ceil overhang on both axes
    ((6, 5), (2, 3), (2, 1), True),    # kernel and stride h != w
    ((9, 7), (3, 2), (2, 2), False),   # round_mode FLOOR
    ((5, 6), None, (1, 1), True),      # global pooling
    ((5, 8), (1, 1), (2, 3), True),    # kernel < stride: the last column of windows is outside
]
IDS = [f"{c[0]}k{c[1]}s{c[2]}{'' if c[3] else 'floor'}" for c in CASES]


def activations(shape, seed=0):
    """Mostly post-ReLU values (zeros included), some negatives to reach sum <= 0."""
    x = np.maximum(rng(seed).standard_normal(shape), 0)
    x[0, 0] -= 0.3  # negative sums in one channel
    return x


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_test_phase_is_the_weighted_average(case):
    (h, w), kernel, stride, ceil = case
    x = activations((2, 3, h, w))
    model = build_layer(text(kernel, stride, ceil), {"x": x.shape})
    want = caffe_test(x, kernel, stride, ceil)
    assert model.blob_shapes()["y"] == want.shape
    np.testing.assert_allclose(run(model, x), want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_train_phase_samples_as_caffe(case):
    (h, w), kernel, stride, ceil = case
    x = activations((2, 3, h, w), seed=1)
    model = build_layer(text(kernel, stride, ceil), {"x": x.shape}, phase="TRAIN")
    assert model.training
    xt = torch.from_numpy(x).requires_grad_(True)
    torch.manual_seed(5)
    top = model(xt)["y"]
    torch.manual_seed(5)  # the same uniforms, one per output
    u = torch.rand(top.shape, dtype=torch.float64).numpy()
    want, index = caffe_train(x, kernel, stride, u, ceil)
    np.testing.assert_array_equal(top.detach().numpy(), want)
    top_diff = rng(2).standard_normal(top.shape)
    (top * torch.from_numpy(top_diff)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), caffe_backward(x.shape, top_diff, index), rtol=1e-12)


def test_samples_follow_x_over_sum():
    """For x >= 0 the TRAIN draw picks x_i with probability x_i / sum x: its mean is TEST's."""
    x = np.tile(np.array([[0.5, 2.0, 0.0], [1.0, 3.0, 0.25]]), (1000, 1, 1, 1))
    model = build_layer(text(None, (1, 1)), {"x": x.shape}, phase="TRAIN")
    torch.manual_seed(0)
    draws = run(model, x).reshape(-1)
    expected = (x[0] ** 2).sum() / x[0].sum()
    assert abs(draws.mean() - expected) < 0.12  # 4 standard errors of 1000 draws
    assert set(np.unique(draws)) == {0.25, 0.5, 1.0, 2.0, 3.0}  # never the zero
    model.eval()
    assert run(model, x[:1]).item() == pytest.approx(expected, rel=1e-12)


def test_test_phase_gradient():
    x = np.abs(rng(3).standard_normal((2, 3, 6, 5))) + 0.1
    model = build_layer(text((3, 2), (2, 2)), {"x": x.shape})
    assert gradcheck(model, x)


def test_train_phase_gradient_for_fixed_draws():
    from converter.layers.pooling_stochastic import stochastic_sample
    x = torch.from_numpy(np.abs(rng(4).standard_normal((2, 2, 5, 6))) + 0.1)
    u = torch.from_numpy(rng(5).uniform(size=(2, 2, 2, 3)))
    assert torch.autograd.gradcheck(lambda t: stochastic_sample(t, (2, 2), (2, 2), (2, 3), u),
                                    (x.requires_grad_(True),))


def test_padding_is_refused():
    with pytest.raises(ConverterError, match="padding is implemented only for AVE and MAX"):
        build_model(layer_net('type: "Pooling" pooling_param { pool: STOCHASTIC kernel_size: 3 '
                              'pad: 1 }', {"x": (1, 2, 5, 6)}))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_onnx_matches_onnxruntime(case):
    (h, w), kernel, stride, ceil = case
    x = activations((2, 3, h, w), seed=6)
    model = build_layer(text(kernel, stride, ceil), {"x": x.shape}, double=False)
    ours, theirs, _ = ort_vs_torch(model, {"x": x}, dynamic=("x",))
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(theirs, caffe_test(x.astype(np.float32).astype(np.float64), kernel,
                                                  stride, ceil), rtol=1e-5, atol=1e-5)


def test_window_outside_the_input_warns_and_gives_zero(caplog):
    x = activations((1, 2, 5, 8), seed=7) + 1
    model = build_layer(text((1, 1), (2, 3)), {"x": x.shape})
    assert "starts outside the input" in caplog.text
    y = run(model, x)
    assert y.shape == (1, 2, 3, 4) and (y[..., -1] == 0).all() and (y[..., :-1] > 0).all()

"""LRN against float64 NumPy loops written from Caffe's LRNLayer formulas."""
from __future__ import annotations

import numpy as np
import pytest

from converter import ConverterError, build_model

from .util import build_layer, gradcheck, layer_net, rng, run


def across(x, n, alpha, beta, k):
    c = x.shape[1]
    y = np.empty_like(x)
    half = (n - 1) // 2
    for i in range(c):
        lo, hi = max(0, i - half), min(c, i + half + 1)
        scale = k + alpha / n * (x[:, lo:hi] ** 2).sum(1)
        y[:, i] = x[:, i] * scale ** -beta
    return y


def within(x, n, alpha, beta):
    h, w = x.shape[2:]
    half = (n - 1) // 2
    y = np.empty_like(x)
    for i in range(h):
        for j in range(w):
            window = x[:, :, max(0, i - half):i + half + 1, max(0, j - half):j + half + 1]
            y[:, :, i, j] = x[:, :, i, j] * (1 + alpha / n ** 2 * (window ** 2).sum((2, 3))) ** -beta
    return y


@pytest.mark.parametrize("n,alpha,beta,k", [(5, 1e-4, 0.75, 1.0), (3, 2.0, 0.6, 2.5), (1, 0.5, 1.0, 0.3)])
def test_across_channels(n, alpha, beta, k):
    x = rng().standard_normal((2, 7, 4, 5)) * 3
    model = build_layer(f'type: "LRN" lrn_param {{ local_size: {n} alpha: {alpha} beta: {beta} k: {k} }}',
                        {"x": x.shape})
    np.testing.assert_allclose(run(model, x), across(x, n, alpha, beta, k), rtol=1e-6)


def test_defaults_come_from_the_schema():
    x = rng().standard_normal((2, 6, 3, 4))
    model = build_layer('type: "LRN"', {"x": x.shape})
    np.testing.assert_allclose(run(model, x), across(x, 5, 1.0, 0.75, 1.0), rtol=1e-6)


@pytest.mark.parametrize("n", [3, 5])
def test_within_channel_ignores_k(n):
    x = rng().standard_normal((2, 3, 6, 5)) * 2
    model = build_layer(f'type: "LRN" lrn_param {{ local_size: {n} alpha: 0.7 beta: 0.8 k: 9 '
                        f'norm_region: WITHIN_CHANNEL }}', {"x": x.shape})
    np.testing.assert_allclose(run(model, x), within(x, n, 0.7, 0.8), rtol=1e-6)


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
def test_gradient(region):
    x = rng(5).standard_normal((2, 4, 3, 5))
    model = build_layer(f'type: "LRN" lrn_param {{ local_size: 3 alpha: 0.9 beta: 0.75 k: 2 '
                        f'norm_region: {region} }}', {"x": x.shape})
    assert gradcheck(model, x)


def test_even_size_is_refused():
    with pytest.raises(ConverterError, match="odd values for local_size"):
        build_model(layer_net('type: "LRN" lrn_param { local_size: 4 }', {"x": (1, 5, 3, 3)}))


@pytest.mark.parametrize("beta", [0.75, 0.6])
def test_onnx_export_agrees(beta, tmp_path):
    """Exported as x / (k + 1x1 Conv(x^2))^beta; ONNX Runtime gives Caffe's numbers."""
    from converter.onnx_export import export_onnx, ort_session
    x = (rng().standard_normal((2, 7, 4, 5)) * 3).astype(np.float32)
    model = build_layer(f'type: "LRN" lrn_param {{ local_size: 5 alpha: 0.3 beta: {beta} k: 1.5 }}',
                        {"x": x.shape}, double=False)
    export_onnx(model, tmp_path / "lrn.onnx", output="y", real_inputs=x, tolerance=1e-5)
    (got,) = ort_session((tmp_path / "lrn.onnx").read_bytes()).run(None, {"x": x})
    np.testing.assert_allclose(got, across(x.astype(np.float64), 5, np.float32(0.3), np.float32(beta), 1.5),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_across_channels_computes_in_float32_under_autocast(dtype):
    """--fast: CUDA's autocast runs pow in float32 and convolutions in bf16, which once mixed
    dtypes inside LRN's backward; LRN now computes in float32 whatever autocast says and hands
    back the input's dtype (forward and gradient equal the float32 result, rounded)."""
    import torch
    from converter.layers.lrn import AcrossChannelLRN
    lrn = AcrossChannelLRN(5, 0.9, 0.75, 2.0)
    x32 = torch.from_numpy(rng(8).standard_normal((3, 7, 5, 6)).astype(np.float32))
    x = x32.to(getattr(torch, dtype)).requires_grad_()
    dy = torch.from_numpy(rng(9).standard_normal((3, 7, 5, 6)).astype(np.float32))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = lrn(x)
    y.backward(dy.to(x.dtype))
    ref_in = x.detach().float().requires_grad_()
    ref = lrn(ref_in)
    ref.backward(dy.to(x.dtype).float())
    assert y.dtype == x.dtype and x.grad.dtype == x.dtype
    assert torch.equal(y, ref.to(x.dtype))
    assert torch.equal(x.grad, ref_in.grad.to(x.dtype))

"""ConvolutionDepthwise (yonghenglh6's conv_dw_layer.cpp) and DepthwiseConvolution (eric612's
depthwise_conv_layer.cpp) read from their own spellings: a float64 NumPy transcription of
conv_dw_layer.cpp's Forward_cpu, finite differences, ONNX Runtime and OpenCV."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model
from converter.onnx_export import export_onnx, ort_session

from .opencv_util import opencv_forward
from .util import build_layer, gradcheck, layer_net, rng, run

SHAPE = (2, 5, 9, 7)
SPELLINGS = ["ConvolutionDepthwise", "DepthwiseConvolution"]
FILLERS = "weight_filler { type: 'gaussian' std: 0.5 } bias_filler { type: 'uniform' min: -1 max: 1 }"


def caffe_conv_dw(x, weight, bias, kernel, stride, pad, dilation):
    """conv_dw_layer.cpp's loops: each output sums weight[c] over the in-image taps."""
    n, c, h, w = x.shape
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = kernel, stride, pad, dilation
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (w + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    y = np.zeros((n, c, oh, ow))
    for i in range(oh):
        for j in range(ow):
            for a in range(kh):
                for b in range(kw):
                    hi, wi = -ph + i * sh + a * dh, -pw + j * sw + b * dw
                    if 0 <= hi < h and 0 <= wi < w:
                        y[:, :, i, j] += weight[:, 0, a, b] * x[:, :, hi, wi]
    return y if bias is None else y + bias[None, :, None, None]


CASES = [  # (convolution_param inside, kernel, stride, pad, dilation, bias)
    (f"num_output: 5 group: 5 kernel_size: 3 pad: 1 {FILLERS}", (3, 3), (1, 1), (1, 1), (1, 1), True),
    (f"num_output: 5 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 "
     f"bias_term: false {FILLERS}", (3, 2), (2, 1), (1, 0), (1, 1), False),
    (f"kernel_size: 3 stride: 2 dilation: 2 pad: 2 {FILLERS}", (3, 3), (2, 2), (2, 2), (2, 2), True),
]


def _blobs(model):
    params = dict(model.named_parameters())
    weight = next(v for k, v in params.items() if k.endswith("weight")).detach().numpy()
    bias = next((v for k, v in params.items() if k.endswith("bias")), None)
    return weight, None if bias is None else bias.detach().numpy()


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("case", CASES, ids=["k3p1", "k3x2s2x1", "dilated"])
def test_forward_matches_the_fork(spelling, case):
    inside, kernel, stride, pad, dilation, has_bias = case
    model = build_layer(f'type: "{spelling}" convolution_param {{ {inside} }}', {"x": SHAPE}, seed=4)
    weight, bias = _blobs(model)
    assert weight.shape == (SHAPE[1], 1, *kernel)  # Caffe's C x 1 x kh x kw blob
    assert (bias is not None) == has_bias and (bias is None or bias.shape == (SHAPE[1],))
    x = rng().standard_normal(SHAPE)
    want = caffe_conv_dw(x, weight, bias, kernel, stride, pad, dilation)
    np.testing.assert_allclose(run(model, x), want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_gradcheck(spelling):
    model = build_layer(f'type: "{spelling}" convolution_param {{ {CASES[1][0]} }}',
                        {"x": (2, 5, 6, 4)}, seed=5)
    assert gradcheck(model, rng(2).standard_normal((2, 5, 6, 4)))


@pytest.mark.parametrize("spelling", SPELLINGS)
@pytest.mark.parametrize("inside,message", [
    ("num_output: 10 kernel_size: 3", "num_output 10 differs from the bottom's 5 channels"),
    ("num_output: 5 group: 2 kernel_size: 3", "group 2 is neither"),
    ("num_output: 5", "kernel_size"),
])
def test_errors_name_the_layer(spelling, inside, message):
    net = layer_net(f'type: "{spelling}" convolution_param {{ {inside} }}', {"x": SHAPE})
    with pytest.raises(ConverterError, match=message) as info:
        build_model(net)
    assert spelling in str(info.value) and "'l'" in str(info.value)


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_onnx(spelling, tmp_path):
    x = rng(3).standard_normal(SHAPE).astype(np.float32)
    model = build_layer(f'type: "{spelling}" convolution_param {{ {CASES[2][0]} }}', {"x": SHAPE},
                        seed=6, double=False)
    export_onnx(model, tmp_path / "dw.onnx", output="y", real_inputs=x, tolerance=1e-4)
    (got,) = ort_session((tmp_path / "dw.onnx").read_bytes()).run(None, {"x": x})
    weight, bias = _blobs(model)
    want = caffe_conv_dw(x.astype(np.float64), weight, bias, (3, 3), (2, 2), (2, 2), (2, 2))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_convolution_depthwise_matches_opencv(tmp_path):
    """OpenCV renames ConvolutionDepthwise to Convolution (it has no DepthwiseConvolution)."""
    text = f'type: "ConvolutionDepthwise" convolution_param {{ {CASES[0][0]} }}'
    model = build_layer(text, {"x": SHAPE}, seed=7, double=False)
    x = rng(8).standard_normal(SHAPE).astype(np.float32)
    theirs = opencv_forward(text, {"x": x}, tmp_path, model=model)
    with torch.no_grad():
        ours = model(torch.from_numpy(x))["y"].numpy()
    assert np.abs(ours - theirs).max() <= 1e-5

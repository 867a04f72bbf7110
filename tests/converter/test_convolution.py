"""Convolution and Deconvolution against float64 NumPy references (Caffe's im2col arithmetic)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model

from .util import build_layer, gradcheck, layer_net, rng, run


def conv_ref(x, w, b, stride, pad, dilation, group):
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    oh = (h + 2 * ph - (dh * (kh - 1) + 1)) // sh + 1
    ow = (wd + 2 * pw - (dw * (kw - 1) + 1)) // sw + 1
    y = np.zeros((n, o, oh, ow))
    per_group = o // group
    for oc in range(o):
        g = oc // per_group
        for i in range(oh):
            for j in range(ow):
                patch = xp[:, g * cg:(g + 1) * cg, i * sh:i * sh + dh * (kh - 1) + 1:dh,
                           j * sw:j * sw + dw * (kw - 1) + 1:dw]
                y[:, oc, i, j] = (patch * w[oc]).sum((1, 2, 3))
    return y + (b[None, :, None, None] if b is not None else 0)


def deconv_ref(x, w, b, stride, pad, dilation, group):
    n, c, h, wd = x.shape
    _, og, kh, kw = w.shape
    (sh, sw), (ph, pw), (dh, dw) = stride, pad, dilation
    full = np.zeros((n, og * group, (h - 1) * sh + dh * (kh - 1) + 1, (wd - 1) * sw + dw * (kw - 1) + 1))
    cg = c // group
    for ic in range(c):
        g = ic // cg
        for a in range(kh):
            for bb in range(kw):
                contrib = x[:, ic, :, :, None] * w[ic, None, None, None, :, a, bb]  # n h w og
                full[:, g * og:(g + 1) * og, a * dh:a * dh + (h - 1) * sh + 1:sh,
                     bb * dw:bb * dw + (wd - 1) * sw + 1:sw] += contrib.transpose(0, 3, 1, 2)
    y = full[:, :, ph:full.shape[2] - ph, pw:full.shape[3] - pw]
    return y + (b[None, :, None, None] if b is not None else 0)


def blobs(model):
    return [t.detach().numpy() for t in model.caffe_blobs("l")]


CONV_CASES = [  # text, stride, pad, dilation, group
    ("num_output: 4 kernel_size: 3", (1, 1), (0, 0), (1, 1), 1),
    ("num_output: 6 kernel_size: 3 stride: 2 pad: 1 group: 2", (2, 2), (1, 1), (1, 1), 2),
    ("num_output: 5 kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 2",
     (2, 1), (1, 2), (1, 1), 1),
    ("num_output: 4 kernel_size: 3 dilation: 2 pad: 2", (1, 1), (2, 2), (2, 2), 1),
    ("num_output: 3 kernel_size: 2 kernel_size: 3 stride: 1 stride: 2 pad: 0 pad: 1 bias_term: false",
     (1, 2), (0, 1), (1, 1), 1),
]


@pytest.mark.parametrize("text,stride,pad,dilation,group", CONV_CASES)
def test_convolution(text, stride, pad, dilation, group):
    x = rng().standard_normal((2, 6, 7, 9))
    model = build_layer(f'type: "Convolution" convolution_param {{ {text} '
                        f'weight_filler {{ type: "gaussian" }} bias_filler {{ type: "gaussian" }} }}',
                        {"x": x.shape})
    w, *b = blobs(model)
    want = conv_ref(x, w, b[0] if b else None, stride, pad, dilation, group)
    np.testing.assert_allclose(run(model, x), want, rtol=1e-10, atol=1e-10)
    assert model.blob_shapes()["y"] == want.shape


@pytest.mark.parametrize("text,stride,pad,dilation,group", [
    ("num_output: 4 kernel_size: 3 stride: 2", (2, 2), (0, 0), (1, 1), 1),
    ("num_output: 4 kernel_size: 4 stride: 2 pad: 1 group: 2", (2, 2), (1, 1), (1, 1), 2),
    ("num_output: 3 kernel_h: 3 kernel_w: 2 stride_h: 1 stride_w: 3 pad_h: 1 dilation: 2",
     (1, 3), (1, 0), (2, 2), 1),
])
def test_deconvolution(text, stride, pad, dilation, group):
    x = rng().standard_normal((2, 6, 5, 4))
    model = build_layer(f'type: "Deconvolution" convolution_param {{ {text} '
                        f'weight_filler {{ type: "gaussian" }} bias_filler {{ type: "gaussian" }} }}',
                        {"x": x.shape})
    w, b = blobs(model)
    assert w.shape[:2] == (6, model.net.layer[0].convolution_param.num_output // group)
    want = deconv_ref(x, w, b, stride, pad, dilation, group)
    np.testing.assert_allclose(run(model, x), want, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("kind", ["Convolution", "Deconvolution"])
def test_gradient(kind):
    x = rng(2).standard_normal((2, 4, 5, 4))
    model = build_layer(f'type: "{kind}" convolution_param {{ num_output: 2 kernel_size: 3 '
                        f'stride: 2 pad: 1 group: 2 weight_filler {{ type: "gaussian" }} '
                        f'bias_filler {{ type: "gaussian" }} }}', {"x": x.shape})
    assert gradcheck(model, x)


def test_default_fillers_are_caffes_zeros():
    model = build_layer('type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 }',
                        {"x": (1, 3, 2, 2)})
    assert all((t == 0).all() for t in model.caffe_blobs("l"))


@pytest.mark.parametrize("text,message", [
    ("num_output: 4", "kernel_size (or kernel_h and kernel_w) is required"),
    ("num_output: 4 kernel_size: 3 kernel_h: 3 kernel_w: 3", "not both"),
    ("num_output: 4 kernel_size: 1 kernel_size: 2 kernel_size: 3", "once per spatial dimension"),
    ("num_output: 4 kernel_size: 3 group: 4", "not a multiple of group 4"),
    ("num_output: 3 kernel_size: 3 group: 2", "num_output 3 is not a multiple of group 2"),
    ("kernel_size: 3", "num_output must be set"),
    ("num_output: 2 kernel_size: 9", "larger than the padded input"),
])
def test_errors(text, message):
    with pytest.raises(ConverterError) as err:
        build_model(layer_net(f'type: "Convolution" convolution_param {{ {text} }}',
                              {"x": (1, 6, 5, 7)}))
    assert message in str(err.value) and "layer 'l' (Convolution)" in str(err.value)


def test_stock_module_is_used():
    model = build_layer('type: "Convolution" convolution_param { num_output: 2 kernel_size: 1 }',
                        {"x": (1, 3, 2, 2)})
    assert type(model.l) is torch.nn.Conv2d

"""Upsample (the YOLOv3 forks' upsample_layer.cpp) and Interp (DeepLab v2's interp_layer.cpp
with util/interp.cpp) against float64 NumPy transcriptions of their forward and backward,
finite differences, ONNX Runtime and OpenCV (which has Interp but no Upsample)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model

from .onnx_parity import ort_vs_torch
from .opencv_util import opencv_forward
from .util import build_layer, gradcheck, layer_net, rng, run

SHAPE = (2, 3, 5, 7)


# ---- Upsample ---------------------------------------------------------------------------

def yolo_upsample(x, scale):
    """Forward_cpu: out[h, w] = in[h / scale, w / scale] (integer division)."""
    n, c, h, w = x.shape
    rows, cols = np.arange(h * scale) // scale, np.arange(w * scale) // scale
    return x[:, :, rows][:, :, :, cols]


def yolo_upsample_backward(dy, scale):
    """Backward_cpu: each bottom pixel sums its scale x scale block of the top's diff."""
    n, c, h, w = dy.shape
    return dy.reshape(n, c, h // scale, scale, w // scale, scale).sum((3, 5))


def upsample(scale):
    return 'type: "Upsample"' + ("" if scale is None else f" upsample_param {{ scale: {scale} }}")


@pytest.mark.parametrize("scale", [None, 2, 3, 7])
def test_upsample_matches_the_fork(scale):
    s = scale or 1
    x = rng().standard_normal(SHAPE)
    model = build_layer(upsample(scale), {"x": SHAPE})
    xt = torch.from_numpy(x).requires_grad_(True)
    y = model(xt)["y"]
    np.testing.assert_array_equal(y.detach().numpy(), yolo_upsample(x, s))
    dy = rng(1).standard_normal(y.shape)
    y.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(xt.grad.numpy(), yolo_upsample_backward(dy, s), rtol=1e-12,
                               atol=1e-13)


def test_upsample_gradcheck():
    assert gradcheck(build_layer(upsample(2), {"x": SHAPE}), rng(2).standard_normal(SHAPE))


@pytest.mark.parametrize("scale", [2, 3])
def test_upsample_onnx(scale):
    x = rng(3).standard_normal(SHAPE)
    ours, theirs, _ = ort_vs_torch(build_layer(upsample(scale), {"x": SHAPE}), {"x": x},
                                   dynamic=("x",))
    np.testing.assert_array_equal(theirs, yolo_upsample(x.astype(np.float32), scale))
    np.testing.assert_array_equal(theirs, ours)


@pytest.mark.parametrize("text,shapes,message", [
    (upsample(2), {"x": SHAPE, "m": SHAPE}, "SegNet's max-unpooling"),
    (upsample(0), {"x": SHAPE}, "at least 1"),
    (upsample(2), {"x": (2, 3, 5)}, "4 axes"),
])
def test_upsample_errors_name_the_layer(text, shapes, message):
    with pytest.raises(ConverterError, match=message) as info:
        build_model(layer_net(text, shapes))
    assert "Upsample" in str(info.value)


# ---- Interp -----------------------------------------------------------------------------

def _ratio(n1, n2, ratio_dtype):
    return ratio_dtype(n1 - 1) / ratio_dtype(n2 - 1) if n2 > 1 else ratio_dtype(0.0)


def _taps(n1, n2, ratio_dtype):
    """caffe_cpu_interp2's rows: (h1, h1p, h1lambda) per output row h2."""
    r = _ratio(n1, n2, ratio_dtype)
    out = []
    for h2 in range(n2):
        h1r = ratio_dtype(r * ratio_dtype(h2))
        h1 = int(h1r)
        out.append((h1, 1 if h1 < n1 - 1 else 0, float(h1r - ratio_dtype(h1))))
    return out


def deeplab_interp(x, pad_beg, pad_end, size, ratio_dtype=np.float64):
    """InterpLayer::Forward_cpu: crop, then caffe_cpu_interp2 (same size: a copy). Caffe keeps
    the ratio in float; np.float32 reproduces that, np.float64 is the exact ratio."""
    crop = x[:, :, -pad_beg:x.shape[2] + pad_end, -pad_beg:x.shape[3] + pad_end]
    (h1, w1), (h2, w2) = crop.shape[2:], size
    if (h1, w1) == (h2, w2):
        return crop.copy()
    y = np.zeros(x.shape[:2] + tuple(size))
    for i, (r, rp, rl) in enumerate(_taps(h1, h2, ratio_dtype)):
        for j, (c, cp, cl) in enumerate(_taps(w1, w2, ratio_dtype)):
            y[:, :, i, j] = ((1 - rl) * ((1 - cl) * crop[:, :, r, c] + cl * crop[:, :, r, c + cp])
                             + rl * ((1 - cl) * crop[:, :, r + rp, c] + cl * crop[:, :, r + rp, c + cp]))
    return y


def deeplab_interp_backward(dy, shape, pad_beg, pad_end):
    """caffe_cpu_interp2_backward into the cropped window of a zeroed bottom diff."""
    dx = np.zeros(shape)
    crop = dx[:, :, -pad_beg:shape[2] + pad_end, -pad_beg:shape[3] + pad_end]
    (h1, w1), (h2, w2) = crop.shape[2:], dy.shape[2:]
    if (h1, w1) == (h2, w2):
        crop += dy
        return dx
    for i, (r, rp, rl) in enumerate(_taps(h1, h2, np.float64)):
        for j, (c, cp, cl) in enumerate(_taps(w1, w2, np.float64)):
            g = dy[:, :, i, j]
            crop[:, :, r, c] += (1 - rl) * (1 - cl) * g
            crop[:, :, r, c + cp] += (1 - rl) * cl * g
            crop[:, :, r + rp, c] += rl * (1 - cl) * g
            crop[:, :, r + rp, c + cp] += rl * cl * g
    return dx


INTERPS = [  # (interp_param inside, pad_beg, pad_end, top size for SHAPE)
    ("zoom_factor: 2", 0, 0, (9, 13)),                         # H + (H - 1)(zoom - 1)
    ("zoom_factor: 3 pad_beg: -1 pad_end: -1", -1, -1, (7, 13)),
    ("shrink_factor: 2", 0, 0, (3, 4)),                         # (H - 1) / shrink + 1
    ("shrink_factor: 2 zoom_factor: 3", 0, 0, (7, 10)),         # shrink, then zoom
    ("height: 11 width: 4", 0, 0, (11, 4)),
    ("height: 1 width: 1", 0, 0, (1, 1)),
    ("height: 4 width: 6 pad_beg: -1 pad_end: 0", -1, 0, (4, 6)),  # the crop itself: a copy
]


def interp(inside):
    return f'type: "Interp" interp_param {{ {inside} }}'


@pytest.mark.parametrize("case", INTERPS, ids=[c[0] for c in INTERPS])
def test_interp_matches_deeplab(case):
    inside, pad_beg, pad_end, size = case
    x = rng().standard_normal(SHAPE)
    model = build_layer(interp(inside), {"x": SHAPE})
    xt = torch.from_numpy(x).requires_grad_(True)
    y = model(xt)["y"]
    assert tuple(y.shape[2:]) == size
    np.testing.assert_allclose(y.detach().numpy(), deeplab_interp(x, pad_beg, pad_end, size),
                               rtol=1e-12, atol=1e-13)
    dy = rng(1).standard_normal(y.shape)
    y.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(xt.grad.numpy(), deeplab_interp_backward(dy, SHAPE, pad_beg, pad_end),
                               rtol=1e-12, atol=1e-13)


def test_interp_to_the_size_of_bottom_1():
    x = rng().standard_normal(SHAPE)
    model = build_layer('type: "Interp"', {"x": SHAPE, "r": (2, 1, 8, 3)})
    y = run(model, x, rng(9).standard_normal((2, 1, 8, 3)))
    np.testing.assert_allclose(y, deeplab_interp(x, 0, 0, (8, 3)), rtol=1e-12, atol=1e-13)


def test_interp_gradcheck():
    model = build_layer(interp("zoom_factor: 3 pad_beg: -1 pad_end: -1"), {"x": SHAPE})
    assert gradcheck(model, rng(2).standard_normal(SHAPE))


@pytest.mark.parametrize("case", INTERPS[:5], ids=[c[0] for c in INTERPS[:5]])
def test_interp_onnx(case):
    """ONNX Resize (linear, align_corners) in float32 against Caffe's float32 ratio."""
    inside, pad_beg, pad_end, size = case
    x = rng(3).standard_normal(SHAPE)
    ours, theirs, _ = ort_vs_torch(build_layer(interp(inside), {"x": SHAPE}), {"x": x},
                                   dynamic=("x",))
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)
    caffe = deeplab_interp(x.astype(np.float32).astype(np.float64), pad_beg, pad_end, size,
                           ratio_dtype=np.float32)
    np.testing.assert_allclose(theirs, caffe, rtol=1e-5, atol=1e-5)


OPENCV_SAME = [INTERPS[i] for i in (0, 4, 5)]


@pytest.mark.parametrize("case", OPENCV_SAME, ids=[c[0] for c in OPENCV_SAME])
def test_interp_matches_opencv(case, tmp_path):
    inside, pad_beg, pad_end, size = case
    x = rng(4).standard_normal(SHAPE).astype(np.float32)
    theirs = opencv_forward(interp(inside), {"x": x}, tmp_path)
    ours = run(build_layer(interp(inside), {"x": SHAPE}, double=False), x)
    assert theirs.shape == ours.shape
    assert np.abs(ours - theirs).max() <= 1e-5


@pytest.mark.parametrize("inside,same_as", [
    ("zoom_factor: 3 pad_beg: -1 pad_end: -1", "zoom_factor: 3"),
    ("shrink_factor: 2 zoom_factor: 3", "zoom_factor: 3"),
])
def test_opencv_ignores_the_crop_and_the_shrink(inside, same_as, tmp_path):
    """OpenCV's Interp reads zoom_factor and height/width only: pad_beg/pad_end and
    shrink_factor are dropped (shrink_factor alone gives it an empty top)."""
    x = rng(5).standard_normal(SHAPE).astype(np.float32)
    theirs = opencv_forward(interp(inside), {"x": x}, tmp_path)
    ours = run(build_layer(interp(inside), {"x": SHAPE}, double=False), x)
    assert theirs.shape != ours.shape
    without = run(build_layer(interp(same_as), {"x": SHAPE}, double=False), x)
    assert np.abs(without - theirs).max() <= 1e-5


@pytest.mark.parametrize("inside,message", [
    ("", "needs zoom_factor, shrink_factor, or height and width"),
    ("height: 4", "needs zoom_factor"),
    ("zoom_factor: 2 pad_beg: 1", "must be <= 0"),
    ("zoom_factor: 0", "zoom_factor must be positive"),
    ("shrink_factor: 2 pad_beg: -3 pad_end: -2", "leaves"),
])
def test_interp_errors_name_the_layer(inside, message):
    with pytest.raises(ConverterError, match=message) as info:
        build_model(layer_net(interp(inside), {"x": SHAPE}))
    assert "Interp" in str(info.value)

"""Floor-rounded pooling under its three spellings: BVLC master's round_mode: FLOOR, NVIDIA
Caffe's torch_pooling: true, and the forks' ceil_mode: false (BVLC PR #3057), each against the
float64 transcription of pooling_layer.cpp in test_pooling.py, ONNX Runtime and OpenCV (which
reads ceil_mode only)."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from converter import ConverterError, build_model
from converter.onnx_export import export_onnx, ort_session

from .opencv_util import opencv_forward
from .test_pooling import caffe_pool
from .util import build_layer, gradcheck, layer_net, rng, run

FLOOR = {"round_mode": "round_mode: FLOOR", "torch_pooling": "torch_pooling: true",
         "ceil_mode": "ceil_mode: false"}
CEIL = {"default": "", "round_mode": "round_mode: CEIL", "torch_pooling": "torch_pooling: false",
        "ceil_mode": "ceil_mode: true"}
CASES = [  # (input H, W, kernel, stride, pad): ceil and floor give different sizes
    ((8, 11), (3, 3), (2, 2), (0, 0)),   # 8: ceil 4, floor 3
    ((6, 5), (2, 2), (2, 2), (1, 1)),    # 5 with pad 1: ceil 4 clipped to 3, floor 3; 6: 4 both
    ((9, 6), (3, 2), (2, 3), (1, 0)),
]


def text(method, case, spelling):
    _, (kh, kw), (sh, sw), (ph, pw) = case
    return (f'type: "Pooling" pooling_param {{ pool: {method} kernel_h: {kh} kernel_w: {kw} '
            f'stride_h: {sh} stride_w: {sw} pad_h: {ph} pad_w: {pw} {spelling} }}')


def data(case, seed=0):
    return rng(seed).standard_normal((2, 3, *case[0]))


@pytest.mark.parametrize("spelling", FLOOR)
@pytest.mark.parametrize("method", ["MAX", "AVE"])
@pytest.mark.parametrize("case", CASES, ids=["8x11k3s2", "6x5k2s2p1", "9x6k3x2s2x3p1x0"])
def test_floor_spellings_match_caffe(spelling, method, case):
    x = data(case)
    y = run(build_layer(text(method, case, FLOOR[spelling]), {"x": x.shape}), x)
    want = caffe_pool(x, method, *case[1:], ceil=False)
    assert y.shape == want.shape
    np.testing.assert_allclose(y, want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("spelling", CEIL)
def test_ceil_spellings_keep_caffes_default(spelling):
    case = CASES[0]
    x = data(case)
    y = run(build_layer(text("MAX", case, CEIL[spelling]), {"x": x.shape}), x)
    np.testing.assert_array_equal(y, caffe_pool(x, "MAX", *case[1:], ceil=True))
    assert y.shape[2] == 4


def test_agreeing_spellings_together():
    case = CASES[0]
    x = data(case)
    both = f'{FLOOR["round_mode"]} {FLOOR["ceil_mode"]} {FLOOR["torch_pooling"]}'
    y = run(build_layer(text("AVE", case, both), {"x": x.shape}), x)
    np.testing.assert_allclose(y, caffe_pool(x, "AVE", *case[1:], ceil=False), rtol=1e-12)


@pytest.mark.parametrize("spellings", [("round_mode: CEIL", "ceil_mode: false"),
                                       ("round_mode: FLOOR", "torch_pooling: false"),
                                       ("torch_pooling: true", "ceil_mode: true")])
def test_contradicting_spellings_are_an_error(spellings):
    net = layer_net(text("MAX", CASES[0], " ".join(spellings)), {"x": (2, 3, 8, 11)})
    with pytest.raises(ConverterError, match="ask for different rounding") as info:
        build_model(net)
    assert all(s in str(info.value) for s in spellings) and "Pooling" in str(info.value)


def test_torch_pooling_says_how_it_is_read(caplog):
    with caplog.at_level(logging.WARNING):
        build_layer(text("MAX", CASES[0], FLOOR["torch_pooling"]), {"x": (2, 3, 8, 11)})
    assert "TensorRT" in caplog.text and "NVIDIA Caffe itself ignores" in caplog.text


@pytest.mark.parametrize("spelling", FLOOR)
def test_gradcheck(spelling):
    case = CASES[1]
    x = data(case, seed=2)
    assert gradcheck(build_layer(text("AVE", case, FLOOR[spelling]), {"x": x.shape}), x)


@pytest.mark.parametrize("spelling", FLOOR)
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_onnx(spelling, method, tmp_path):
    case = CASES[2]
    x = data(case, seed=3).astype(np.float32)
    model = build_layer(text(method, case, FLOOR[spelling]), {"x": x.shape}, double=False)
    export_onnx(model, tmp_path / "p.onnx", output="y", real_inputs=x, tolerance=1e-5)
    (got,) = ort_session((tmp_path / "p.onnx").read_bytes()).run(None, {"x": x})
    want = caffe_pool(x.astype(np.float64), method, *case[1:], ceil=False)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("spelling", FLOOR)
@pytest.mark.parametrize("method", ["MAX", "AVE"])
def test_matches_opencv(spelling, method, tmp_path):
    """OpenCV's schema has ceil_mode but neither round_mode nor torch_pooling: it gets the same
    layer spelled with ceil_mode: false."""
    for case in CASES:
        x = data(case, seed=4).astype(np.float32)
        ours = run(build_layer(text(method, case, FLOOR[spelling]), {"x": x.shape}, double=False), x)
        theirs = opencv_forward(text(method, case, FLOOR["ceil_mode"]), {"x": x}, tmp_path)
        assert ours.shape == theirs.shape
        assert np.abs(ours - theirs).max() <= 1e-6

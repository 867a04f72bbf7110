"""ShuffleChannel (ShuffleNet's shuffle_channel_layer.cpp) against a float64 NumPy transcription
of its Resize_cpu forward and backward, finite differences, ONNX Runtime and OpenCV."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model

from .onnx_parity import ort_vs_torch
from .opencv_util import opencv_forward
from .util import build_layer, gradcheck, layer_net, rng, run

SHAPE = (2, 12, 5, 3)


def resize_cpu(x, rows, columns):
    """The fork's Resize_cpu per sample: block (i, j) of a rows x columns grid to (j, i)."""
    y = np.empty_like(x)
    for i in range(rows):
        for j in range(columns):
            y[:, j * rows + i] = x[:, i * columns + j]
    return y


def caffe_shuffle(x, group):
    return resize_cpu(x, group, x.shape[1] // group)


def caffe_shuffle_backward(dy, group):
    return resize_cpu(dy, dy.shape[1] // group, group)


def text(group):
    return 'type: "ShuffleChannel"' + ("" if group is None else
                                       f" shuffle_channel_param {{ group: {group} }}")


@pytest.mark.parametrize("group", [None, 2, 3, 4, 12])
def test_forward_and_backward_match_the_fork(group):
    x, dy = rng().standard_normal(SHAPE), rng(1).standard_normal(SHAPE)
    model = build_layer(text(group), {"x": SHAPE})
    np.testing.assert_array_equal(run(model, x), caffe_shuffle(x, group or 1))
    xt = torch.from_numpy(x).requires_grad_(True)
    model(xt)["y"].backward(torch.from_numpy(dy))
    np.testing.assert_array_equal(xt.grad.numpy(), caffe_shuffle_backward(dy, group or 1))


def test_group_3_by_hand():
    """Channels 0..5 in 3 groups of 2 come out as 0 2 4 1 3 5."""
    x = np.arange(6.0).reshape(1, 6, 1, 1)
    y = run(build_layer(text(3), {"x": x.shape}), x)
    np.testing.assert_array_equal(y.ravel(), [0, 2, 4, 1, 3, 5])


def test_gradcheck():
    assert gradcheck(build_layer(text(4), {"x": SHAPE}), rng(2).standard_normal(SHAPE))


@pytest.mark.parametrize("inside,shape,message", [
    ("shuffle_channel_param { group: 5 }", SHAPE, "group 5 does not divide the 12 channels"),
    ("shuffle_channel_param { group: 0 }", SHAPE, "group must be greater than 0"),
    ("", (2, 12), "4 axes"),
])
def test_errors_name_the_layer(inside, shape, message):
    with pytest.raises(ConverterError, match=message) as info:
        build_model(layer_net(f'type: "ShuffleChannel" {inside}', {"x": shape}))
    assert "ShuffleChannel" in str(info.value)


def test_onnx_with_a_dynamic_batch():
    x = rng(3).standard_normal(SHAPE)
    ours, theirs, _ = ort_vs_torch(build_layer(text(3), {"x": SHAPE}), {"x": x}, dynamic=("x",))
    np.testing.assert_array_equal(theirs, caffe_shuffle(x.astype(np.float32), 3))
    np.testing.assert_array_equal(theirs, ours)


@pytest.mark.parametrize("group", [3, 4])
def test_matches_opencv(group, tmp_path):
    x = rng(4).standard_normal(SHAPE).astype(np.float32)
    theirs = opencv_forward(text(group), {"x": x}, tmp_path)
    np.testing.assert_array_equal(run(build_layer(text(group), {"x": SHAPE}, double=False), x),
                                  theirs)

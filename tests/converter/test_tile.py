"""Tile against a float64 transcription of tile_layer.cpp (Forward_cpu and Backward_cpu)."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model
from converter.onnx_export import export_onnx, ort_session

from .util import build_layer, gradcheck, layer_net, rng, run

SHAPE = (2, 3, 5, 7)


def caffe_tile(x, axis, tiles):
    """TileLayer::Forward_cpu: each of the outer_dim blocks of count(axis) values copied
    `tiles` times in a row."""
    axis = axis + x.ndim if axis < 0 else axis
    outer, inner = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
    blocks = x.reshape(outer, inner)
    top = np.concatenate([np.concatenate([blocks[i]] * tiles) for i in range(outer)])
    shape = list(x.shape)
    shape[axis] *= tiles
    return top.reshape(shape)


def caffe_tile_backward(dy, x_shape, axis, tiles):
    axis = axis + len(x_shape) if axis < 0 else axis
    outer, inner = math.prod(x_shape[:axis]), math.prod(x_shape[axis:])
    return dy.reshape(outer, tiles, inner).sum(1).reshape(x_shape)


CASES = [(1, 3), (0, 2), (2, 4), (-1, 2), (3, 1)]  # (axis, tiles)


def tile_text(axis, tiles):
    return f'type: "Tile" tile_param {{ axis: {axis} tiles: {tiles} }}'


@pytest.mark.parametrize("axis,tiles", CASES)
def test_tile_matches_caffe(axis, tiles):
    x = rng().standard_normal(SHAPE)
    model = build_layer(tile_text(axis, tiles), {"x": SHAPE})
    want = caffe_tile(x, axis, tiles)
    np.testing.assert_array_equal(run(model, x), want)
    assert model.blob_shapes()["y"] == want.shape
    reps = [1] * 4
    reps[axis] = tiles
    np.testing.assert_array_equal(want, np.tile(x, reps))  # numpy.tile, not repeat
    dy = rng(1).standard_normal(want.shape)
    xt = torch.from_numpy(x).requires_grad_(True)
    model(xt)["y"].backward(torch.from_numpy(dy))
    np.testing.assert_allclose(xt.grad.numpy(), caffe_tile_backward(dy, SHAPE, axis, tiles),
                               rtol=1e-14)
    assert gradcheck(model, x)


def test_default_axis_is_channels():
    x = np.arange(6.0).reshape(1, 2, 3)
    y = run(build_layer('type: "Tile" tile_param { tiles: 2 }', {"x": x.shape}), x)
    np.testing.assert_array_equal(y[0], [[0, 1, 2], [3, 4, 5], [0, 1, 2], [3, 4, 5]])


@pytest.mark.parametrize("text,message", [
    ('type: "Tile"', "must be specified"),
    ('type: "Tile" tile_param { tiles: 0 }', "must be positive"),
    ('type: "Tile" tile_param { tiles: 2 axis: 4 }', "axis 4 is out of range"),
])
def test_errors(text, message):
    with pytest.raises(ConverterError, match=message):
        build_model(layer_net(text, {"x": SHAPE}))


@pytest.mark.parametrize("axis,tiles", CASES)
def test_onnx(axis, tiles, tmp_path):
    x = rng(2).standard_normal(SHAPE).astype(np.float32)
    model = build_layer(tile_text(axis, tiles), {"x": SHAPE}, double=False)
    export_onnx(model, tmp_path / "t.onnx", output="y", real_inputs=x, tolerance=1e-5)
    (got,) = ort_session((tmp_path / "t.onnx").read_bytes()).run(None, {"x": x})
    np.testing.assert_array_equal(got, caffe_tile(x, axis, tiles))

"""Flatten, Reshape and Crop against NumPy."""
from __future__ import annotations

import numpy as np
import pytest

from converter import ConverterError, build_model

from .util import build_layer, gradcheck, layer_net, rng, run

X = (2, 3, 4, 5)


@pytest.mark.parametrize("param,shape", [("", (2, 60)), ("flatten_param { axis: 2 }", (2, 3, 20)),
                                         ("flatten_param { axis: 1 end_axis: 2 }", (2, 12, 5)),
                                         ("flatten_param { axis: 0 end_axis: -2 }", (24, 5))])
def test_flatten(param, shape):
    x = rng().standard_normal(X)
    model = build_layer(f'type: "Flatten" {param}', {"x": X})
    np.testing.assert_array_equal(run(model, x), x.reshape(shape))


@pytest.mark.parametrize("param,shape", [
    ("shape { dim: 0 dim: -1 }", (2, 60)),
    ("shape { dim: 0 dim: 3 dim: 20 }", (2, 3, 20)),
    ("shape { dim: -1 dim: 10 }", (12, 10)),
    ("shape { dim: 2 dim: 2 } axis: 2 num_axes: 1", (2, 3, 2, 2, 5)),
    ("shape { dim: 1 } axis: 1 num_axes: 0", (2, 1, 3, 4, 5)),
    ("shape { dim: 0 dim: 1 } axis: -2", (2, 3, 4, 5, 1)),
    ("shape { dim: 6 dim: 4 } axis: 0 num_axes: 3", (6, 4, 5)),
])
def test_reshape(param, shape):
    x = rng().standard_normal(X)
    model = build_layer(f'type: "Reshape" reshape_param {{ {param} }}', {"x": X})
    got = run(model, x)
    assert got.shape == shape == model.blob_shapes()["y"]
    np.testing.assert_array_equal(got, x.reshape(shape))


def test_reshape_keeps_the_batch_symbolic():
    import torch
    model = build_layer('type: "Reshape" reshape_param { shape { dim: 0 dim: -1 } }', {"x": X})
    assert model(torch.zeros(7, 3, 4, 5, dtype=torch.float64))["y"].shape == (7, 60)


@pytest.mark.parametrize("param,message", [("shape { dim: -1 dim: -1 }", "at most one"),
                                           ("shape { dim: 7 dim: -1 }", "cannot infer"),
                                           ("shape { dim: 2 dim: 3 }", "holds 6 values")])
def test_reshape_errors(param, message):
    with pytest.raises(ConverterError, match=message):
        build_model(layer_net(f'type: "Reshape" reshape_param {{ {param} }}', {"x": X}))


@pytest.mark.parametrize("param,slices", [
    ("", (slice(None), slice(None), slice(0, 2), slice(0, 3))),
    ("crop_param { axis: 2 offset: 1 }", (slice(None), slice(None), slice(1, 3), slice(1, 4))),
    ("crop_param { axis: 1 offset: 1 offset: 2 offset: 0 }",
     (slice(None), slice(1, 3), slice(2, 4), slice(0, 3))),
])
def test_crop(param, slices):
    r = rng()
    x, like = r.standard_normal((2, 4, 6, 7)), r.standard_normal((2, 2, 2, 3))
    model = build_layer(f'type: "Crop" {param}', {"x": x.shape, "like": like.shape})
    want = x[slices]
    if "axis: 1" not in param:
        want = want[:, :4]
    np.testing.assert_array_equal(run(model, x, like), want)
    assert gradcheck(model, x, like, wrt=(0,))


def test_crop_too_far():
    with pytest.raises(ConverterError, match="invalid crop"):
        build_model(layer_net('type: "Crop" crop_param { offset: 5 }',
                              {"x": (2, 4, 6, 7), "like": (2, 4, 2, 3)}))

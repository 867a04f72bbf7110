"""InnerProduct (axis, transpose, bias_term) and Dropout against NumPy."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model

from .util import build_layer, gradcheck, layer_net, rng, run

FILL = 'weight_filler { type: "gaussian" } bias_filler { type: "gaussian" }'


@pytest.mark.parametrize("axis,transpose,bias", [(1, False, True), (2, False, True), (1, True, True),
                                                 (-1, True, False), (0, False, True)])
def test_inner_product(axis, transpose, bias):
    x = rng().standard_normal((2, 3, 4, 5))
    model = build_layer(f'type: "InnerProduct" inner_product_param {{ num_output: 6 axis: {axis} '
                        f'transpose: {str(transpose).lower()} bias_term: {str(bias).lower()} {FILL} }}',
                        {"x": x.shape})
    blobs = [t.detach().numpy() for t in model.caffe_blobs("l")]
    a = axis % 4
    k = math.prod(x.shape[a:])
    assert blobs[0].shape == ((k, 6) if transpose else (6, k))
    flat = x.reshape(math.prod(x.shape[:a]), k)
    want = flat @ (blobs[0] if transpose else blobs[0].T) + (blobs[1] if bias else 0)
    got = run(model, x)
    assert got.shape == (*x.shape[:a], 6)
    np.testing.assert_allclose(got.reshape(-1, 6), want, rtol=1e-10, atol=1e-12)


def test_gradient():
    x = rng(1).standard_normal((2, 3, 2, 2))
    model = build_layer(f'type: "InnerProduct" inner_product_param {{ num_output: 4 {FILL} }}',
                        {"x": x.shape})
    assert gradcheck(model, x)


def test_num_output_unset_explains_digits():
    with pytest.raises(ConverterError, match="num_output is not set.*DIGITS"):
        build_model(layer_net('type: "InnerProduct"', {"x": (2, 3)}))


def test_dropout_scales_at_train_time_only():
    x = np.ones((4, 3, 20, 25))
    model = build_layer('type: "Dropout" dropout_param { dropout_ratio: 0.4 }', {"x": x.shape},
                        phase="TRAIN")
    assert model.training and model.phase == "TRAIN"
    torch.manual_seed(0)
    y = run(model, x)
    kept = y != 0
    np.testing.assert_allclose(y[kept], 1 / 0.6)
    assert abs(kept.mean() - 0.6) < 0.02
    model.eval()
    assert model.phase == "TEST"
    np.testing.assert_array_equal(run(model, x), x)

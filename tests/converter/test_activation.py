"""Neuron layers against NumPy transcriptions of Caffe's formulas, with gradient checks."""
from __future__ import annotations

import numpy as np
import pytest

from converter import ConverterError, build_model

from .util import build_layer, gradcheck, layer_net, rng, run

SHAPE = (2, 3, 4, 5)


def f32(value: float) -> float:
    """A prototxt float as Caffe stores it."""
    return float(np.float32(value))


def bnll(x):
    return np.where(x > 0, x + np.log1p(np.exp(-np.abs(x))), np.log1p(np.exp(np.minimum(x, 50))))


CASES = {  # layer text -> (reference, input transform keeping the domain valid)
    'type: "ReLU"': (lambda x: np.maximum(x, 0), None),
    'type: "ReLU" relu_param { negative_slope: 0.125 }':
        (lambda x: np.maximum(x, 0) + 0.125 * np.minimum(x, 0), None),
    'type: "ELU" elu_param { alpha: 0.7 }': (lambda x: np.where(x > 0, x, f32(0.7) * (np.exp(x) - 1)), None),
    'type: "ELU"': (lambda x: np.where(x > 0, x, np.exp(x) - 1), None),
    'type: "Sigmoid"': (lambda x: 1 / (1 + np.exp(-x)), None),
    'type: "TanH"': (np.tanh, None),
    'type: "AbsVal"': (np.abs, None),
    'type: "BNLL"': (bnll, None),
    'type: "Power" power_param { power: 2.5 scale: 0.5 shift: 3 }':
        (lambda x: (3 + 0.5 * x) ** 2.5, lambda x: np.clip(x, -5, None)),
    'type: "Power" power_param { power: 2 }': (lambda x: x ** 2, None),
    'type: "Power" power_param { scale: 0.0125 }': (lambda x: f32(0.0125) * x, None),
    'type: "Power" power_param { power: 3 scale: 0 shift: 2 }': (lambda x: np.full_like(x, 8.0), None),
    'type: "Exp"': (np.exp, None),
    'type: "Exp" exp_param { base: 2 scale: 0.5 shift: 1.5 }': (lambda x: 2 ** (1.5 + 0.5 * x), None),
    'type: "Log"': (np.log, lambda x: np.abs(x) + 0.5),
    'type: "Log" log_param { base: 10 scale: 2 shift: 1 }':
        (lambda x: np.log10(1 + 2 * x), lambda x: np.abs(x) + 0.1),
}


@pytest.mark.parametrize("text", CASES)
def test_forward_and_gradient(text):
    reference, domain = CASES[text]
    x = rng().standard_normal(SHAPE) * 2
    if domain:
        x = domain(x)
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences away from kinks
    model = build_layer(text, {"x": SHAPE})
    np.testing.assert_allclose(run(model, x), reference(x), rtol=1e-12, atol=1e-12)
    assert gradcheck(model, x)


@pytest.mark.parametrize("shared", [False, True])
def test_prelu(shared):
    x = rng().standard_normal(SHAPE)
    filler = 'filler { type: "uniform" min: -1 max: 1 }'
    model = build_layer(f'type: "PReLU" prelu_param {{ channel_shared: {str(shared).lower()} {filler} }}',
                        {"x": SHAPE})
    (a,) = [t.detach().numpy() for t in model.caffe_blobs("l")]
    assert a.shape == (() if shared else (3,))
    slope = a if shared else a[None, :, None, None]
    np.testing.assert_allclose(run(model, x), np.maximum(x, 0) + slope * np.minimum(x, 0), rtol=1e-12)
    assert gradcheck(model, x)


def test_prelu_default_filler_is_a_quarter():
    model = build_layer('type: "PReLU"', {"x": SHAPE})
    assert (model.caffe_blobs("l")[0] == 0.25).all()


def test_in_place_is_allowed_for_neurons():
    net_text = layer_net('type: "ReLU"', {"x": SHAPE}, tops=("x",))
    model = build_model(net_text)
    assert model.outputs == ("x",)


@pytest.mark.parametrize("text", ['type: "Exp" exp_param { base: -2 }', 'type: "Log" log_param { base: 0 }'])
def test_bad_base(text):
    with pytest.raises(ConverterError, match="base must be strictly positive"):
        build_model(layer_net(text, {"x": SHAPE}))

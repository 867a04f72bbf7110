"""Concat, Slice, Split, Silence, Eltwise against NumPy."""
from __future__ import annotations

import numpy as np
import pytest

from converter import ConverterError, build_model

from .util import build_layer, gradcheck, layer_net, rng, run


@pytest.mark.parametrize("param,axis", [("", 1), ("concat_param { axis: 2 }", 2),
                                        ("concat_param { concat_dim: 3 }", 3),
                                        ("concat_param { axis: -1 }", 3)])
def test_concat(param, axis):
    r = rng()
    shapes = [list((2, 3, 4, 5)) for _ in range(3)]
    for i, s in enumerate(shapes):
        s[axis] += i
    xs = [r.standard_normal(s) for s in shapes]
    model = build_layer(f'type: "Concat" {param}', {f"x{i}": tuple(s) for i, s in enumerate(shapes)})
    np.testing.assert_array_equal(run(model, *xs), np.concatenate(xs, axis))
    assert gradcheck(model, *xs)


def test_concat_shape_mismatch():
    with pytest.raises(ConverterError, match="same shape except on axis 1"):
        build_model(layer_net('type: "Concat"', {"a": (2, 3, 4, 5), "b": (2, 3, 4, 6)}))


def test_concat_axis_and_concat_dim_conflict():
    with pytest.raises(ConverterError, match="not both"):
        build_model(layer_net('type: "Concat" concat_param { axis: 1 concat_dim: 1 }',
                              {"a": (2, 3), "b": (2, 3)}))


@pytest.mark.parametrize("param,sizes", [("slice_param { slice_point: 1 slice_point: 4 }", [1, 3, 3]),
                                         ("", [3, 3, 1][:0] or None),
                                         ("slice_param { slice_dim: 1 slice_point: 2 slice_point: 6 }", [2, 4, 1])])
def test_slice(param, sizes):
    x = rng().standard_normal((2, 7, 3, 4)) if sizes else rng().standard_normal((2, 6, 3, 4))
    tops = ("a", "b", "c")
    model = build_layer(f'type: "Slice" {param}', {"x": x.shape}, tops=tops)
    edges = np.cumsum([0] + (sizes or [2, 2, 2]))
    for top, lo, hi in zip(tops, edges, edges[1:]):
        np.testing.assert_array_equal(run(model, x, top=top), x[:, lo:hi])
    assert gradcheck(model, x, top="b")


def test_slice_bad_points():
    with pytest.raises(ConverterError, match="slice_point"):
        build_model(layer_net('type: "Slice" slice_param { slice_point: 3 }', {"x": (2, 7)},
                              tops=("a", "b", "c")))
    with pytest.raises(ConverterError, match="do not split into 2 equal parts"):
        build_model(layer_net('type: "Slice"', {"x": (2, 7)}, tops=("a", "b")))


def test_split_and_silence():
    x = rng().standard_normal((2, 3, 4))
    model = build_model(layer_net('type: "Split"', {"x": x.shape}, tops=("a", "b")))
    assert model.outputs == ("a", "b")
    np.testing.assert_array_equal(run(model.double(), x, top="b"), x)
    silenced = build_model(layer_net('type: "Silence"', {"x": x.shape}, tops=()))
    assert silenced.outputs == ()


E_SHAPE = (2, 3, 4, 5)


@pytest.mark.parametrize("param,reference", [
    ("operation: SUM", lambda a, b, c: a + b + c),
    ("operation: SUM coeff: 0.5 coeff: -2 coeff: 1", lambda a, b, c: 0.5 * a - 2 * b + c),
    ("operation: PROD", lambda a, b, c: a * b * c),
    ("operation: MAX", lambda a, b, c: np.maximum(np.maximum(a, b), c)),
])
def test_eltwise(param, reference):
    r = rng()
    xs = [r.standard_normal(E_SHAPE) for _ in range(3)]
    model = build_layer(f'type: "Eltwise" eltwise_param {{ {param} }}',
                        {f"x{i}": E_SHAPE for i in range(3)})
    np.testing.assert_allclose(run(model, *xs), reference(*xs), rtol=1e-14)
    assert gradcheck(model, *xs)


def test_eltwise_max_ties_go_to_the_first_bottom():
    import torch
    model = build_layer('type: "Eltwise" eltwise_param { operation: MAX }', {"a": (2, 3), "b": (2, 3)})
    a = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    b = torch.ones(2, 3, dtype=torch.float64, requires_grad=True)
    model(a, b)["y"].sum().backward()
    assert (a.grad == 1).all() and (b.grad == 0).all()


@pytest.mark.parametrize("param,message", [("coeff: 1", "one coefficient per bottom"),
                                           ("operation: PROD coeff: 1 coeff: 2", "only takes coefficients for SUM")])
def test_eltwise_errors(param, message):
    with pytest.raises(ConverterError, match=message):
        build_model(layer_net(f'type: "Eltwise" eltwise_param {{ {param} }}', {"a": (2, 3), "b": (2, 3)}))

"""ArgMax and Reduction against float64 NumPy transcriptions of argmax_layer.cpp and
reduction_layer.cpp, with gradient checks and ONNX Runtime parity."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model
from converter.onnx_export import export_onnx, ort_session

from .util import build_layer, gradcheck, layer_net, rng, run

SHAPE = (2, 3, 5, 7)


def f32(value: float) -> float:
    return float(np.float32(value))


def caffe_argmax(x, top_k=1, out_max_val=False, axis=None):
    """ArgMaxLayer::Reshape + Forward_cpu, index arithmetic and all; the sort is
    std::greater<pair<value, index>>, i.e. by (value, index) descending."""
    if axis is not None:
        axis = axis + x.ndim if axis < 0 else axis
        shape = list(x.shape)
        shape[axis] = top_k
        dim, axis_dist = x.shape[axis], math.prod(x.shape[axis + 1:])
    else:
        shape = [1] * max(x.ndim, 3)
        shape[0], shape[2] = x.shape[0], top_k
        if out_max_val:
            shape[1] = 2
        dim, axis_dist = math.prod(x.shape[1:]), 1
    bottom, top = x.ravel(), np.zeros(math.prod(shape))
    for i in range(x.size // dim):
        pairs = [(bottom[(i // axis_dist * dim + j) * axis_dist + i % axis_dist], j)
                 for j in range(dim)]
        best = sorted(pairs, reverse=True)[:top_k]
        for j, (value, index) in enumerate(best):
            if out_max_val and axis is not None:
                top[(i // axis_dist * top_k + j) * axis_dist + i % axis_dist] = value
            elif out_max_val:
                top[2 * i * top_k + j] = index
                top[2 * i * top_k + top_k + j] = value
            else:
                top[(i // axis_dist * top_k + j) * axis_dist + i % axis_dist] = index
    return top.reshape(shape)


def argmax_text(top_k=1, out_max_val=False, axis=None):
    parts = [f"top_k: {top_k}", f"out_max_val: {str(out_max_val).lower()}"]
    if axis is not None:
        parts.append(f"axis: {axis}")
    return f'type: "ArgMax" argmax_param {{ {" ".join(parts)} }}'


ARGMAX_CASES = [  # (top_k, out_max_val, axis)
    (1, False, None), (3, False, None), (4, True, None),
    (1, False, 1), (2, True, 1), (3, False, 2), (5, True, -1), (2, False, 0),
]


def tied(shape, seed=0):
    """Few distinct values, so most maxima are ties."""
    return rng(seed).integers(-2, 2, shape).astype(np.float64)


@pytest.mark.parametrize("case", ARGMAX_CASES, ids=str)
@pytest.mark.parametrize("data", ["distinct", "tied"])
def test_argmax_matches_caffe(case, data):
    x = rng().standard_normal(SHAPE) if data == "distinct" else tied(SHAPE)
    model = build_layer(argmax_text(*case), {"x": SHAPE})
    want = caffe_argmax(x, *case)
    got = run(model, x)
    assert model.blob_shapes()["y"] == want.shape
    np.testing.assert_array_equal(got, want)


def test_argmax_ties_go_to_the_highest_index():
    """Caffe's pair comparison, where torch.argmax (and numpy) pick the first maximum."""
    x = np.array([[3.0, 7.0, 1.0, 7.0, 7.0, 2.0]])
    model = build_layer(argmax_text(top_k=4, out_max_val=True), {"x": x.shape})
    y = run(model, x)
    assert y.shape == (1, 2, 4)  # 2-axis bottom: the top still gets 3 axes
    np.testing.assert_array_equal(y[0, 0], [4, 3, 1, 0])
    np.testing.assert_array_equal(y[0, 1], [7, 7, 7, 3])
    assert int(torch.argmax(torch.from_numpy(x))) == 1


def test_argmax_top_shape_for_a_4_axis_bottom():
    model = build_model(layer_net(argmax_text(top_k=3, out_max_val=True), {"x": SHAPE}))
    assert model.blob_shapes()["y"] == (2, 2, 3, 1)


def test_argmax_has_no_gradient():
    x = torch.from_numpy(rng().standard_normal(SHAPE)).requires_grad_(True)
    model = build_layer(argmax_text(2, True, 1), {"x": SHAPE})
    assert not model(x)["y"].requires_grad


@pytest.mark.parametrize("text,message", [
    (argmax_text(top_k=0), "top_k must not be less than 1"),
    (argmax_text(top_k=106), "flattened size per sample (105)"),
    (argmax_text(top_k=4, axis=1), "dimension of axis 1 (3)"),
    (argmax_text(axis=4), "axis 4 is out of range"),
])
def test_argmax_errors(text, message):
    with pytest.raises(ConverterError) as err:
        build_model(layer_net(text, {"x": SHAPE}))
    assert message in str(err.value) and "(ArgMax)" in str(err.value)


@pytest.mark.parametrize("case", ARGMAX_CASES[:-1], ids=str)  # not axis 0: the batch is dynamic
def test_argmax_onnx_keeps_caffes_tie_order(case, tmp_path):
    """TopK on the reversed axis: ONNX Runtime gives Caffe's indices, ties included."""
    x = tied(SHAPE, seed=4).astype(np.float32)
    model = build_layer(argmax_text(*case), {"x": SHAPE}, double=False)
    export_onnx(model, tmp_path / "a.onnx", output="y", real_inputs=x, tolerance=1e-5)
    (got,) = ort_session((tmp_path / "a.onnx").read_bytes()).run(None, {"x": x})
    np.testing.assert_array_equal(got, caffe_argmax(x.astype(np.float64), *case))


# -- Reduction ------------------------------------------------------------------------------

def caffe_reduction(x, operation="SUM", axis=0, coeff=1.0):
    """ReductionLayer: the tail from axis flattened, one value per leading position."""
    axis = axis + x.ndim if axis < 0 else axis
    num, dim = math.prod(x.shape[:axis]), math.prod(x.shape[axis:])
    rows = x.reshape(num, dim)
    coeff = f32(coeff) / (dim if operation == "MEAN" else 1)
    value = {"SUM": rows.sum(1), "MEAN": rows.sum(1), "ASUM": np.abs(rows).sum(1),
             "SUMSQ": (rows * rows).sum(1)}[operation]
    return (value * coeff).reshape(x.shape[:axis])


REDUCTION_CASES = [  # (operation, axis, coeff)
    ("SUM", 0, 1.0), ("SUM", 1, 0.3), ("ASUM", 2, 1.0), ("ASUM", 1, -2.5),
    ("SUMSQ", -1, 1.0), ("SUMSQ", 3, 0.7), ("MEAN", 1, 1.0), ("MEAN", 2, 3.0), ("MEAN", 0, 0.5),
]


def reduction_text(operation, axis, coeff):
    return (f'type: "Reduction" reduction_param {{ operation: {operation} axis: {axis} '
            f'coeff: {coeff} }}')


@pytest.mark.parametrize("case", REDUCTION_CASES, ids=str)
def test_reduction_matches_caffe(case):
    x = rng().standard_normal(SHAPE)
    x[np.abs(x) < 1e-3] = 0.5  # keep finite differences off |x|'s kink
    model = build_layer(reduction_text(*case), {"x": SHAPE})
    want = caffe_reduction(x, *case)
    np.testing.assert_allclose(run(model, x), want, rtol=1e-12, atol=1e-12)
    assert model.blob_shapes()["y"] == want.shape
    assert gradcheck(model, x)


def test_reduction_defaults_sum_everything():
    x = rng().standard_normal(SHAPE)
    y = run(build_layer('type: "Reduction"', {"x": SHAPE}), x)
    assert y.shape == () and y == pytest.approx(x.sum(), abs=1e-12)


def test_reduction_asum_gradient_is_zero_at_zero():
    """Caffe's caffe_cpu_sign(0) = 0."""
    x = torch.tensor([[0.0, -2.0, 3.0]], dtype=torch.float64, requires_grad=True)
    model = build_layer(reduction_text("ASUM", 1, 2.0), {"x": (1, 3)})
    model(x)["y"].sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), [[0.0, -2.0, 2.0]])


@pytest.mark.parametrize("case", REDUCTION_CASES, ids=str)
def test_reduction_onnx(case, tmp_path):
    x = rng(2).standard_normal(SHAPE).astype(np.float32)
    model = build_layer(reduction_text(*case), {"x": SHAPE}, double=False)
    # the export's self-check feeds N(0, 50) inputs: sums of squares near 1e5, where float32
    # rounding alone is 1e-2; the parity asked for is checked below, relative, on unit inputs
    report = export_onnx(model, tmp_path / "r.onnx", output="y", real_inputs=x, tolerance=0.1)
    assert report.differences["real inputs"] <= 1e-5
    (got,) = ort_session((tmp_path / "r.onnx").read_bytes()).run(None, {"x": x})
    np.testing.assert_allclose(got, caffe_reduction(x.astype(np.float64), *case), rtol=1e-5,
                               atol=1e-5)

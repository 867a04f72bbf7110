"""Filter and BatchReindex against NumPy transcriptions of their Forward_cpu / Backward_cpu."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model

from .onnx_parity import op_types, ort_vs_torch
from .util import build_layer, gradcheck, layer_net, rng, run


def caffe_filter(bottoms, selector):
    """Reshape + Forward_cpu: items whose selector value is non-zero, in order."""
    keep = [n for n in range(selector.shape[0]) if selector.reshape(-1)[n]]
    return [b[keep] for b in bottoms], keep


def caffe_filter_backward(shape, top_diff, keep):
    """Backward_cpu: kept items get their top diff, the others 0."""
    diff = np.zeros(shape)
    for i, n in enumerate(keep):
        diff[n] = top_diff[i]
    return diff


FILTER = 'type: "Filter"'


def test_filter_two_blobs():
    r = rng()
    a, b = r.standard_normal((6, 3, 5)), r.standard_normal((6, 2))
    selector = np.array([0, 1.0, 0, -2.5, 0.25, 0]).reshape(6, 1, 1)
    model = build_layer(FILTER, {"a": a.shape, "b": b.shape, "s": selector.shape}, tops=("ya", "yb"))
    assert model.blob_shapes()["ya"] == (6, 3, 5)  # Caffe's set-up shape: all items
    (want_a, want_b), keep = caffe_filter([a, b], selector)
    assert keep == [1, 3, 4]
    np.testing.assert_array_equal(run(model, a, b, selector, top="ya"), want_a)
    np.testing.assert_array_equal(run(model, a, b, selector, top="yb"), want_b)


def test_filter_backward_is_caffes():
    r = rng(1)
    x, selector = r.standard_normal((5, 4, 3)), np.array([1.0, 0, 0, 1, 1])
    model = build_layer(FILTER, {"x": x.shape, "s": (5,)})
    xt = torch.from_numpy(x).requires_grad_(True)
    top = model(xt, torch.from_numpy(selector))["y"]
    top_diff = r.standard_normal(top.shape)
    (top * torch.from_numpy(top_diff)).sum().backward()
    np.testing.assert_array_equal(xt.grad.numpy(), caffe_filter_backward(x.shape, top_diff, [0, 3, 4]))
    assert gradcheck(model, x, selector, wrt=(0,))


def test_filter_can_keep_nothing():
    model = build_layer(FILTER, {"x": (3, 2), "s": (3, 1)})
    assert run(model, np.ones((3, 2)), np.zeros((3, 1))).shape == (0, 2)


@pytest.mark.parametrize("shapes,tops,message", [
    ({"x": (4, 2), "s": (4, 2)}, ("y",), "must be N x 1 x ... x 1"),
    ({"x": (4, 2), "s": (3, 1)}, ("y",), "selector's 3 items"),
    ({"x": (4, 2), "s": (4,)}, ("y", "z"), "one top per bottom to filter"),
])
def test_filter_errors(shapes, tops, message):
    with pytest.raises(ConverterError, match=message):
        build_model(layer_net(FILTER, shapes, tops))


def test_filter_onnx_matches_onnxruntime():
    r = rng(2)
    x, selector = r.standard_normal((6, 3, 4)), np.array([1.0, 0, 1, 1, 0, 1]).reshape(6, 1)
    model = build_layer(FILTER, {"x": x.shape, "s": selector.shape}, double=False)
    ours, theirs, proto = ort_vs_torch(model, {"x": x, "s": selector})
    assert theirs.shape == (4, 3, 4)
    np.testing.assert_array_equal(theirs, ours)
    assert "NonZero" in op_types(proto)


def caffe_batch_reindex(x, permut):
    out = np.zeros((permut.size, *x.shape[1:]))
    for n, value in enumerate(permut):
        out[n] = x[int(value)]
    return out


def caffe_batch_reindex_backward(shape, top_diff, permut):
    diff = np.zeros(shape)
    for n, value in enumerate(permut):
        diff[int(value)] += top_diff[n]
    return diff


REINDEX = 'type: "BatchReindex"'


def test_batch_reindex_forward_and_backward():
    r = rng(3)
    x = r.standard_normal((4, 3, 2, 5))
    permut = np.array([3, 0, 0, 2.5, 1, 3, 3])  # repeats, a fraction, item 2 kept once
    model = build_layer(REINDEX, {"x": x.shape, "r": permut.shape})
    assert model.blob_shapes()["y"] == (7, 3, 2, 5)
    np.testing.assert_array_equal(run(model, x, permut), caffe_batch_reindex(x, permut))
    xt = torch.from_numpy(x).requires_grad_(True)
    top = model(xt, torch.from_numpy(permut))["y"]
    top_diff = r.standard_normal(top.shape)
    (top * torch.from_numpy(top_diff)).sum().backward()
    np.testing.assert_allclose(xt.grad.numpy(), caffe_batch_reindex_backward(x.shape, top_diff, permut),
                               rtol=1e-12)
    assert gradcheck(model, x, permut, wrt=(0,))


@pytest.mark.parametrize("bad", [4.0, -0.5])
def test_batch_reindex_index_outside_the_batch(bad):
    model = build_layer(REINDEX, {"x": (4, 2), "r": (2,)})
    with pytest.raises(ConverterError, match="outside the batch of 4 items"):
        run(model, np.zeros((4, 2)), np.array([1.0, bad]))


def test_batch_reindex_index_blob_has_one_axis():
    with pytest.raises(ConverterError, match="must have 1 axis"):
        build_model(layer_net(REINDEX, {"x": (4, 2), "r": (2, 1)}))


def test_batch_reindex_onnx_matches_onnxruntime():
    r = rng(4)
    x, permut = r.standard_normal((5, 3, 2)), np.array([4, 1, 1, 0, 3, 2, 4, 0.0])
    model = build_layer(REINDEX, {"x": x.shape, "r": permut.shape}, double=False)
    ours, theirs, proto = ort_vs_torch(model, {"x": x, "r": permut})
    np.testing.assert_array_equal(theirs, ours)
    np.testing.assert_allclose(theirs, caffe_batch_reindex(x, permut), atol=1e-6)
    assert "Gather" in op_types(proto)

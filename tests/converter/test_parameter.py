"""Parameter: a learned blob as a top (ParameterLayer shares the blob's data and diff)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model, load_caffemodel, save_caffemodel

from .onnx_parity import ort_vs_torch
from .util import gradcheck, parse_net, rng

# the usual use: a learned per-position factor feeding a 2-bottom Scale
NET = """
input: "x" input_shape { dim: 2 dim: 3 dim: 5 dim: 4 }
layer { name: "p" type: "Parameter" top: "p" parameter_param { shape { dim: 3 dim: 5 } } }
layer { name: "scale" type: "Scale" bottom: "x" bottom: "p" top: "y" scale_param { axis: 1 } }
"""


def test_blob_starts_at_zero_and_is_the_top():
    model = build_model(parse_net(NET), seed=0).double()
    (blob,) = model.caffe_blobs("p")
    assert tuple(blob.shape) == (3, 5) and isinstance(blob, torch.nn.Parameter)
    assert not blob.detach().any()  # Caffe: a fresh blob is zeros (no filler)
    assert model.blob_shapes()["p"] == (3, 5)
    with torch.no_grad():
        blob.copy_(torch.from_numpy(rng().standard_normal((3, 5))))
    x = rng(1).standard_normal((2, 3, 5, 4))
    out = model(torch.from_numpy(x), keep="all")
    np.testing.assert_array_equal(out["p"].detach().numpy(), blob.detach().numpy())
    np.testing.assert_allclose(out["y"].detach().numpy(), x * blob.detach().numpy()[None, :, :, None],
                               rtol=1e-12)


def test_gradient_reaches_the_blob():
    model = build_model(parse_net(NET), seed=0).double()
    with torch.no_grad():
        model.p.weight.copy_(torch.from_numpy(rng(2).standard_normal((3, 5))))
    x, dy = rng(3).standard_normal((2, 3, 5, 4)), rng(4).standard_normal((2, 3, 5, 4))
    (model(torch.from_numpy(x))["y"] * torch.from_numpy(dy)).sum().backward()
    np.testing.assert_allclose(model.p.weight.grad.numpy(), (x * dy).sum((0, 3)), rtol=1e-12)
    assert gradcheck(model, x)
    assert [(layer, i) for layer, i, _, _ in model.caffe_params()] == [("p", 0)]


def test_no_shape_is_a_scalar_blob():
    model = build_model(parse_net('layer { name: "p" type: "Parameter" top: "p" }'))
    assert model.blob_shapes()["p"] == () and model.caffe_blobs("p")[0].numel() == 1


def test_zero_dimension_is_refused():
    with pytest.raises(ConverterError, match="not positive"):
        build_model(parse_net('layer { name: "p" type: "Parameter" top: "p" '
                              'parameter_param { shape { dim: 3 dim: 0 } } }'))


def test_caffemodel_round_trip(tmp_path):
    model = build_model(parse_net(NET), seed=0)
    with torch.no_grad():
        model.p.weight.normal_()
    path = save_caffemodel(model, tmp_path / "p.caffemodel")
    other = build_model(parse_net(NET), seed=0)
    assert load_caffemodel(other, path).loaded == ["p"]
    assert torch.equal(other.p.weight, model.p.weight)


def test_onnx_matches_onnxruntime():
    model = build_model(parse_net(NET), seed=0)
    with torch.no_grad():
        model.p.weight.copy_(torch.from_numpy(rng(5).standard_normal((3, 5))))
    ours, theirs, _ = ort_vs_torch(model, {"x": rng(6).standard_normal((2, 3, 5, 4))})
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-6)

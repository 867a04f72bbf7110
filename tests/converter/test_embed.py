"""Embed against a float64 NumPy transcription of EmbedLayer::Forward_cpu / Backward_cpu."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model, load_caffemodel, save_caffemodel

from .onnx_parity import op_types, ort_vs_torch
from .util import build_layer, gradcheck, layer_net, rng, run

K, N = 7, 4
TEXT = (f'type: "Embed" embed_param {{ input_dim: {K} num_output: {N} '
        f'weight_filler {{ type: "gaussian" std: 1 }} bias_filler {{ type: "uniform" min: -1 max: 1 }} }}')


def caffe_embed(x, weight, bias):
    """Forward_cpu: copy row static_cast<int>(x[n]) of the K x N weight, add the bias."""
    flat = x.reshape(-1)
    top = np.zeros((flat.size, weight.shape[1]))
    for n, value in enumerate(flat):
        top[n] = weight[int(value)]
        if bias is not None:
            top[n] += bias
    return top.reshape(*x.shape, weight.shape[1])


def caffe_embed_backward(x, top_diff, k):
    """Backward_cpu: weight_diff[index] += top_diff[n]; bias_diff = sum over n."""
    flat, diff = x.reshape(-1), top_diff.reshape(-1, top_diff.shape[-1])
    weight_diff = np.zeros((k, diff.shape[1]))
    for n, value in enumerate(flat):
        weight_diff[int(value)] += diff[n]
    return weight_diff, diff.sum(0)


def indices(shape, seed=0):
    x = rng(seed).integers(0, K, shape).astype(np.float64)
    x.reshape(-1)[:3] = [0, K - 1, 2.75]  # both ends and a fraction (truncated to 2)
    return x


@pytest.mark.parametrize("bias", [True, False])
def test_forward_and_blobs(bias):
    x = indices((2, 3, 5))
    text = TEXT if bias else TEXT.replace("num_output", "bias_term: false num_output")
    model = build_layer(text, {"x": x.shape}, seed=1)
    blobs = model.caffe_blobs("l")
    assert [tuple(b.shape) for b in blobs] == ([(K, N), (N,)] if bias else [(K, N)])
    weight = blobs[0].detach().numpy()
    want = caffe_embed(x, weight, blobs[1].detach().numpy() if bias else None)
    got = run(model, x)
    assert got.shape == (2, 3, 5, N) == model.blob_shapes()["y"]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_backward_is_caffes():
    x = indices((3, 4), seed=2)
    model = build_layer(TEXT, {"x": x.shape}, seed=3)
    top_diff = rng(4).standard_normal((3, 4, N))
    out = model(torch.from_numpy(x))["y"]
    (out * torch.from_numpy(top_diff)).sum().backward()
    weight_diff, bias_diff = caffe_embed_backward(x, top_diff, K)
    np.testing.assert_allclose(model.l.weight.grad.numpy(), weight_diff, rtol=1e-12)
    np.testing.assert_allclose(model.l.bias.grad.numpy(), bias_diff, rtol=1e-12)
    assert gradcheck(model, x, wrt=())


def test_index_out_of_range_raises():
    model = build_layer(TEXT, {"x": (2,)})
    with pytest.raises(IndexError):
        run(model, np.array([1.0, K]))


@pytest.mark.parametrize("param,message", [
    (f"input_dim: {K}", "num_output must be positive"),
    (f"num_output: {N}", "input_dim must be positive"),
])
def test_errors(param, message):
    with pytest.raises(ConverterError, match=message):
        build_model(layer_net(f'type: "Embed" embed_param {{ {param} }}', {"x": (2, 3)}))


def test_caffemodel_keeps_caffes_k_by_n_layout(tmp_path):
    model = build_layer(TEXT, {"x": (2, 3)}, seed=5, double=False)
    path = save_caffemodel(model, tmp_path / "e.caffemodel")
    from prototxt import read_caffemodel
    (layer,) = [l for l in read_caffemodel(path).layer if l.name == "l"]
    assert list(layer.blobs[0].shape.dim) == [K, N]
    other = build_layer(TEXT, {"x": (2, 3)}, seed=6, double=False)
    load_caffemodel(other, path)
    assert torch.equal(other.l.weight, model.l.weight) and torch.equal(other.l.bias, model.l.bias)


def test_onnx_matches_onnxruntime():
    x = indices((3, 2, 5), seed=7)
    model = build_layer(TEXT, {"x": x.shape}, seed=8, double=False)
    ours, theirs, proto = ort_vs_torch(model, {"x": x})
    np.testing.assert_allclose(theirs, ours, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(theirs, caffe_embed(x, model.l.weight.detach().double().numpy(),
                                                   model.l.bias.detach().double().numpy()),
                               atol=1e-5)
    assert "Gather" in op_types(proto)

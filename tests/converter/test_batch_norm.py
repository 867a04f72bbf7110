"""BatchNorm (BVLC and NVIDIA Caffe layouts), Scale and Bias against NumPy."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import build_model

from .util import build_layer, gradcheck, layer_net, rng, run

X = (3, 4, 5, 2)
EPS = float(np.float32(1e-5))


def set_blobs(model, *values):
    for tensor, value in zip(model.caffe_blobs("l"), values):
        tensor.data.copy_(torch.as_tensor(np.asarray(value, dtype=np.float64)).reshape(tensor.shape))


def test_bvlc_global_stats_divide_by_the_scale_factor():
    r = rng()
    x = r.standard_normal(X)
    model = build_layer('type: "BatchNorm"', {"x": X})
    assert [tuple(t.shape) for t in model.caffe_blobs("l")] == [(4,), (4,), (1,)]
    mean, var = r.standard_normal(4), r.uniform(0.5, 2, 4)
    set_blobs(model, mean * 2.5, var * 2.5, [2.5])
    want = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + EPS)
    np.testing.assert_allclose(run(model, x), want, rtol=1e-10)
    set_blobs(model, mean, var, [0.0])  # factor 0: statistics read as 0
    np.testing.assert_allclose(run(model, x), x / np.sqrt(EPS), rtol=1e-10)


def test_bvlc_batch_stats_and_running_update():
    r = rng()
    x = r.standard_normal(X) * 3 + 1
    model = build_layer('type: "BatchNorm" batch_norm_param { moving_average_fraction: 0.9 }',
                        {"x": X}, phase="TRAIN")
    set_blobs(model, np.ones(4), np.ones(4) * 2, [1.0])
    mean = x.mean((0, 2, 3))
    var = x.var((0, 2, 3))
    want = (x - mean[None, :, None, None]) / np.sqrt(var[None, :, None, None] + EPS)
    np.testing.assert_allclose(run(model, x), want, rtol=1e-9)
    m = x.size // 4
    maf = float(np.float32(0.9))
    mean_sum, var_sum, factor = (t.numpy() for t in model.caffe_blobs("l"))
    np.testing.assert_allclose(factor, [maf + 1])
    np.testing.assert_allclose(mean_sum, maf + mean)
    np.testing.assert_allclose(var_sum, 2 * maf + var * m / (m - 1))
    assert gradcheck(model, x)


def test_use_global_stats_overrides_the_phase():
    x = rng().standard_normal(X)
    model = build_layer('type: "BatchNorm" batch_norm_param { use_global_stats: true }', {"x": X},
                        phase="TRAIN")
    set_blobs(model, np.zeros(4), np.ones(4), [1.0])
    np.testing.assert_allclose(run(model, x), x / np.sqrt(1 + EPS), rtol=1e-10)
    assert model.caffe_blobs("l")[2].item() == 1.0  # not updated


def test_nvcaffe_layout_from_the_prototxt():
    r = rng()
    x = r.standard_normal(X)
    model = build_layer('type: "BatchNorm" batch_norm_param { scale_filler { type: "constant" value: 1 } '
                        'bias_filler { type: "constant" value: 0 } }', {"x": X})
    assert len(model.caffe_blobs("l")) == 5
    scale, bias, mean, var = (r.standard_normal(4) for _ in range(4))
    var = np.abs(var)
    set_blobs(model, scale, bias, mean, var, [7.0])
    c = (slice(None), None, None)
    want = (x - mean[c]) / np.sqrt(var[c] + EPS) * scale[c] + bias[c]
    np.testing.assert_allclose(run(model, x), want, rtol=1e-10)


@pytest.mark.parametrize("param,shape", [("bias_term: true", (4,)), ("axis: 1 num_axes: 2", (4, 5)),
                                         ("num_axes: 0", ()), ("axis: -1", (2,)),
                                         ("axis: 2 num_axes: -1 bias_term: true", (5, 2))])
def test_scale(param, shape):
    x = rng().standard_normal(X)
    model = build_layer(f'type: "Scale" scale_param {{ {param} filler {{ type: "gaussian" }} '
                        f'bias_filler {{ type: "gaussian" }} }}', {"x": X})
    blobs = [t.detach().numpy() for t in model.caffe_blobs("l")]
    assert blobs[0].shape == shape
    axis = 0 if not shape else (3 if "axis: -1" in param else (2 if "axis: 2" in param else 1))
    expand = lambda t: t.reshape(t.shape + (1,) * (4 - axis - t.ndim))  # noqa: E731
    want = x * expand(blobs[0]) + (expand(blobs[1]) if len(blobs) > 1 else 0)
    np.testing.assert_allclose(run(model, x), want, rtol=1e-12)
    assert gradcheck(model, x)


def test_scale_default_filler_is_one_and_bottom_factor():
    x = rng().standard_normal(X)
    model = build_layer('type: "Scale"', {"x": X})
    assert (model.caffe_blobs("l")[0] == 1).all()
    gamma = rng(1).standard_normal((4, 5))
    two = build_layer('type: "Scale" scale_param { bias_term: true }', {"x": X, "g": (4, 5)})
    assert len(two.caffe_blobs("l")) == 1  # only the bias is learned
    np.testing.assert_allclose(run(two, x, gamma), x * gamma[:, :, None], rtol=1e-12)
    assert gradcheck(two, x, gamma)


def test_bias():
    x = rng().standard_normal(X)
    model = build_layer('type: "Bias" bias_param { filler { type: "gaussian" } }', {"x": X})
    (beta,) = [t.detach().numpy() for t in model.caffe_blobs("l")]
    np.testing.assert_allclose(run(model, x), x + beta[:, None, None], rtol=1e-12)
    beta2 = rng(2).standard_normal((4,))
    two = build_layer('type: "Bias"', {"x": X, "b": (4,)})
    np.testing.assert_allclose(run(two, x, beta2), x + beta2[:, None, None], rtol=1e-12)
    assert gradcheck(model, x) and gradcheck(two, x, beta2)


def test_batchnorm_scale_in_place_chain():
    net = layer_net('type: "BatchNorm"', {"x": X}, tops=("x",), name="bn")
    net.layer.add(name="sc", type="Scale", bottom=["x"], top=["x"]).scale_param.bias_term = True
    model = build_model(net)
    assert model.outputs == ("x",) and [i.in_place for i in model.layer_info] == [(True,), (True,)]

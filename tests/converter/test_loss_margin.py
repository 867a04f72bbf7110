"""HingeLoss and ContrastiveLoss against float64 transcriptions of their Forward_cpu and
Backward_cpu (hinge_loss_layer.cpp, contrastive_loss_layer.cpp)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.autograd.gradcheck import GradcheckError

from converter import ConverterError, build_model

from .onnx_parity import ort_vs_torch
from .util import build_layer, gradcheck, layer_net, rng


def caffe_hinge(x, label, norm):
    """(loss, d loss / d x) with Caffe's loops (bottom_diff reused between the passes)."""
    num = x.shape[0]
    diff = x.reshape(num, -1).copy()
    for i in range(num):
        diff[i, int(label[i])] *= -1
    diff = np.maximum(0, 1 + diff)
    loss = (np.abs(diff).sum() if norm == "L1" else (diff * diff).sum()) / num
    for i in range(num):
        diff[i, int(label[i])] *= -1
    grad = np.sign(diff) / num if norm == "L1" else diff * 2 / num
    return loss, grad.reshape(x.shape)


@pytest.mark.parametrize("norm", ["L1", "L2"])
def test_hinge_loss(norm):
    r = rng()
    x = r.standard_normal((4, 3, 2)) * 1.5
    label = np.array([5.0, 0, 2.9, 3]).reshape(4, 1)
    x[0, 0, 0] = -1.0  # 1 + x = 0 exactly: no gradient (Caffe's sign(0))
    model = build_layer(f'type: "HingeLoss" hinge_loss_param {{ norm: {norm} }}',
                        {"x": x.shape, "label": label.shape})
    xt = torch.from_numpy(x).requires_grad_(True)
    out = model(xt, torch.from_numpy(label))
    want_loss, want_grad = caffe_hinge(x, label.reshape(-1), norm)
    assert out.loss.item() == pytest.approx(want_loss, rel=1e-12)
    out.loss.backward()
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-12)
    assert xt.grad[0, 0, 0] == 0
    x[0, 0, 0] = -0.5  # away from the kink for finite differences
    assert gradcheck(model, x, label, wrt=(0,))


def test_hinge_default_is_l1_and_export():
    r = rng(1)
    x, label = r.standard_normal((5, 6)), r.integers(0, 6, (5,)).astype(np.float64)
    model = build_layer('type: "HingeLoss"', {"x": x.shape, "label": label.shape}, double=False)
    ours, theirs, _ = ort_vs_torch(model, {"x": x, "label": label})
    assert float(theirs) == pytest.approx(float(ours), rel=1e-5)
    assert float(theirs) == pytest.approx(caffe_hinge(x, label, "L1")[0], rel=1e-5)


def caffe_contrastive(a, b, y, margin, legacy):
    """(loss, d loss / d a, d loss / d b): Forward_cpu and Backward_cpu (1e-4 in the divisor)."""
    num = a.shape[0]
    diff = (a - b).reshape(num, -1)
    dist_sq = (diff * diff).sum(1)
    loss = 0.0
    grads = []
    for i in range(num):
        if int(y[i]):
            loss += dist_sq[i]
        elif legacy:
            loss += max(margin - dist_sq[i], 0.0)
        else:
            loss += max(margin - np.sqrt(dist_sq[i]), 0.0) ** 2
    for sign in (1, -1):
        alpha = sign / num
        g = np.zeros_like(diff)
        for j in range(num):
            if int(y[j]):
                g[j] = alpha * diff[j]
            else:
                if legacy:
                    mdist, beta = margin - dist_sq[j], -alpha
                else:
                    dist = np.sqrt(dist_sq[j])
                    mdist = margin - dist
                    beta = -alpha * mdist / (dist + 1e-4)
                g[j] = beta * diff[j] if mdist > 0 else 0
        grads.append(g.reshape(a.shape))
    return loss / num / 2, grads[0], grads[1]


def pairs(seed=0, num=6, channels=5):
    r = rng(seed)
    a, b = r.standard_normal((num, channels, 1, 1)) * 0.4, r.standard_normal((num, channels)) * 0.4
    y = np.array([1, 0, 0.7, 2, 0, 0][:num], dtype=np.float64).reshape(num, 1, 1, 1)  # 0.7 -> 0
    b[4] = a[4, :, 0, 0]  # an identical dissimilar pair: Caffe's 1e-4 keeps its gradient 0
    return a, b, y


@pytest.mark.parametrize("legacy", [False, True])
@pytest.mark.parametrize("margin", [1.0, 2.5])
def test_contrastive_loss(legacy, margin):
    a, b, y = pairs()
    model = build_layer(f'type: "ContrastiveLoss" contrastive_loss_param {{ margin: {margin} '
                        f'legacy_version: {str(legacy).lower()} }}',
                        {"a": a.shape, "b": b.shape, "sim": y.shape})
    at, bt = (torch.from_numpy(v).requires_grad_(True) for v in (a, b))
    out = model(at, bt, torch.from_numpy(y))
    want_loss, want_a, want_b = caffe_contrastive(a, b.reshape(a.shape), y.reshape(-1), margin, legacy)
    assert out.loss.item() == pytest.approx(want_loss, rel=1e-12)
    out.loss.backward()
    np.testing.assert_allclose(at.grad.numpy(), want_a, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(bt.grad.numpy(), want_b.reshape(b.shape), rtol=1e-12, atol=1e-15)
    assert np.isfinite(at.grad.numpy()).all()


def test_contrastive_gradient_vs_finite_differences():
    """legacy_version: exact; default: Caffe's d + 1e-4 divisor makes it differ (by ~1e-4 / d)."""
    a, b, y = pairs(seed=1)
    b[4] += 0.3  # no identical pair: finite differences need d > 0
    shapes = {"a": a.shape, "b": b.shape, "sim": y.shape}

    def check(param):
        model = build_layer(f'type: "ContrastiveLoss" contrastive_loss_param {{ {param} }}', shapes)
        rest = torch.from_numpy(b), torch.from_numpy(y)
        return torch.autograd.gradcheck(lambda at: model(at, *rest)["y"],
                                        (torch.from_numpy(a).requires_grad_(True),),
                                        eps=1e-6, atol=1e-8, rtol=0)

    assert check("legacy_version: true")
    with pytest.raises(GradcheckError):
        check("legacy_version: false")


@pytest.mark.parametrize("shapes,message", [
    ({"a": (4, 3), "b": (4, 2), "sim": (4,)}, "same C"),
    ({"a": (4, 3, 2), "b": (4, 3, 2), "sim": (4,)}, "N x C x 1 x 1"),
    ({"a": (4, 3), "b": (4, 3), "sim": (4, 2)}, "N x 1 x 1 x 1"),
    ({"a": (4, 3), "b": (3, 3), "sim": (4,)}, "same first dimension"),
])
def test_contrastive_errors(shapes, message):
    with pytest.raises(ConverterError, match=message):
        build_model(layer_net('type: "ContrastiveLoss"', shapes))


@pytest.mark.parametrize("legacy", [False, True])
def test_contrastive_onnx_matches_onnxruntime(legacy):
    a, b, y = pairs(seed=2)
    model = build_layer(f'type: "ContrastiveLoss" contrastive_loss_param {{ legacy_version: '
                        f'{str(legacy).lower()} }}', {"a": a.shape, "b": b.shape, "sim": y.shape},
                        double=False)
    ours, theirs, _ = ort_vs_torch(model, {"a": a, "b": b, "sim": y})
    assert float(theirs) == pytest.approx(float(ours), rel=1e-5)
    want = caffe_contrastive(a, b.reshape(a.shape), y.reshape(-1), 1.0, legacy)[0]
    assert float(theirs) == pytest.approx(want, rel=1e-5)

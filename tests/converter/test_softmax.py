"""Softmax, SoftmaxWithLoss, EuclideanLoss, SigmoidCrossEntropyLoss and Accuracy against NumPy
transcriptions of Caffe's loops (forward and Caffe's analytic backward)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model

from .util import build_layer, gradcheck, layer_net, parse_net, rng, run

FLT_MIN = float(np.finfo(np.float32).tiny)


def softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def caffe_softmax_loss(x, label, axis=1, ignore=None, mode="VALID"):
    """(loss, d loss / d x) as SoftmaxWithLossLayer computes them."""
    p = softmax(x, axis)
    outer, classes, inner = int(np.prod(x.shape[:axis])), x.shape[axis], int(np.prod(x.shape[axis + 1:]))
    pr = p.reshape(outer, classes, inner)
    lab = label.reshape(outer, inner).astype(int)
    loss, count = 0.0, 0
    grad = pr.copy()
    for i in range(outer):
        for j in range(inner):
            if ignore is not None and lab[i, j] == ignore:
                grad[i, :, j] = 0
                continue
            loss -= np.log(max(pr[i, lab[i, j], j], FLT_MIN))
            grad[i, lab[i, j], j] -= 1
            count += 1
    norm = {"FULL": outer * inner, "VALID": count if ignore is not None else outer * inner,
            "BATCH_SIZE": outer, "NONE": 1}[mode]
    norm = max(1.0, norm)
    return loss / norm, grad.reshape(x.shape) / norm


@pytest.mark.parametrize("axis", [1, 2, -1])
def test_softmax(axis):
    x = rng().standard_normal((2, 3, 4, 5)) * 4
    model = build_layer(f'type: "Softmax" softmax_param {{ axis: {axis} }}', {"x": x.shape})
    np.testing.assert_allclose(run(model, x), softmax(x, axis), rtol=1e-12)
    small = build_layer(f'type: "Softmax" softmax_param {{ axis: {axis} }}', {"x": (2, 3, 2, 4)})
    assert gradcheck(small, x[:, :, :2, :4])


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 2])
def test_softmax_with_loss(mode, ignore):
    r = rng()
    x = r.standard_normal((3, 5, 2, 4)) * 3
    label = r.integers(0, 5, (3, 1, 2, 4)).astype(np.float64)
    loss_param = f"normalization: {mode}" + (f" ignore_label: {ignore}" if ignore is not None else "")
    model = build_layer(f'type: "SoftmaxWithLoss" loss_param {{ {loss_param} }}',
                        {"x": x.shape, "label": label.shape})
    want_loss, want_grad = caffe_softmax_loss(x, label, 1, ignore, mode)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = model(xt, torch.from_numpy(label))
    assert out.loss.item() == pytest.approx(want_loss, rel=1e-12)
    assert out.losses == {"y": out["y"]} and out.loss_weights == {"y": 1.0}
    out.loss.backward()
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-10, atol=1e-14)


def test_legacy_normalize_false_is_batch_size_and_prob_top():
    r = rng()
    x, label = r.standard_normal((4, 3)), r.integers(0, 3, (4,)).astype(np.float64)
    model = build_layer('type: "SoftmaxWithLoss" loss_param { normalize: false } softmax_param { axis: 1 }',
                        {"x": x.shape, "label": label.shape}, tops=("loss", "prob"))
    out = model(torch.from_numpy(x), torch.from_numpy(label))
    assert out.loss_weights == {"loss": 1.0}  # the prob top has weight 0
    assert out.loss.item() == pytest.approx(caffe_softmax_loss(x, label, mode="BATCH_SIZE")[0])
    np.testing.assert_allclose(out["prob"].detach().numpy(), softmax(x, 1), rtol=1e-12)


def test_prob_top_passes_no_gradient_back():
    """Caffe's Backward reads only the loss top's diff: a loss on the prob top (here a
    EuclideanLoss against a target, or a loss_weight on the prob top) does not reach the
    scores."""
    r = rng(5)
    x, label, target = r.standard_normal((4, 3)), r.integers(0, 3, (4,)).astype(np.float64), r.random((4, 3))
    net = parse_net('input: "x" input_shape { dim: 4 dim: 3 } input: "label" input_shape { dim: 4 }\n'
                    'input: "t" input_shape { dim: 4 dim: 3 }\n'
                    'layer { name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "label" '
                    'top: "loss" top: "prob" loss_weight: 1 loss_weight: 2 }\n'
                    'layer { name: "e" type: "EuclideanLoss" bottom: "prob" bottom: "t" top: "e" }')
    model = build_model(net).double()
    xt = torch.from_numpy(x).requires_grad_(True)
    out = model(xt, torch.from_numpy(label), torch.from_numpy(target))
    assert out.loss_weights == {"loss": 1.0, "prob": 2.0, "e": 1.0}
    out.loss.backward()
    np.testing.assert_allclose(xt.grad.numpy(), caffe_softmax_loss(x, label)[1], rtol=1e-12)


def test_loss_is_clamped_at_flt_min():
    x = np.array([[0.0, 200.0]])
    model = build_layer('type: "SoftmaxWithLoss"', {"x": x.shape, "label": (1,)})
    assert model(torch.from_numpy(x), torch.zeros(1, dtype=torch.float64)).loss.item() == \
        pytest.approx(-np.log(FLT_MIN))


def test_loss_gradient_by_finite_differences():
    r = rng(4)
    x, label = r.standard_normal((3, 4, 2)), r.integers(0, 4, (3, 2)).astype(np.float64)
    model = build_layer('type: "SoftmaxWithLoss" loss_param { ignore_label: 1 }',
                        {"x": x.shape, "label": label.shape})
    assert gradcheck(model, x, label, wrt=(0,))


def test_label_count_mismatch():
    with pytest.raises(ConverterError, match="number of labels"):
        build_model(layer_net('type: "SoftmaxWithLoss"', {"x": (2, 3, 4), "label": (2,)}))


def test_euclidean_loss():
    r = rng()
    a, b = r.standard_normal((3, 4, 2)), r.standard_normal((3, 8))
    model = build_layer('type: "EuclideanLoss"', {"a": a.shape, "b": b.shape})
    want = ((a.reshape(3, 8) - b) ** 2).sum() / 3 / 2
    assert run(model, a, b) == pytest.approx(want, rel=1e-12)
    assert gradcheck(model, a, b)


@pytest.mark.parametrize("param,norm", [("", "VALID"), ("loss_param { normalize: false }", "BATCH"),
                                        ("loss_param { ignore_label: -1 }", "VALID")])
def test_sigmoid_cross_entropy(param, norm):
    r = rng()
    x = r.standard_normal((3, 4, 5)) * 4
    t = r.integers(0, 2, (3, 4, 5)).astype(np.float64)
    if "ignore" in param:
        t[0, 0, :3] = -1
    model = build_layer(f'type: "SigmoidCrossEntropyLoss" {param}', {"x": x.shape, "t": t.shape})
    valid = t != -1
    p = 1 / (1 + np.exp(-x))
    loss = -(t * np.log(p) + (1 - t) * np.log(1 - p))
    count = valid.sum() if norm == "VALID" else 3
    assert run(model, x, t) == pytest.approx(loss[valid].sum() / count, rel=1e-10)
    xt, tt = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(t).requires_grad_(True)
    model(xt, tt)["y"].backward()
    np.testing.assert_allclose(xt.grad.numpy(), np.where(valid, p - t, 0) / count, rtol=1e-9, atol=1e-15)
    assert tt.grad is None  # Caffe: cannot backpropagate to label inputs


def caffe_accuracy(x, label, top_k, axis=1, ignore=None):
    outer, classes = int(np.prod(x.shape[:axis])), x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    xr = x.reshape(outer, classes, inner)
    lab = label.reshape(outer, inner).astype(int)
    correct = count = 0
    for i in range(outer):
        for j in range(inner):
            if ignore is not None and lab[i, j] == ignore:
                continue
            true = xr[i, lab[i, j], j]
            better = -1
            for k in range(classes):
                better += xr[i, k, j] >= true
            correct += better < top_k
            count += 1
    return 0.0 if count == 0 else correct / count


@pytest.mark.parametrize("top_k,ignore", [(1, None), (3, None), (2, 0)])
def test_accuracy(top_k, ignore):
    r = rng()
    x = np.round(r.standard_normal((6, 5, 3)), 1)  # rounding makes ties
    label = r.integers(0, 5, (6, 3)).astype(np.float64)
    param = f"top_k: {top_k}" + (f" ignore_label: {ignore}" if ignore is not None else "")
    model = build_layer(f'type: "Accuracy" accuracy_param {{ {param} }}',
                        {"x": x.shape, "label": label.shape})
    assert run(model, x, label) == pytest.approx(caffe_accuracy(x, label, top_k, ignore=ignore))


def test_accuracy_ties_count_against_and_per_class():
    model = build_layer('type: "Accuracy"', {"x": (2, 3), "label": (2,)}, tops=("acc", "per_class"))
    out = model(torch.tensor([[1.0, 1.0, 1.0], [0.0, 2.0, 1.0]], dtype=torch.float64),
                torch.tensor([0.0, 1.0], dtype=torch.float64))
    assert out["acc"].item() == 0.5  # the all-equal row is wrong in Caffe, argmax would say right
    np.testing.assert_array_equal(out["per_class"].numpy(), [0.0, 1.0, 0.0])
    assert out.accuracies == {"acc": out["acc"]} and out.loss is None


def test_accuracy_top_k_larger_than_classes():
    with pytest.raises(ConverterError, match="top_k"):
        build_model(layer_net('type: "Accuracy" accuracy_param { top_k: 5 }', {"x": (2, 3), "l": (2,)}))

"""InfogainLoss and MultinomialLogisticLoss against float64 transcriptions of their
Forward_cpu / Backward_cpu (infogain_loss_layer.cpp, multinomial_logistic_loss_layer.cpp)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model
from converter.caffemodel import array_blob
from converter.layers.loss_logistic import LOG_THRESHOLD
from prototxt import write_binary

from .onnx_parity import ort_vs_torch
from .util import build_layer, gradcheck, layer_net, parse_net, rng

THRESHOLD = LOG_THRESHOLD  # Caffe's float kLOG_THRESHOLD = 1e-20f


def softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def caffe_infogain(x, label, h, axis=1, ignore=None, mode="VALID"):
    """(loss, d loss / d x) as InfogainLossLayer computes them (loops of Forward/Backward_cpu)."""
    prob = softmax(x, axis)
    outer, classes = int(np.prod(x.shape[:axis])), x.shape[axis]
    inner = int(np.prod(x.shape[axis + 1:]))
    p = prob.reshape(outer, classes, inner)
    lab = label.reshape(outer, inner)
    h = h.reshape(classes, classes)
    sum_rows = h.sum(1)
    loss, count, diff = 0.0, 0, np.zeros_like(p)
    for i in range(outer):
        for j in range(inner):
            y = int(lab[i, j])
            if ignore is not None and y == ignore:
                continue
            for l in range(classes):
                loss -= h[y, l] * np.log(max(p[i, l, j], THRESHOLD))
                diff[i, l, j] = p[i, l, j] * sum_rows[y] - h[y, l]
            count += 1
    norm = max(1.0, {"FULL": outer * inner, "VALID": count, "BATCH_SIZE": outer, "NONE": 1}[mode])
    return loss / norm, diff.reshape(x.shape) / norm, prob


def infogain_text(mode="VALID", ignore=None, axis=1, source=None):
    loss_param = f"normalization: {mode}" + (f" ignore_label: {ignore}" if ignore is not None else "")
    info = f"axis: {axis}" + (f' source: "{source}"' if source else "")
    return f'type: "InfogainLoss" loss_param {{ {loss_param} }} infogain_loss_param {{ {info} }}'


def data(shape, classes_axis=1, seed=0):
    r = rng(seed)
    x = r.standard_normal(shape) * 3
    label_shape = tuple(d for i, d in enumerate(shape) if i != classes_axis)
    label = r.integers(0, shape[classes_axis], label_shape).astype(np.float64)
    h = r.uniform(0, 2, (shape[classes_axis],) * 2)
    return x, label, h


@pytest.mark.parametrize("mode", ["FULL", "VALID", "BATCH_SIZE", "NONE"])
@pytest.mark.parametrize("ignore", [None, 2])
def test_infogain_with_h_as_bottom(mode, ignore):
    x, label, h = data((3, 5, 2, 4))
    model = build_layer(infogain_text(mode, ignore),
                        {"x": x.shape, "label": label.shape, "H": (1, 1, 5, 5)}, tops=("loss",))
    want_loss, want_grad, _ = caffe_infogain(x, label, h, 1, ignore, mode)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = model(xt, torch.from_numpy(label), torch.from_numpy(h.reshape(1, 1, 5, 5)))
    assert out.loss.item() == pytest.approx(want_loss, rel=1e-12)
    out.loss.backward()
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-10, atol=1e-14)


def test_infogain_source_axis_and_prob_top(tmp_path):
    """H from a .binaryproto next to the prototxt (relative path), class axis 2, a prob top."""
    x, label, h = data((2, 3, 4, 5), classes_axis=2, seed=1)
    write_binary(array_blob(h.reshape(1, 1, 4, 4)), tmp_path / "H.binaryproto")
    net = layer_net(infogain_text(axis=2, source="H.binaryproto"),
                    {"x": x.shape, "label": label.shape}, tops=("loss", "prob"))
    path = tmp_path / "train_val.prototxt"
    path.write_text(str(net))
    model = build_model(path).double()
    want_loss, want_grad, prob = caffe_infogain(x, label, h.astype(np.float32).astype(float), 2)
    xt = torch.from_numpy(x).requires_grad_(True)
    out = model(xt, torch.from_numpy(label))
    assert out.loss_weights == {"loss": 1.0}
    assert out.loss.item() == pytest.approx(want_loss, rel=1e-12)
    np.testing.assert_allclose(out["prob"].numpy(), prob, rtol=1e-12)
    weights = torch.from_numpy(rng(9).standard_normal(x.shape))
    (out.loss + (out["prob"] * weights).sum()).backward()  # Caffe ignores the prob top's diff
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-10, atol=1e-14)


def test_infogain_identity_is_softmax_with_loss():
    x, label, _ = data((4, 6), seed=2)
    eye = np.eye(6).reshape(1, 1, 6, 6)
    info = build_layer(infogain_text(), {"x": x.shape, "label": label.shape, "H": eye.shape})
    soft = build_layer('type: "SoftmaxWithLoss"', {"x": x.shape, "label": label.shape})
    a = info(torch.from_numpy(x), torch.from_numpy(label), torch.from_numpy(eye)).loss
    b = soft(torch.from_numpy(x), torch.from_numpy(label)).loss
    assert a.item() == pytest.approx(b.item(), rel=1e-12)


def test_infogain_clamp_keeps_caffes_gradient():
    """p below 1e-20: the loss uses log(1e-20); the gradient stays p sum H[y] - H[y, l]."""
    x, label = np.array([[0.0, 80.0, -5.0]]), np.array([0.0])
    h = np.array([[1.0, 0.5, 2.0], [0, 1, 0], [0, 0, 1]])
    model = build_layer(infogain_text(), {"x": x.shape, "label": (1,), "H": h.shape})
    xt = torch.from_numpy(x).requires_grad_(True)
    out = model(xt, torch.from_numpy(label), torch.from_numpy(h))
    want_loss, want_grad, _ = caffe_infogain(x, label, h)
    assert out.loss.item() == pytest.approx(want_loss, rel=1e-12)
    out.loss.backward()
    np.testing.assert_allclose(xt.grad.numpy(), want_grad, rtol=1e-10, atol=1e-14)


def test_infogain_gradcheck():
    x, label, h = data((3, 4, 2), seed=3)
    model = build_layer(infogain_text(ignore=1), {"x": x.shape, "label": label.shape, "H": h.shape})
    assert gradcheck(model, x, label, h, wrt=(0,))


@pytest.mark.parametrize("text,shapes,message", [
    (infogain_text(), {"x": (2, 3), "label": (2,)}, "source must be specified"),
    (infogain_text(source="/nonexistent/H.binaryproto"), {"x": (2, 3), "label": (2,)},
     "does not exist"),
    (infogain_text(), {"x": (2, 3), "label": (2,), "H": (2, 2)}, "H must be 3x3"),
    (infogain_text(), {"x": (2, 3, 4), "label": (2, 3)}, "number of labels"),
    ('type: "InfogainLoss" loss_param { normalize: true }', {"x": (2, 3), "label": (2,), "H": (3, 3)},
     "normalize is deprecated"),
])
def test_infogain_errors(text, shapes, message):
    with pytest.raises(ConverterError, match=message):
        build_model(layer_net(text, shapes))


def test_infogain_onnx_matches_onnxruntime():
    x, label, h = data((3, 4, 2, 3), seed=4)
    model = build_layer(infogain_text(ignore=0), {"x": x.shape, "label": label.shape, "H": h.shape},
                        double=False)
    ours, theirs, _ = ort_vs_torch(model, {"x": x, "label": label, "H": h})
    assert abs(float(theirs) - float(ours)) <= 1e-5 * max(1, abs(float(ours)))
    assert float(theirs) == pytest.approx(caffe_infogain(x, label, h, ignore=0)[0], rel=1e-5)


def caffe_multinomial(prob, label):
    """(loss, d loss / d prob): Forward_cpu and Backward_cpu with the 1e-20 clamp."""
    num = prob.shape[0]
    flat = prob.reshape(num, -1)
    diff = np.zeros_like(flat)
    loss = 0.0
    for i in range(num):
        p = max(flat[i, int(label[i])], THRESHOLD)
        loss -= np.log(p)
        diff[i, int(label[i])] = -1 / num / p
    return loss / num, diff.reshape(prob.shape)


def test_multinomial_logistic_loss():
    r = rng(5)
    prob = softmax(r.standard_normal((4, 3, 2, 1)), 1)  # the label indexes C*H*W per item
    prob[1, 2, 1, 0] = 1e-30                             # clamped: Caffe's gradient -1/(N 1e-20)
    label = np.array([3.0, 5, 0, 4.5]).reshape(4, 1, 1, 1)
    label[1] = 5
    model = build_layer('type: "MultinomialLogisticLoss" loss_param { normalization: NONE }',
                        {"p": prob.shape, "label": label.shape})
    pt = torch.from_numpy(prob).requires_grad_(True)
    out = model(pt, torch.from_numpy(label))
    want_loss, want_grad = caffe_multinomial(prob, label.reshape(-1))
    assert out.loss.item() == pytest.approx(want_loss, rel=1e-12)  # loss_param is not read
    out.loss.backward()
    np.testing.assert_allclose(pt.grad.numpy(), want_grad, rtol=1e-12)
    assert pt.grad[1, 2, 1, 0].item() == pytest.approx(-1 / 4 / THRESHOLD, rel=1e-12)


def test_multinomial_gradcheck_and_label_shape():
    prob = rng(6).uniform(0.1, 1, (3, 5))
    model = build_layer('type: "MultinomialLogisticLoss"', {"p": prob.shape, "label": (3,)})
    assert gradcheck(model, prob, np.array([4.0, 0, 2]), wrt=(0,))
    with pytest.raises(ConverterError, match="N x 1 x 1 x 1"):
        build_model(layer_net('type: "MultinomialLogisticLoss"', {"p": (3, 5), "label": (3, 2)}))


def test_multinomial_onnx_matches_onnxruntime():
    prob = softmax(rng(7).standard_normal((5, 4)), 1)
    label = np.array([0.0, 3, 1, 1, 2])
    model = build_layer('type: "MultinomialLogisticLoss"', {"p": prob.shape, "label": label.shape},
                        double=False)
    ours, theirs, _ = ort_vs_torch(model, {"p": prob, "label": label})
    assert float(theirs) == pytest.approx(float(ours), rel=1e-5)
    assert float(theirs) == pytest.approx(caffe_multinomial(prob, label)[0], rel=1e-5)


def test_loss_weight_default_and_net_with_both():
    net = parse_net("""
input: "x" input_shape { dim: 2 dim: 3 } input: "label" input_shape { dim: 2 }
input: "H" input_shape { dim: 3 dim: 3 }
layer { name: "info" type: "InfogainLoss" bottom: "x" bottom: "label" bottom: "H" top: "info" }
layer { name: "prob" type: "Softmax" bottom: "x" top: "prob" }
layer { name: "mlr" type: "MultinomialLogisticLoss" bottom: "prob" bottom: "label" top: "mlr"
        loss_weight: 0.5 }
""")
    model = build_model(net).double()
    x, label = rng(8).standard_normal((2, 3)), np.array([2.0, 0])
    out = model(torch.from_numpy(x), torch.from_numpy(label), torch.from_numpy(np.eye(3)))
    assert out.loss_weights == {"info": 1.0, "mlr": 0.5}
    assert out.loss.item() == pytest.approx(1.5 * out["info"].item(), rel=1e-12)

"""The registry's `gradient` and `onnx` flags (the train / ONNX columns of
docs/supported_layers.md) against a one-layer net of every registered type: a layer declared
with a gradient passes one back (to a bottom or to its blobs), one declared without has tops
that carry none, and a layer declared exportable exports and agrees with ONNX Runtime."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import build_model
from converter.registry import REGISTRY

from .onnx_parity import ort_vs_torch
from .util import layer_net, parse_net

X = {"x": (2, 3, 5, 4)}
SCORES_LABELS = {"x": (2, 6), "l": (2,)}
FILLER = "weight_filler { type: 'gaussian' }"
# type -> (the inside of layer { } without name/bottom/top, the bottoms and their shapes)
CASES = {
    "AbsVal": ("", X),
    "Accuracy": ("", SCORES_LABELS),
    "ArgMax": ("", {"x": (2, 6)}),
    "Axpy": ("", {"a": (2, 3, 1, 1), "x": (2, 3, 5, 4), "z": (2, 3, 5, 4)}),
    "BatchNorm": ("", X),
    "BatchReindex": ("", {"x": (3, 2), "i": (4,)}),
    "Bias": ("", X),
    "BNLL": ("", X),
    "Clip": ("clip_param { min: -0.5 max: 0.5 }", X),
    "Concat": ("", {"x": (2, 3), "z": (2, 4)}),
    "ContrastiveLoss": ("", {"x": (4, 3), "z": (4, 3), "s": (4,)}),
    "Convolution": (f"convolution_param {{ num_output: 2 kernel_size: 3 {FILLER} }}", X),
    "ConvolutionDepthwise": (f"convolution_param {{ kernel_size: 3 {FILLER} }}", X),
    "Crop": ("", {"x": (2, 3, 5, 4), "z": (2, 3, 3, 3)}),
    "Deconvolution": (f"convolution_param {{ num_output: 2 kernel_size: 3 {FILLER} }}", X),
    "DepthwiseConvolution": (f"convolution_param {{ num_output: 3 group: 3 kernel_size: 3 {FILLER} }}",
                             X),
    "Dropout": ("", X),
    "Eltwise": ("", {"x": (2, 3), "z": (2, 3)}),
    "ELU": ("", X),
    "Embed": (f"embed_param {{ input_dim: 5 num_output: 3 {FILLER} }}", {"i": (4,)}),
    "EuclideanLoss": ("", {"x": (2, 3), "z": (2, 3)}),
    "Exp": ("", X),
    "Filter": ("", {"x": (4, 3), "s": (4,)}),
    "Flatten": ("", X),
    "HingeLoss": ("", SCORES_LABELS),
    "InfogainLoss": ("", {"x": (2, 6), "l": (2,), "h": (6, 6)}),
    "InnerProduct": (f"inner_product_param {{ num_output: 3 {FILLER} }}", X),
    "Interp": ("interp_param { zoom_factor: 2 }", X),
    "Log": ("", X),
    "LRN": ("", X),
    "MultinomialLogisticLoss": ("", SCORES_LABELS),
    "MVN": ("", X),
    "Parameter": ("parameter_param { shape { dim: 3 dim: 2 } }", {}),
    "Pooling": ("pooling_param { kernel_size: 2 }", X),
    "Power": ("", X),
    "PReLU": ("", X),
    "Reduction": ("", X),
    "ReLU": ("", X),
    "Reshape": ("reshape_param { shape { dim: 0 dim: -1 } }", X),
    "Scale": ("", X),
    "Sigmoid": ("", X),
    "SigmoidCrossEntropyLoss": ("", {"x": (2, 3), "z": (2, 3)}),
    "Slice": ("", {"x": (2, 4)}),
    "Softmax": ("", X),
    "SoftmaxWithLoss": ("", SCORES_LABELS),
    "Split": ("", X),
    "SPP": ("spp_param { pyramid_height: 2 }", X),
    "Swish": ("", X),
    "TanH": ("", X),
    "Threshold": ("", X),
    "Tile": ("tile_param { tiles: 2 }", X),
}
NO_TOPS = {"Silence"}  # checked by test_silence
NOT_DIFFERENTIABLE = {"l", "i", "s", "h"}  # labels, indices, selectors, the infogain matrix


def _value(name: str, shape: tuple[int, ...], g: np.random.Generator) -> np.ndarray:
    if name == "l":
        return np.array([1.0, 4.0])
    if name == "i":
        return np.array([0.0, 2.0, 2.0, 1.0])
    if name == "s":
        return np.array([1.0, 0.0, 1.0, 1.0])
    if name == "h":
        return np.eye(6)
    return np.abs(g.standard_normal(shape)) + 0.1  # positive: Log, MultinomialLogisticLoss


def _case(type_: str):
    if type_ not in CASES:  # a type registered later: try it as a one-bottom layer
        return "", X
    return CASES[type_]


def _net(type_: str):
    body, shapes = _case(type_)
    tops = ("y", "y2") if type_ == "Slice" else ("y",)
    if not shapes:
        return parse_net(f'layer {{ name: "l" type: "{type_}" top: "y" {body} }}'), {}
    return layer_net(f'type: "{type_}" {body}', shapes, tops), shapes


LAYERS = sorted(t for t, spec in REGISTRY.items() if not spec.data and t not in NO_TOPS)


def test_every_registered_type_is_checked():
    assert {t for t, spec in REGISTRY.items() if not spec.data} - NO_TOPS - set(LAYERS) == set()
    missing = sorted(t for t in LAYERS if t not in CASES)
    for type_ in missing:  # the one-bottom fallback must build, else add a case to CASES
        try:
            build_model(_net(type_)[0], "TRAIN")
        except Exception as exc:  # noqa: BLE001
            pytest.fail(f"{type_}: add a one-layer case to CASES in {__file__} ({exc})")


@pytest.mark.parametrize("type_", LAYERS)
def test_gradient_flag(type_):
    net, shapes = _net(type_)
    model = build_model(net, "TRAIN", seed=0).double()
    g = np.random.default_rng(0)
    inputs = {n: torch.from_numpy(_value(n, s, g)).requires_grad_(n not in NOT_DIFFERENTIABLE)
              for n, s in shapes.items()}
    top = model(**inputs, keep="all")["y"]
    if not REGISTRY[type_].gradient:
        assert not top.requires_grad, f"{type_} is declared without a gradient but has one"
        return
    assert top.requires_grad, f"{type_} is declared with a gradient but its top carries none"
    top.sum().backward()
    grads = [t.grad for t in inputs.values() if t.requires_grad]
    grads += [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None for g in grads), f"{type_}: no gradient reached a bottom or a blob"


@pytest.mark.parametrize("type_", LAYERS)
def test_onnx_flag(type_):
    net, shapes = _net(type_)
    model = build_model(net, "TEST", seed=0)
    g = np.random.default_rng(1)
    inputs = {n: _value(n, s, g) for n, s in shapes.items()}
    if not REGISTRY[type_].onnx:
        with pytest.raises(Exception):
            ort_vs_torch(model, inputs)
        return
    ours, theirs, _ = ort_vs_torch(model, inputs)
    np.testing.assert_allclose(theirs, ours, rtol=1e-5, atol=1e-5)


def test_silence():
    """Silence has no top: its bottoms get no gradient (Caffe's Backward writes zeros), and a
    net holding it exports the rest."""
    assert REGISTRY["Silence"].gradient and REGISTRY["Silence"].onnx
    model = build_model(parse_net('input: "x" input_shape { dim: 2 dim: 3 }\n'
                                  'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n'
                                  'layer { name: "s" type: "Silence" bottom: "y" }'))
    x = np.random.default_rng(2).standard_normal((2, 3))
    ours, theirs, _ = ort_vs_torch(model, {"x": x})
    np.testing.assert_allclose(theirs, ours, rtol=1e-6)


def test_data_layers_are_inputs():
    data = {t for t, spec in REGISTRY.items() if spec.data}
    assert {"Data", "DummyData", "ImageData", "Input", "MemoryData"} <= data

"""DummyData: its tops are model inputs with Caffe's shapes; dummy_data_values gives Caffe's fill."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model
from converter.layers.dummy_data import dummy_data_values
from converter.onnx_export import export_onnx

from .util import parse_net, rng

TWO_TOPS = """
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { %s } }
"""


def build(param, **kwargs):
    return build_model(parse_net(TWO_TOPS % param), **kwargs)


@pytest.mark.parametrize("param,want", [
    ("shape { dim: 2 dim: 3 dim: 5 dim: 4 }", [(2, 3, 5, 4), (2, 3, 5, 4)]),
    ("shape { dim: 2 dim: 3 dim: 5 dim: 4 } shape { dim: 2 }", [(2, 3, 5, 4), (2,)]),
    ("num: 2 channels: 3 channels: 1 height: 5 width: 4 width: 1", [(2, 3, 5, 4), (2, 1, 5, 1)]),
])
def test_tops_are_inputs_with_caffes_shapes(param, want):
    model = build(param)
    assert model.input_names == ["data", "label"]
    assert [model.input_shapes[t] for t in ("data", "label")] == want


def test_given_shape_overrides():
    model = build("shape { dim: 32 dim: 3 dim: 7 dim: 6 } shape { dim: 32 }",
                  input_shapes={"data": (1, 3, 7, 6)})
    assert model.input_shapes == {"data": (1, 3, 7, 6), "label": (32,)}


@pytest.mark.parametrize("param,message", [
    ("shape { dim: 2 } num: 2 channels: 1 height: 1 width: 1", "both shape and the legacy"),
    ("num: 2 channels: 1 height: 1", "'width' must be given once, or once per top blob \\(2\\)"),
    ("shape { dim: 2 } shape { dim: 2 } shape { dim: 2 }", "'shape' must be given once"),
    ("", "'shape' must be given once"),
    ("shape { dim: 2 } data_filler { type: 'constant' } data_filler { type: 'constant' } "
     "data_filler { type: 'constant' }", "number of data fillers must be 0, 1 or the number"),
    ("shape { dim: 2 } data_filler { type: 'nope' }", "unknown filler type 'nope'"),
])
def test_errors(param, message):
    with pytest.raises(ConverterError, match=message) as err:
        build(param)
    assert "layer 'data' (DummyData)" in str(err.value)


def test_values_are_caffes_fill():
    model = build("shape { dim: 3 dim: 2 dim: 5 dim: 4 } shape { dim: 3 } "
                  "data_filler { type: 'gaussian' std: 2 } data_filler { type: 'constant' value: 7 }")
    g = torch.Generator().manual_seed(0)
    first, second = dummy_data_values(model, g), dummy_data_values(model, g)
    assert first["data"].shape == (3, 2, 5, 4) and first["label"].shape == (3,)
    assert torch.equal(first["label"], torch.full((3,), 7.0))  # constant: the same every time
    assert not torch.equal(first["data"], second["data"])      # random: refilled each forward
    big = build_model(parse_net(TWO_TOPS.replace('top: "label"', "") % (
        "shape { dim: 200 dim: 300 } data_filler { type: 'gaussian' mean: 1 std: 2 }")))
    values = dummy_data_values(big, torch.Generator().manual_seed(1))["data"]
    assert abs(values.mean().item() - 1) < 0.05 and abs(values.std().item() - 2) < 0.05


def test_no_filler_is_zeros_for_every_top():
    model = build("shape { dim: 2 dim: 3 } shape { dim: 4 }")
    values = dummy_data_values(model)
    assert not values["data"].any() and not values["label"].any()
    assert values["label"].shape == (4,)


def test_one_filler_serves_every_top():
    model = build("shape { dim: 2 dim: 3 } data_filler { type: 'constant' value: 0.5 }")
    values = dummy_data_values(model, dtype=torch.float64)
    assert values["data"].dtype == torch.float64
    assert (values["data"] == 0.5).all() and (values["label"] == 0.5).all()


BENCHMARK = """
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { data_filler { type: "constant" value: 0.01 }
                           shape { dim: 4 dim: 3 dim: 7 dim: 6 } shape { dim: 4 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 5 weight_filler { type: "xavier" } } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
layer { name: "silence" type: "Silence" bottom: "label" }
"""


def test_benchmark_net_runs_on_its_own_values_and_exports(tmp_path):
    """Intel Caffe benchmark style: DummyData stands in for the image and the label."""
    model = build_model(parse_net(BENCHMARK), seed=0)
    out = model(**dummy_data_values(model))
    assert out["prob"].shape == (4, 5)
    model = build_model(parse_net(BENCHMARK.replace('top: "label"', "").replace(
        "shape { dim: 4 }", "").replace('layer { name: "silence" type: "Silence" bottom: "label" }',
                                        "")), seed=0)
    x = rng().standard_normal((2, 3, 7, 6)).astype(np.float32)
    report = export_onnx(model, tmp_path / "b.onnx", real_inputs=x, tolerance=1e-5)
    assert report.input_name == "data" and report.differences["real inputs"] <= 1e-5

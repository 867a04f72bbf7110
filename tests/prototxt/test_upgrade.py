"""Old formats are upgraded once at read time, each upgrade logged."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from prototxt import caffe_pb2, io
from prototxt.errors import PrototxtError
from prototxt.upgrade import SOLVER_TYPE_NAMES, V1_TYPE_NAMES, upgrade_net, upgrade_solver

V1_NET = """
name: "old"
layers {
  name: "mnist" type: DATA top: "data" top: "label"
  data_param { source: "mnist_train_lmdb" backend: LMDB batch_size: 64 scale: 0.00390625
               mirror: true crop_size: 24 mean_file: "mean.binaryproto" }
  include { phase: TRAIN }
}
layers {
  name: "conv1" type: CONVOLUTION bottom: "data" top: "conv1"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 param: "w" param: "b"
  convolution_param { num_output: 20 kernel_size: 5 stride: 1 weight_filler { type: "xavier" } }
}
layers { name: "loss" type: SOFTMAX_LOSS bottom: "conv1" bottom: "label" top: "loss" loss_weight: 2 }
"""


def test_v1_text_net(tmp_path, caplog):
    path = tmp_path / "v1.prototxt"
    path.write_text(V1_NET)
    with caplog.at_level(logging.INFO, logger="prototxt.upgrade"):
        net = io.read_net(path)
    assert len(net.layers) == 0 and [l.type for l in net.layer] == ["Data", "Convolution", "SoftmaxWithLoss"]
    data, conv, loss = net.layer
    assert data.include[0].phase == caffe_pb2.TRAIN
    assert data.transform_param == caffe_pb2.TransformationParameter(
        scale=0.00390625, mirror=True, crop_size=24, mean_file="mean.binaryproto")
    assert not data.data_param.HasField("scale") and data.data_param.batch_size == 64
    assert [(p.name, p.lr_mult, p.decay_mult) for p in conv.param] == [("w", 1, 1), ("b", 2, 0)]
    assert conv.convolution_param.num_output == 20 and list(conv.convolution_param.kernel_size) == [5]
    assert list(loss.bottom) == ["conv1", "label"] and list(loss.loss_weight) == [2]
    messages = [r.getMessage() for r in caplog.records]
    assert any(str(path) in m and "3 V1 layers" in m for m in messages)
    assert any("transform_param" in m for m in messages)
    # upgrading is done once: a second pass finds nothing to do
    assert upgrade_net(net) == []


def test_v1_binary_caffemodel_keeps_blobs(tmp_path, rng):
    old = caffe_pb2.NetParameter()
    layer = old.layers.add(name="ip", type=caffe_pb2.V1LayerParameter.INNER_PRODUCT, bottom=["x"], top=["y"])
    weights = rng.standard_normal(21).astype(np.float32)
    blob = layer.blobs.add(num=1, channels=1, height=3, width=7)
    blob.data.extend(weights.tolist())
    path = io.write_binary(old, tmp_path / "old.caffemodel")
    net = io.read_caffemodel(path)
    assert net.layer[0].type == "InnerProduct"
    assert np.array_equal(np.asarray(net.layer[0].blobs[0].data, np.float32), weights)
    assert net.layer[0].blobs[0].height == 3


def test_every_v1_type_has_a_name():
    names = set(caffe_pb2.V1LayerParameter.LayerType.keys())
    assert names == set(V1_TYPE_NAMES)
    assert set(caffe_pb2.SolverParameter.SolverType.keys()) == set(SOLVER_TYPE_NAMES)


def test_v1_type_none_is_an_error():
    net = caffe_pb2.NetParameter()
    net.layers.add(name="mystery", type=caffe_pb2.V1LayerParameter.NONE)
    with pytest.raises(PrototxtError, match="mystery"):
        upgrade_net(net, "x.prototxt")


def test_v0_is_refused():
    net = caffe_pb2.NetParameter()
    net.layers.add().layer.name = "conv1"
    with pytest.raises(PrototxtError, match="V0"):
        upgrade_net(net)


def test_input_dim_to_input_shape():
    net = io.parse_text('input: "data" input_dim: 1 input_dim: 3 input_dim: 227 input_dim: 199',
                        caffe_pb2.NetParameter())
    assert upgrade_net(net) == ["upgraded input_dim to input_shape"]
    assert list(net.input) == ["data"] and list(net.input_shape[0].dim) == [1, 3, 227, 199]
    assert len(net.input_dim) == 0
    bad = io.parse_text('input: "data" input_dim: 1 input_dim: 3', caffe_pb2.NetParameter())
    with pytest.raises(PrototxtError, match="4 per input"):
        upgrade_net(bad, "deploy.prototxt")


def test_input_shape_is_left_alone(seed_job):
    deploy = io.read_net(seed_job / "deploy.prototxt")
    assert list(deploy.input) == ["data"] and list(deploy.input_shape[0].dim) == [1, 3, 224, 224]


def test_batch_norm_zero_lr_params_removed():
    net = io.parse_text('layer { name: "bn" type: "BatchNorm" param { lr_mult: 0 } param { lr_mult: 0 } '
                        'param { lr_mult: 0 } }', caffe_pb2.NetParameter())
    upgrade_net(net)
    assert len(net.layer[0].param) == 0


@pytest.mark.parametrize("enum,name", sorted(SOLVER_TYPE_NAMES.items()))
def test_solver_type(enum, name, caplog):
    solver = io.parse_text(f"base_lr: 0.01 solver_type: {enum}", caffe_pb2.SolverParameter())
    with caplog.at_level(logging.INFO, logger="prototxt.upgrade"):
        upgrade_solver(solver, "solver.prototxt")
    assert solver.type == name and not solver.HasField("solver_type")
    assert "solver.prototxt" in caplog.records[0].getMessage()


def test_solver_type_conflict():
    solver = io.parse_text('solver_type: ADAM type: "SGD"', caffe_pb2.SolverParameter())
    with pytest.raises(PrototxtError, match="disagree"):
        upgrade_solver(solver, "solver.prototxt")

"""Old formats are upgraded once at read time, each upgrade logged."""
from __future__ import annotations

import logging

import numpy as np
import pytest

from prototxt import caffe_pb2, io
from prototxt.errors import PrototxtError
from prototxt.upgrade import (SOLVER_TYPE_NAMES, V0_FIELDS, V0_TYPES, V1_TYPE_NAMES, upgrade_net,
                              upgrade_solver)

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


# The 2013 CaffeNet structure in Caffe's V0 format (imagenet.prototxt of that time, cut short),
# with its "padding" layers, and the same net as Caffe's upgrade_net_proto_text writes it today.
V0_CAFFENET = """
name: "CaffeNet"
layers {
  layer { name: "data" type: "data" source: "ilsvrc12_train_leveldb"
          meanfile: "imagenet_mean.binaryproto" batchsize: 256 cropsize: 227 mirror: true
          rand_skip: 7 scale: 0.5 }
  top: "data" top: "label"
}
layers {
  layer { name: "conv1" type: "conv" num_output: 96 kernelsize: 11 stride: 4
          weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0. }
          blobs_lr: 1. blobs_lr: 2. weight_decay: 1. weight_decay: 0. }
  bottom: "data" top: "conv1"
}
layers { layer { name: "relu1" type: "relu" } bottom: "conv1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: MAX kernelsize: 3 stride: 2 } bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 5 alpha: 0.0001 beta: 0.75 k: 2 }
         bottom: "pool1" top: "norm1" }
layers { layer { name: "pad2" type: "padding" pad: 2 } bottom: "norm1" top: "pad2" }
layers {
  layer { name: "conv2" type: "conv" num_output: 256 group: 2 kernelsize: 5 biasterm: false
          weight_filler { type: "gaussian" std: 0.01 } blobs_lr: 1. weight_decay: 1. }
  bottom: "pad2" top: "conv2"
}
layers { layer { name: "pad3" type: "padding" pad: 1 } bottom: "conv2" top: "pad3" }
layers { layer { name: "pool2" type: "pool" pool: AVE kernelsize: 3 stride: 2 } bottom: "pad3" top: "pool2" }
layers { layer { name: "fc6" type: "innerproduct" num_output: 4096
                 weight_filler { type: "gaussian" std: 0.005 } bias_filler { type: "constant" value: 1. } }
         bottom: "pool2" top: "fc6" }
layers { layer { name: "drop6" type: "dropout" dropout_ratio: 0.4 } bottom: "fc6" top: "fc6" }
layers { layer { name: "fc8" type: "innerproduct" num_output: 1000 } bottom: "fc6" top: "fc8" }
layers { layer { name: "acc" type: "accuracy" } bottom: "fc8" bottom: "label" top: "accuracy" }
layers { layer { name: "loss" type: "softmax_loss" } bottom: "fc8" bottom: "label" }
"""

MODERN_CAFFENET = """
name: "CaffeNet"
layer { name: "data" type: "Data" top: "data" top: "label"
        transform_param { mean_file: "imagenet_mean.binaryproto" crop_size: 227 mirror: true scale: 0.5 }
        data_param { source: "ilsvrc12_train_leveldb" batch_size: 256 rand_skip: 7 } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 96 kernel_size: 11 stride: 4
          weight_filler { type: "gaussian" std: 0.01 } bias_filler { type: "constant" value: 0 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 k: 2 } }
layer { name: "conv2" type: "Convolution" bottom: "norm1" top: "conv2"
        param { lr_mult: 1 decay_mult: 1 }
        convolution_param { num_output: 256 pad: 2 kernel_size: 5 group: 2 bias_term: false
          weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "pool2" type: "Pooling" bottom: "conv2" top: "pool2"
        pooling_param { pool: AVE pad: 1 kernel_size: 3 stride: 2 } }
layer { name: "fc6" type: "InnerProduct" bottom: "pool2" top: "fc6"
        inner_product_param { num_output: 4096 weight_filler { type: "gaussian" std: 0.005 }
                              bias_filler { type: "constant" value: 1 } } }
layer { name: "drop6" type: "Dropout" bottom: "fc6" top: "fc6" dropout_param { dropout_ratio: 0.4 } }
layer { name: "fc8" type: "InnerProduct" bottom: "fc6" top: "fc8" inner_product_param { num_output: 1000 } }
layer { name: "acc" type: "Accuracy" bottom: "fc8" bottom: "label" top: "accuracy" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc8" bottom: "label" }
"""


def test_v0_text_net_equals_the_modern_one(tmp_path, caplog):
    path = tmp_path / "imagenet.prototxt"
    path.write_text(V0_CAFFENET)
    with caplog.at_level(logging.INFO, logger="prototxt.upgrade"):
        net = io.read_net(path)
    modern = io.parse_text(MODERN_CAFFENET, caffe_pb2.NetParameter())
    for ours, theirs in zip(net.layer, modern.layer, strict=True):
        assert ours == theirs, ours.name
    assert net == modern
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        f"{path}: folded 2 V0 padding layer(s) into the pad of the conv/pool layer each feeds",
        f"{path}: upgraded 12 V0 layers (layers {{ layer {{ type: \"conv\" }} }}) to V1 layers",
        f"{path}: upgraded 12 V1 layers (layers {{ type: ENUM }}) to layer {{ type: \"Name\" }}"]
    assert upgrade_net(net) == []


V0_LENET_DEPLOY = """
name: "LeNet" input: "data" input_dim: 1 input_dim: 1 input_dim: 28 input_dim: 28
layers { layer { name: "pad1" type: "padding" pad: 1 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 5 kernelsize: 5 } bottom: "pad1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: MAX kernelsize: 2 stride: 2 } bottom: "conv1" top: "pool1" }
layers { layer { name: "ip1" type: "innerproduct" num_output: 7 } bottom: "pool1" top: "ip1" }
layers { layer { name: "prob" type: "softmax" } bottom: "ip1" top: "prob" }
"""


def test_v0_binary_caffemodel_keeps_blobs_and_equals_the_modern_one(tmp_path, rng):
    old = io.parse_text(V0_LENET_DEPLOY, caffe_pb2.NetParameter())
    shapes = {"conv1": [(5, 1, 5, 5), (1, 1, 1, 5)], "ip1": [(1, 1, 7, 5 * 13 * 13), (1, 1, 1, 7)]}
    arrays = {}
    for entry in old.layers:
        for dims in shapes.get(entry.layer.name, []):
            values = rng.standard_normal(int(np.prod(dims))).astype(np.float32)
            arrays.setdefault(entry.layer.name, []).append(values)
            blob = entry.layer.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3])
            blob.data.extend(values.tolist())
    path = io.write_binary(old, tmp_path / "lenet_v0.caffemodel")
    net = io.read_caffemodel(path)
    modern = io.parse_text("""
        name: "LeNet" input: "data" input_shape { dim: 1 dim: 1 dim: 28 dim: 28 }
        layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
                convolution_param { num_output: 5 kernel_size: 5 pad: 1 } }
        layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
                pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
        layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1" inner_product_param { num_output: 7 } }
        layer { name: "prob" type: "Softmax" bottom: "ip1" top: "prob" }""", caffe_pb2.NetParameter())
    for layer in modern.layer:
        for dims, values in zip(shapes.get(layer.name, []), arrays.get(layer.name, [])):
            layer.blobs.add(num=dims[0], channels=dims[1], height=dims[2], width=dims[3]).data.extend(values.tolist())
    assert net == modern
    assert np.array_equal(np.asarray(net.layer[2].blobs[0].data, np.float32), arrays["ip1"][0])


def test_every_v0_type_and_field_maps_onto_the_schema():
    v1_types = set(caffe_pb2.V1LayerParameter.LayerType.keys())
    assert set(V0_TYPES.values()) <= v1_types and len(V0_TYPES) == 24
    v0_fields = {f.name for f in caffe_pb2.V0LayerParameter.DESCRIPTOR.fields}
    assert set(V0_FIELDS) | {"name", "type", "blobs", "blobs_lr", "weight_decay",
                             "new_num", "new_channels"} == v0_fields
    for field, targets in V0_FIELDS.items():
        for kind, path in targets.items():
            assert kind in V0_TYPES or kind == "*", (field, kind)
            message = caffe_pb2.V1LayerParameter()
            *parents, leaf = path.split(".")
            for name in parents:
                message = getattr(message, name)
            assert leaf in message.DESCRIPTOR.fields_by_name, path


def test_v0_window_data_images_and_concat_fields():
    net = io.parse_text("""
        layers { layer { name: "w" type: "window_data" source: "w.txt" batchsize: 4 det_fg_threshold: 0.6
                         det_bg_threshold: 0.3 det_fg_fraction: 0.2 det_context_pad: 16 det_crop_mode: "square"
                         cropsize: 227 } top: "a" top: "b" }
        layers { layer { name: "i" type: "images" source: "list.txt" batchsize: 2 shuffle_images: true
                         new_height: 32 new_width: 30 rand_skip: 3 } top: "c" top: "d" }
        layers { layer { name: "h" type: "hdf5_data" source: "h5.txt" batchsize: 5 } top: "e" }
        layers { layer { name: "cat" type: "concat" concat_dim: 0 } bottom: "a" bottom: "c" top: "f" }
        layers { layer { name: "out" type: "hdf5_output" hdf5_output_param { file_name: "o.h5" } }
                 bottom: "f" bottom: "e" }
        layers { layer { name: "ig" type: "infogain_loss" source: "H.binaryproto" } bottom: "f" bottom: "b" }
        """, caffe_pb2.NetParameter())
    upgrade_net(net)
    w, i, h, cat, out, ig = net.layer
    assert (w.type, i.type, h.type, cat.type, out.type, ig.type) == (
        "WindowData", "ImageData", "HDF5Data", "Concat", "HDF5Output", "InfogainLoss")
    assert w.window_data_param == caffe_pb2.WindowDataParameter(
        source="w.txt", batch_size=4, fg_threshold=0.6, bg_threshold=0.3, fg_fraction=0.2,
        context_pad=16, crop_mode="square")
    assert w.transform_param.crop_size == 227
    assert i.image_data_param == caffe_pb2.ImageDataParameter(
        source="list.txt", batch_size=2, shuffle=True, new_height=32, new_width=30, rand_skip=3)
    assert h.hdf5_data_param == caffe_pb2.HDF5DataParameter(source="h5.txt", batch_size=5)
    assert cat.concat_param.concat_dim == 0 and out.hdf5_output_param.file_name == "o.h5"
    assert ig.infogain_loss_param.source == "H.binaryproto"


def test_v0_fields_caffe_drops_are_warned_about(caplog):
    net = io.parse_text('layers { layer { name: "r" type: "relu" num_output: 3 new_num: 2 } '
                        'bottom: "x" top: "x" } input: "x"', caffe_pb2.NetParameter())
    with caplog.at_level(logging.WARNING, logger="prototxt.upgrade"):
        upgrade_net(net, "old.prototxt")
    assert net.layer[0] == caffe_pb2.LayerParameter(name="r", type="ReLU", bottom=["x"], top=["x"])
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "'num_output'" in warned and "'new_num'" in warned and "old.prototxt" in warned


@pytest.mark.parametrize("text,match", [
    ('layers { layer { name: "c" type: "convolution" } bottom: "x" }', "unknown type 'convolution'"),
    ('layers { layer { name: "c" } bottom: "x" }', "has no type"),
    ('layers { layer { name: "c" type: "relu" } bottom: "nowhere" }', "'nowhere'"),
    ('layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "p" } '
     'layers { layer { name: "r" type: "relu" } bottom: "p" top: "r" }', "only into conv and pool"),
    ('layers { layer { name: "p" type: "padding" pad: 1 } bottom: "x" top: "p" } '
     'layers { layer { name: "c" type: "conv" } bottom: "p" bottom: "x" top: "c" }', "one bottom"),
    ('layers { layer { name: "c" type: "conv" } bottom: "x" } '
     'layers { name: "r" type: RELU bottom: "x" }', "a net uses one format"),
])
def test_v0_errors(text, match):
    net = io.parse_text('input: "x" ' + text, caffe_pb2.NetParameter())
    with pytest.raises(PrototxtError, match=match) as info:
        upgrade_net(net, "old.prototxt")
    assert "old.prototxt" in str(info.value)


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

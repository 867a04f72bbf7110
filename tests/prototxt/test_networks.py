"""The standard networks: our builders against DIGITS 6.1.1's files, and the builder itself."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from google.protobuf import text_format

from prototxt import caffe_pb2
from prototxt.errors import PrototxtError
from prototxt.networks import STANDARD_NETWORKS, build_network, network_path
from prototxt.networks.build import render
from prototxt.netspec import Net, NetSpecError

# digits.md §6: GoogLeNet's 167 layers by type.
GOOGLENET_TYPES = {"Data": 2, "Convolution": 59, "ReLU": 61, "Pooling": 16, "LRN": 2,
                   "Concat": 9, "InnerProduct": 5, "Dropout": 3, "SoftmaxWithLoss": 3,
                   "Accuracy": 6, "Softmax": 1}


def parse(path: Path) -> caffe_pb2.NetParameter:
    return text_format.Parse(path.read_text(encoding="utf-8"), caffe_pb2.NetParameter())


def difference(expected: caffe_pb2.NetParameter, actual: caffe_pb2.NetParameter) -> str:
    """Where two nets first differ, for an assertion message."""
    def one_line(message) -> str:
        return text_format.MessageToString(message, as_one_line=True)

    for i, (want, got) in enumerate(zip(expected.layer, actual.layer)):
        if want != got:
            return (f"layer {i} {want.name!r} differs:\n"
                    f"  want {one_line(want)}\n  got  {one_line(got)}")
    if len(expected.layer) != len(actual.layer):
        return f"{len(expected.layer)} layers expected, {len(actual.layer)} built"
    want, got = caffe_pb2.NetParameter(), caffe_pb2.NetParameter()
    want.CopyFrom(expected)
    got.CopyFrom(actual)
    del want.layer[:]
    del got.layer[:]
    return f"net fields differ:\n  want {one_line(want)}\n  got  {one_line(got)}"


@pytest.mark.parametrize("name", STANDARD_NETWORKS)
def test_builder_equals_digits_reference(name: str, reference_dir: Path) -> None:
    reference = parse(reference_dir / "digits" / f"{name}.prototxt")
    built = build_network(name)
    assert built == reference, difference(reference, built)


@pytest.mark.parametrize("name", STANDARD_NETWORKS)
def test_shipped_file_is_current(name: str) -> None:
    built = build_network(name)
    shipped = parse(network_path(name))
    assert shipped == built, (difference(built, shipped)
                              + "\nrun: python -m prototxt.networks.build")
    assert network_path(name).read_text(encoding="utf-8") == render(name)


def test_googlenet_layer_counts(reference_dir: Path) -> None:
    reference = parse(reference_dir / "digits" / "googlenet.prototxt")
    built = build_network("googlenet")
    assert Counter(layer.type for layer in reference.layer) == GOOGLENET_TYPES
    assert Counter(layer.type for layer in built.layer) == GOOGLENET_TYPES
    assert len(built.layer) == 167


def test_unknown_network_names_the_choices() -> None:
    with pytest.raises(PrototxtError, match="lenet, alexnet, googlenet"):
        build_network("vgg16")
    with pytest.raises(PrototxtError):
        network_path("../etc/passwd")


def test_bad_field_names_layer_and_field() -> None:
    net = Net("Test")
    with pytest.raises(NetSpecError) as info:
        net.layer("conv1", "Convolution", "data",
                  convolution_param=dict(num_output=8, kernel_sise=3))
    message = str(info.value)
    assert "conv1" in message and "convolution_param.kernel_sise" in message
    assert "did you mean 'kernel_size'" in message
    assert info.value.field == "convolution_param.kernel_sise"
    assert len(net.proto.layer) == 0  # the half-built layer is not left behind

    with pytest.raises(NetSpecError, match=r"'ip'.*param\[1\]\.lr_mul"):
        net.layer("ip", "InnerProduct", "data", param=[dict(lr_mult=1), dict(lr_mul=2)])
    with pytest.raises(NetSpecError, match="'relu'.*no field 'bogus'"):
        net.layer("relu", "ReLU", "x", top="x", bogus=1)


def test_bad_values_name_layer_and_field() -> None:
    net = Net("Test")
    with pytest.raises(NetSpecError, match=r"'pool1'.*pooling_param\.pool.*MAX, AVE"):
        net.layer("pool1", "Pooling", "x", pooling_param=dict(pool="MAXIMUM"))
    with pytest.raises(NetSpecError, match=r"'conv'.*convolution_param\.num_output"):
        net.layer("conv", "Convolution", "x", convolution_param=dict(num_output="64"))
    with pytest.raises(NetSpecError, match=r"'conv'.*param: is repeated"):
        net.layer("conv", "Convolution", "x", param=dict(lr_mult=1))
    with pytest.raises(NetSpecError, match=r"'conv'.*convolution_param: expected a dict"):
        net.layer("conv", "Convolution", "x", convolution_param=64)
    with pytest.raises(NetSpecError, match="net field forc_backward"):
        Net("Test", forc_backward=True)


def test_enums_repeated_fields_and_presence() -> None:
    net = Net("Test", force_backward=True)
    top = net.layer("pool1", "Pooling", "conv1", pooling_param=dict(pool="AVE", kernel_size=3))
    net.layer("pool2", "Pooling", top, pooling_param=dict(pool=caffe_pb2.PoolingParameter.MAX))
    net.layer("conv", "Convolution", ["a"], top=[], include=[dict(stage=["val", "x"])],
              exclude=[dict()], loss_weight=[0.3],
              convolution_param=dict(kernel_size=[3, 5], pad=1, stride=None,
                                     weight_filler=dict(type="xavier")))
    pool1, pool2, conv = net.proto.layer
    assert net.proto.force_backward
    assert top == "pool1" and list(pool1.top) == ["pool1"] and list(pool2.bottom) == ["pool1"]
    assert pool1.pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert pool2.pooling_param.pool == caffe_pb2.PoolingParameter.MAX
    assert list(conv.top) == [] and list(conv.include[0].stage) == ["val", "x"]
    assert len(conv.exclude) == 1 and not conv.exclude[0].ListFields()
    assert list(conv.loss_weight) == [pytest.approx(0.3)]
    param = conv.convolution_param
    assert list(param.kernel_size) == [3, 5] and list(param.pad) == [1]
    assert not param.stride  # None leaves a field unset
    assert not param.weight_filler.HasField("std")
    assert param.HasField("weight_filler") and not param.HasField("bias_filler")


def test_value_equal_to_default_is_still_written() -> None:
    net = Net("Test")
    net.layer("ip", "InnerProduct", "x", param=[dict(lr_mult=1, decay_mult=1)])
    assert net.proto.layer[0].param[0].HasField("decay_mult")
    assert "decay_mult: 1" in text_format.MessageToString(net.proto)

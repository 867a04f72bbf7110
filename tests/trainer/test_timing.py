"""trainer.timing: `caffe time` per-layer report, its attribution, inputs and command line."""
from __future__ import annotations

import argparse
import re

import numpy as np
import pytest
import torch
from torch import nn

from converter import ConverterError, build_model
from prototxt import caffe_pb2, parse_text, write_text
from tests.trainer.tiny import make_dataset
from trainer.timing import (add_parser, main, multiply_adds, random_inputs, standard_train_val,
                            time_net, with_batch)

# Two branches from one bottom (an inception module in small), then a classifier, loss and
# accuracy. N=3, C=2, H=9, W=7.
BRANCHED = """
name: "branched"
input: "data"  input_shape { dim: 3 dim: 2 dim: 9 dim: 7 }
input: "label" input_shape { dim: 3 }
layer { name: "conv0" type: "Convolution" bottom: "data" top: "conv0"
        convolution_param { num_output: 4 kernel_size: 3 pad: 1 weight_filler { type: "xavier" } } }
layer { name: "a/conv" type: "Convolution" bottom: "conv0" top: "a"
        convolution_param { num_output: 3 kernel_size: 1 weight_filler { type: "xavier" } } }
layer { name: "b/conv" type: "Convolution" bottom: "conv0" top: "b"
        convolution_param { num_output: 5 kernel_h: 3 kernel_w: 1 pad_h: 1 pad_w: 0
                            weight_filler { type: "xavier" } } }
layer { name: "b/relu" type: "ReLU" bottom: "b" top: "b" }
layer { name: "cat" type: "Concat" bottom: "a" bottom: "b" top: "cat" }
layer { name: "pool" type: "Pooling" bottom: "cat" top: "pool"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "ip" type: "InnerProduct" bottom: "pool" top: "ip"
        inner_product_param { num_output: 6 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
layer { name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" }
"""

DATA_NET = """
name: "with-data"
layer { name: "train-data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { crop_size: 5 } data_param { batch_size: 3 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 7 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""

DEPLOY = """
name: "deploy"
input: "data" input_shape { dim: 2 dim: 3 dim: 5 dim: 4 }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 } }
layer { name: "prob" type: "Softmax" bottom: "ip" top: "prob" }
"""


def net(text: str) -> caffe_pb2.NetParameter:
    return parse_text(text, caffe_pb2.NetParameter())


def test_report_has_every_layer_and_consistent_totals():
    report = time_net(net(BRANCHED), iterations=3, seed=1)
    names = [t.layer for t in report.layers]
    assert names == ["conv0", "a/conv", "b/conv", "b/relu", "cat", "pool", "ip", "loss", "acc"]
    assert all(t.forward_ms >= 0 and t.backward_ms >= 0 for t in report.layers)
    assert report.forward_backward_ms == pytest.approx(report.forward_ms + report.backward_ms)
    assert report.total_ms == pytest.approx(sum(report.iteration_ms))
    assert report.total_ms == pytest.approx(report.forward_backward_ms * 3, rel=1e-6)
    assert len(report.iteration_ms) == 3
    # Layer times are parts of the totals (hooks run inside the timed model call / backward).
    assert sum(t.forward_ms for t in report.layers) <= report.forward_ms
    assert sum(t.backward_ms for t in report.layers) <= report.backward_ms
    by_name = {t.layer: t for t in report.layers}
    assert by_name["acc"].backward_ms == 0  # Accuracy has no gradient
    assert by_name["a/conv"].backward_ms > 0 and by_name["b/conv"].backward_ms > 0
    assert report.initial_loss is not None and report.initial_loss > 0
    assert report.phase == "TRAIN" and report.batch == 3


class Clock:
    """A fake perf_counter: time passes only when `advance` is called, so the test sees where
    the timer charges a known cost, whatever the machine's load."""

    def __init__(self):
        self.t = 0.0

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class SlowBackward(torch.autograd.Function):
    clock: Clock

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        SlowBackward.clock.advance(0.3)
        return grad


class Slowed(nn.Module):
    """Wraps a layer module: its backward costs 300 ms more on the fake clock."""

    def __init__(self, inner: nn.Module):
        super().__init__()
        self.inner = inner

    def forward(self, *args):
        return SlowBackward.apply(self.inner(*args))


def test_backward_is_charged_to_the_right_layer(monkeypatch):
    clock = SlowBackward.clock = Clock()
    monkeypatch.setattr("trainer.timing.time.perf_counter", clock)
    model = build_model(net(BRANCHED), "TRAIN", seed=2)
    step = next(s for s in model.steps if s.layer == "a/conv")  # a branch, not the last one
    setattr(model, step.module, Slowed(getattr(model, step.module)))
    report = time_net(model, iterations=2, warmup=0)
    times = {t.layer: t.backward_ms for t in report.layers}
    assert times["a/conv"] == pytest.approx(300)
    assert all(ms == 0 for name, ms in times.items() if name != "a/conv"), times
    assert report.backward_ms == pytest.approx(300) and report.forward_ms == 0


def test_labels_are_classes_of_the_loss():
    model = build_model(net(BRANCHED), "TRAIN", seed=0)
    inputs = random_inputs(model, seed=5)
    label = inputs["label"]
    assert label.shape == (3,) and label.dtype == torch.float32
    assert torch.equal(label, label.round()) and 0 <= label.min() and label.max() < 6
    assert inputs["data"].shape == (3, 2, 9, 7)
    again = random_inputs(model, seed=5)
    assert torch.equal(again["data"], inputs["data"])  # seeded


LOSSES = """
input: "s" input_shape { dim: 8 dim: 4 dim: 6 }  input: "l" input_shape { dim: 8 dim: 4 }
input: "h" input_shape { dim: 6 dim: 6 }
input: "t" input_shape { dim: 8 dim: 2 dim: 5 }  input: "m" input_shape { dim: 8 }
layer { name: "info" type: "InfogainLoss" bottom: "s" bottom: "l" bottom: "h" top: "info"
        infogain_loss_param { axis: 2 } }
layer { name: "hinge" type: "HingeLoss" bottom: "t" bottom: "m" top: "hinge" }
layer { name: "p" type: "Softmax" bottom: "t" top: "p" softmax_param { axis: 2 } }
layer { name: "mlog" type: "MultinomialLogisticLoss" bottom: "p" bottom: "m" top: "mlog" }
"""


def test_labels_of_infogain_hinge_and_multinomial_losses():
    """InfogainLoss: classes along infogain_loss_param.axis (6, not the 4 of axis 1); HingeLoss
    and MultinomialLogisticLoss: the count per item (2 x 5 = 10)."""
    model = build_model(net(LOSSES), "TRAIN", seed=0)
    inputs = random_inputs(model, seed=3)
    for name, classes, of_axis_1 in (("l", 6, 4), ("m", 10, 2)):
        label = inputs[name]
        assert torch.equal(label, label.round()) and 0 <= label.min() and label.max() < classes
        assert label.max() >= of_axis_1  # not below the size of axis 1
    assert model(**inputs).loss.isfinite()


DUMMY = """
layer { name: "data" type: "DummyData" top: "data" top: "label"
        dummy_data_param { shape { dim: 4 dim: 3 dim: 5 dim: 5 } shape { dim: 4 }
                           data_filler { type: "gaussian" std: 2 } data_filler { type: "constant" value: 2 } } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 3 weight_filler { type: "xavier" } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
"""


def test_dummy_data_tops_are_filled_as_caffe_fills_them():
    model = build_model(net(DUMMY), "TRAIN", seed=0)
    inputs = random_inputs(model, seed=4)
    assert torch.equal(inputs["label"], torch.full((4,), 2.0))  # the constant filler, not a draw
    assert inputs["data"].shape == (4, 3, 5, 5) and 1.5 < float(inputs["data"].std()) < 2.5
    assert torch.equal(random_inputs(model, seed=4)["data"], inputs["data"])
    report = time_net(net(DUMMY), iterations=1, phase="TRAIN")
    assert report.initial_loss is not None and report.initial_loss > 0


def test_multiply_adds_by_hand():
    model = build_model(net(BRANCHED), "TRAIN", seed=0)
    macs = multiply_adds(model)
    assert macs["conv0"] == 4 * 9 * 7 * (2 * 3 * 3)
    assert macs["a/conv"] == 3 * 9 * 7 * 4
    assert macs["b/conv"] == 5 * 9 * 7 * (4 * 3 * 1)
    assert macs["ip"] == 6 * (8 * 4 * 3)  # pool: 8 x ceil((9-3)/2)+1 x ceil((7-3)/2)+1
    assert set(macs) == {"conv0", "a/conv", "b/conv", "ip"}


def test_net_without_loss_has_no_backward():
    report = time_net(net(DEPLOY), iterations=2, phase="TEST")
    assert report.initial_loss is None and report.backward_ms < 5
    assert all(t.backward_ms == 0 for t in report.layers)


def test_data_layer_without_database_names_the_layer(tmp_path):
    path = tmp_path / "train_val.prototxt"
    write_text(net(DATA_NET), path)
    with pytest.raises(ConverterError, match=r"layer 'train-data' \(Data\): the shape .* cannot "
                                             r"be read: backend LEVELDB .*--input data=CxHxW"):
        time_net(path, iterations=1)
    assert main([str(path), "--iterations", "1"]) == 2


@pytest.mark.parametrize("force, channels", [("", 1), ("force_color: true", 3)])
def test_data_layer_shape_from_its_database(tmp_path, monkeypatch, capsys, force, channels):
    """As `caffe time`: the Data layer's first record gives C x H x W (after force_color), the
    layer its batch and crop; the source path is relative to the working folder, as in Caffe."""
    make_dataset(tmp_path / "ds", np.random.default_rng(3))  # 1 x 6 x 10 gray records
    monkeypatch.chdir(tmp_path)
    text = DATA_NET.replace("data_param { batch_size: 3 }",
                            'data_param { source: "ds/train_db" batch_size: 3 backend: LMDB }')
    text = text.replace("crop_size: 5", f"crop_size: 5 {force}")
    path = tmp_path / "train_val.prototxt"
    write_text(net(text), path)
    report = time_net(path, iterations=1)
    assert report.input_shapes == {"data": (3, channels, 5, 5), "label": (3,)}
    given = time_net(path, iterations=1, input_shapes={"data": (2, 9, 7)})  # --input still wins
    assert given.input_shapes["data"] == (3, 2, 5, 5)
    assert main([str(path), "--iterations", "1", "--batch", "2"]) == 0
    assert f"inputs data 2x{channels}x5x5, label 2" in capsys.readouterr().out


def test_data_layer_damaged_database_asks_for_input(tmp_path, monkeypatch):
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "data.mdb").write_bytes(b"\0" * 100)  # not an LMDB
    text = DATA_NET.replace("data_param { batch_size: 3 }",
                            f'data_param {{ source: "{tmp_path / "db"}" batch_size: 3 backend: LMDB }}')
    with pytest.raises(ConverterError, match=r"cannot be read: .*db.*--input data=CxHxW"):
        time_net(net(text), iterations=1)


def test_data_layer_with_input_and_batch():
    report = time_net(with_batch(net(DATA_NET), 4), iterations=1, input_shapes={"data": (2, 9, 6)})
    assert report.input_shapes == {"data": (4, 2, 5, 5), "label": (4,)}  # crop 5 from the layer


def test_cli_prints_caffe_time_format(tmp_path, capsys):
    path = tmp_path / "branched.prototxt"
    write_text(net(BRANCHED), path)
    assert main([str(path), "--iterations", "2", "--batch", "5"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert "Iteration: 2 forward-backward time:" in out
    assert "inputs data 5x2x9x7, label 5" in out
    start = lines.index("Average time per layer: ")
    number = r"\d+(\.\d+)?(e[-+]\d+)?"
    for i, layer in enumerate(["conv0", "a/conv", "b/conv", "b/relu", "cat", "pool", "ip",
                               "loss", "acc"]):
        name = re.escape(layer)
        assert re.fullmatch(rf" *{name}\tforward: {number} ms\.", lines[start + 1 + 2 * i])
        assert re.fullmatch(rf" *{name}\tbackward: {number} ms\.", lines[start + 2 + 2 * i])
    for label in ("Average Forward pass", "Average Backward pass", "Average Forward-Backward",
                  "Total Time"):
        assert re.search(rf"^{label}: {number} ms\.$", out, re.M), label
    assert lines[-1] == "*** Benchmark ends ***"


def test_cli_standard_network(capsys):
    assert main(["lenet", "--iterations", "1", "--batch", "4", "--fast"]) == 0
    out = capsys.readouterr().out
    assert "inputs data 4x1x28x28, label 4" in out
    assert "fast mode:" in out and "channels_last" in out


def test_standard_networks_use_digits_sizes():
    train_val, shapes = standard_train_val("googlenet", classes=10, batch=2)
    assert shapes == {"data": (3, 256, 256)}
    model = build_model(train_val, "TRAIN", input_shapes=shapes, materialize=False)
    assert model.input_shapes == {"data": (2, 3, 224, 224), "label": (2,)}
    assert model.blob_shapes()["loss3/classifier"] == (2, 10)
    train_val, _ = standard_train_val("alexnet")
    model = build_model(train_val, "TEST", input_shapes=shapes, materialize=False)
    assert model.input_shapes["data"][1:] == (3, 227, 227)


def test_add_parser_registers_time():
    parser = argparse.ArgumentParser()
    commands = parser.add_subparsers(dest="command")
    add_parser(commands)
    args = parser.parse_args(["time", "lenet", "--fast", "--input", "data=1x32x30",
                              "--phase", "test", "--stage", "val"])
    assert args.func.__name__ == "cmd_time" and args.fast and args.phase == "TEST"
    assert args.input == [("data", (1, 32, 30))] and args.stage == ["val"]
    with pytest.raises(SystemExit):
        parser.parse_args(["time", "lenet", "--input", "3x224x224"])


def test_bad_iterations():
    with pytest.raises(ValueError, match="at least 1"):
        time_net(net(DEPLOY), iterations=0, phase="TEST")


def test_cli_net_too_big_is_an_error_not_a_traceback(capsys):
    # issue 14 defect 2: LeNet with num_output 4000000000 was a RuntimeError from the allocator
    assert main(["lenet", "--iterations", "1", "--classes", "4000000000"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert "layer 'ip2' (InnerProduct)" in err and "too big for this machine" in err

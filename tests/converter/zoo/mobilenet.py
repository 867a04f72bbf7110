"""MobileNet v1 (Howard et al. 2017) and v2 (Sandler et al. 2018) as the Caffe ports in
shicai/MobileNet-Caffe have them, written from their structure.

v1: conv1 3x3/2 (32) then 13 depthwise-separable pairs: a 3x3 depthwise convolution
(`group` = channels, `engine: CAFFE` as the port sets it) and a 1x1 pointwise one, each
bias-free + BatchNorm (eps 1e-5) + Scale + ReLU; global average pool; the classifier fc7 is a
1x1 Convolution with bias; Softmax.

v2: conv1 3x3/2 (32), then 17 inverted-residual blocks (expansion t, output c, repeats n,
first stride s): (1,16,1,1) (6,24,2,2) (6,32,3,2) (6,64,4,2) (6,96,3,1) (6,160,3,2) (6,320,1,1),
each 1x1 expand (kept for t = 1 as the port has it) + ReLU, 3x3 depthwise + ReLU, 1x1 linear
projection (no ReLU), an Eltwise SUM when stride is 1 and channels match; 1x1 to 1280 + ReLU;
global average pool; fc7 1x1 Convolution; Softmax. Plain ReLU (the port has no ReLU6).
Blocks are named conv{row}_{i} after the row of that table (row 2 first), their sums block_{row}_{i}.
"""
from __future__ import annotations

from .common import ZooNet

EPS = 1e-5
V1 = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2)] + [(512, 1)] * 5 + [
    (1024, 2), (1024, 1)]
V1_NAMES = ["2_1", "2_2", "3_1", "3_2", "4_1", "4_2", "5_1", "5_2", "5_3", "5_4", "5_5", "5_6",
            "6"]
V2 = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
      (6, 160, 3, 2), (6, 320, 1, 1)]


def _conv_bn(net: ZooNet, name: str, bottom: str, num_output: int, kernel: int, stride: int = 1,
             group: int = 1, relu: str | None = None) -> str:
    extra = dict(engine="CAFFE") if group > 1 else {}
    top = net.conv(name, bottom, num_output, kernel, stride, pad=kernel // 2, group=group,
                   bias=False, **extra)
    net.bn(f"{name}/bn", f"{name}/scale", top, eps=EPS)
    return net.relu(relu, top) if relu else top


def mobilenet_v1() -> ZooNet:
    net = ZooNet("MobileNet", 224, input_style="input_dim")
    x = _conv_bn(net, "conv1", "data", 32, 3, 2, relu="relu1")
    channels = 32
    for (out, stride), name in zip(V1, V1_NAMES):
        x = _conv_bn(net, f"conv{name}/dw", x, channels, 3, stride, group=channels,
                     relu=f"relu{name}/dw")
        x = _conv_bn(net, f"conv{name}/sep", x, out, 1, relu=f"relu{name}/sep")
        channels = out
    x = net.pool("pool6", x, "AVE")
    x = net.conv("fc7", x, 1000, 1)
    net.softmax("prob", x)
    return net


def mobilenet_v2() -> ZooNet:
    net = ZooNet("MobileNetV2", 224, input_style="input_dim")
    x = _conv_bn(net, "conv1", "data", 32, 3, 2, relu="relu1")
    channels, stage = 32, 2
    for t, out, repeats, first_stride in V2:
        for i in range(repeats):
            name = f"conv{stage}_{i + 1}"
            stride = first_stride if i == 0 else 1
            hidden = channels * t
            y = _conv_bn(net, f"{name}/expand", x, hidden, 1, relu=f"relu{stage}_{i + 1}/expand")
            y = _conv_bn(net, f"{name}/dwise", y, hidden, 3, stride, group=hidden,
                         relu=f"relu{stage}_{i + 1}/dwise")
            y = _conv_bn(net, f"{name}/linear", y, out, 1)
            x = net.add(f"block_{stage}_{i + 1}", [x, y]) if stride == 1 and channels == out else y
            channels = out
        stage += 1
    x = _conv_bn(net, "conv_last", x, 1280, 1, relu="relu_last")
    x = net.pool("pool6", x, "AVE")
    x = net.conv("fc7", x, 1000, 1)
    net.softmax("prob", x)
    return net

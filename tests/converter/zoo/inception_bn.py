"""BN-Inception / Inception-BN (Ioffe & Szegedy 2015, figure 5), the 1000-class net whose Caffe
ports (pertusa/InceptionBN-21K-for-Caffe has the 21k-class one) put BatchNorm statistics in
BatchNorm layers and gamma/beta in Scale layers; written from its structure.

Every convolution has a bias and is followed by BatchNorm + Scale + ReLU. Stem: conv1 7x7/2
(64), max pool 3x3/2, conv2 1x1 (64) -> 3x3 (192), max pool 3x3/2 (Caffe ceil: 112 -> 56 -> 28).
Inception modules (table below; the paper's 5x5 branch is two 3x3s): 3a 3b, 3c (stride 2),
4a..4d, 4e (stride 2), 5a 5b. A stride-2 module has no 1x1 branch, strides its 3x3 and second
double-3x3 convolutions, and passes a max pool 3x3/2 through instead of the pool projection.
Average pool 7x7 -> fc (1000) -> Softmax.
"""
from __future__ import annotations

from .common import ZooNet

# name: (#1x1, #3x3 reduce, #3x3, double #3x3 reduce, double #3x3, pool, pool proj); 0 = none
MODULES = {
    "3a": (64, 64, 64, 64, 96, "AVE", 32),
    "3b": (64, 64, 96, 64, 96, "AVE", 64),
    "3c": (0, 128, 160, 64, 96, "MAX", 0),
    "4a": (224, 64, 96, 96, 128, "AVE", 128),
    "4b": (192, 96, 128, 96, 128, "AVE", 128),
    "4c": (160, 128, 160, 128, 160, "AVE", 128),
    "4d": (96, 128, 192, 160, 192, "AVE", 128),
    "4e": (0, 128, 192, 192, 256, "MAX", 0),
    "5a": (352, 192, 320, 160, 224, "AVE", 128),
    "5b": (352, 192, 320, 192, 224, "MAX", 128),
}


def _cbr(net: ZooNet, name: str, bottom: str, num_output: int, kernel: int,
         stride: int = 1) -> str:
    top = net.conv(name, bottom, num_output, kernel, stride, pad=kernel // 2)
    net.bn(f"{name}_bn", f"{name}_scale", top)
    return net.relu(f"{name}_relu", top)


def _module(net: ZooNet, name: str, x: str) -> str:
    n1, r3, n3, rd, nd, pool, proj = MODULES[name]
    stride = 1 if n1 else 2
    p = f"inception_{name}"
    branches = [_cbr(net, f"{p}_1x1", x, n1, 1)] if n1 else []
    y = _cbr(net, f"{p}_3x3_reduce", x, r3, 1)
    branches.append(_cbr(net, f"{p}_3x3", y, n3, 3, stride))
    y = _cbr(net, f"{p}_double_3x3_reduce", x, rd, 1)
    y = _cbr(net, f"{p}_double_3x3_1", y, nd, 3)
    branches.append(_cbr(net, f"{p}_double_3x3_2", y, nd, 3, stride))
    if proj:
        y = net.pool(f"{p}_pool", x, pool, 3, 1, pad=1)
        branches.append(_cbr(net, f"{p}_pool_proj", y, proj, 1))
    else:
        branches.append(net.pool(f"{p}_pool", x, pool, 3, 2))
    return net.concat(f"{p}_output", branches)


def inception_bn() -> ZooNet:
    net = ZooNet("BN-Inception", 224, input_style="layer")
    x = _cbr(net, "conv1_7x7_s2", "data", 64, 7, 2)
    x = net.pool("pool1_3x3_s2", x, "MAX", 3, 2)
    x = _cbr(net, "conv2_3x3_reduce", x, 64, 1)
    x = _cbr(net, "conv2_3x3", x, 192, 3)
    x = net.pool("pool2_3x3_s2", x, "MAX", 3, 2)
    for name in MODULES:
        x = _module(net, name, x)
    x = net.pool("global_pool", x, "AVE", 7, 1)
    x = net.fc("fc", x, 1000)
    net.softmax("prob", x)
    return net

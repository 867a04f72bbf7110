"""SqueezeNet 1.1 (Iandola et al. 2016; forresti/SqueezeNet SqueezeNet_v1.1/deploy.prototxt),
written from its structure.

227x227 input through an Input layer; conv1 3x3/2 (64) + ReLU; max pool 3x3/2 (Caffe ceil);
fire2, fire3; pool3; fire4, fire5; pool5; fire6..fire9; Dropout 0.5; conv10 1x1 (1000) + ReLU;
global average pool; Softmax. A fire module: squeeze 1x1 (s) + ReLU, then expand 1x1 (e) and
expand 3x3 pad 1 (e), each + ReLU, concatenated (2e channels).
"""
from __future__ import annotations

from .common import ZooNet

FIRES = {2: (16, 64), 3: (16, 64), 4: (32, 128), 5: (32, 128), 6: (48, 192), 7: (48, 192),
         8: (64, 256), 9: (64, 256)}  # fire: (squeeze, expand)


def fire(net: ZooNet, n: int, bottom: str) -> str:
    squeeze, expand = FIRES[n]
    s = net.conv(f"fire{n}/squeeze1x1", bottom, squeeze, 1)
    net.relu(f"fire{n}/relu_squeeze1x1", s)
    e1 = net.conv(f"fire{n}/expand1x1", s, expand, 1)
    net.relu(f"fire{n}/relu_expand1x1", e1)
    e3 = net.conv(f"fire{n}/expand3x3", s, expand, 3, pad=1)
    net.relu(f"fire{n}/relu_expand3x3", e3)
    return net.concat(f"fire{n}/concat", [e1, e3])


def squeezenet_1_1() -> ZooNet:
    net = ZooNet("SqueezeNet 1.1", 227, input_style="layer")
    x = net.conv("conv1", "data", 64, 3, 2)
    net.relu("relu_conv1", x)
    x = net.pool("pool1", x, "MAX", 3, 2)
    for n in (2, 3):
        x = fire(net, n, x)
    x = net.pool("pool3", x, "MAX", 3, 2)
    for n in (4, 5):
        x = fire(net, n, x)
    x = net.pool("pool5", x, "MAX", 3, 2)
    for n in (6, 7, 8, 9):
        x = fire(net, n, x)
    net.dropout("drop9", x)
    x = net.conv("conv10", x, 1000, 1)
    net.relu("relu_conv10", x)
    x = net.pool("pool10", x, "AVE")
    net.softmax("prob", x)
    return net

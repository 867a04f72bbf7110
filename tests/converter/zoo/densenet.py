"""DenseNet-121 (Huang et al. 2017) as shicai/DenseNet-Caffe DenseNet_121.prototxt has it,
written from its structure.

conv1 7x7/2 (64, no bias) + BatchNorm + Scale + ReLU; pool1 max 3x3/2 pad 1 rounded down
(112 -> 56; the port writes the fork field `ceil_mode: false`, here BVLC master's
`round_mode: FLOOR`); dense blocks of 6, 12, 24, 16 layers with growth 32, each layer
BN-Scale-ReLU-conv 1x1 (128) -> BN-Scale-ReLU-conv 3x3 pad 1 (32), concatenated onto its
input; between blocks a transition BN-Scale-ReLU-conv 1x1 (half the channels) + average pool
2x2/2; after the last block BN-Scale-ReLU, global average pool and the classifier fc6, a 1x1
Convolution with bias. No Softmax: the port ends at fc6. Every other convolution is bias-free.
"""
from __future__ import annotations

from .common import ZooNet

BLOCKS = (6, 12, 24, 16)
GROWTH, BOTTLENECK = 32, 128


def _bn_relu(net: ZooNet, name: str, relu: str, bottom: str) -> str:
    """BatchNorm + Scale + ReLU into a blob of their own (the input is concatenated later)."""
    top = net.bn(f"{name}/bn", f"{name}/scale", bottom, eps=1e-5, top=f"{name}/bn")
    return net.relu(relu, top)


def densenet121() -> ZooNet:
    net = ZooNet("DENSENET_121", 224, input_style="input_dim")
    x = net.conv("conv1", "data", 64, 7, 2, 3, bias=False)
    net.bn("conv1/bn", "conv1/scale", x, eps=1e-5)
    net.relu("relu1", x)
    x = net.pool("pool1", x, "MAX", 3, 2, pad=1, round_mode="FLOOR")
    channels = 64
    for b, layers in enumerate(BLOCKS, start=2):
        for i in range(1, layers + 1):
            name = f"conv{b}_{i}"
            y = _bn_relu(net, f"{name}/x1", f"relu{b}_{i}/x1", x)
            y = net.conv(f"{name}/x1", y, BOTTLENECK, 1, bias=False)
            y = _bn_relu(net, f"{name}/x2", f"relu{b}_{i}/x2", y)
            y = net.conv(f"{name}/x2", y, GROWTH, 3, pad=1, bias=False)
            x = net.concat(f"concat_{b}_{i}", [x, y])
            channels += GROWTH
        if b < 2 + len(BLOCKS) - 1:
            y = _bn_relu(net, f"conv{b}_blk", f"relu{b}_blk", x)
            channels //= 2
            y = net.conv(f"conv{b}_blk", y, channels, 1, bias=False)
            x = net.pool(f"pool{b}", y, "AVE", 2, 2)
    x = _bn_relu(net, "conv5_blk", "relu5_blk", x)
    x = net.pool("pool5", x, "AVE")
    net.conv("fc6", x, 1000, 1)
    return net

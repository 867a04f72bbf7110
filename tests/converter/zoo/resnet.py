"""ResNet-50 (He et al. 2015, KaimingHe/deep-residual-networks ResNet-50-deploy) and
SE-ResNet-50 (Hu et al. 2017, hujie-frank/SENet SE-ResNet-50), written from their structure.

ResNet-50: conv1 7x7/2 (64, with bias: the only convolution with one) + BatchNorm + Scale +
ReLU, max pool 3x3/2 (Caffe ceil, pad 0: 112 -> 56), then bottleneck stages res2..res5 with
3, 4, 6, 3 blocks of 1x1 (w) -> 3x3 (w) -> 1x1 (4w), w = 64, 128, 256, 512; the first block of
a stage has a projection shortcut (branch1) and, from res3 on, stride 2 on its first 1x1
(branch2a) and on branch1. Every convolution but conv1 is bias-free and followed by
BatchNorm + Scale. Average pool 7x7 -> fc1000 -> Softmax.

SE-ResNet-50: the same body with conv1 bias-free and a squeeze-and-excitation gate on every
block's residual branch before the sum: global average pool -> 1x1 conv (C/16, bias) -> ReLU ->
1x1 conv (C, bias) -> Sigmoid. The release multiplies with its own Axpy layer; with BVLC layers
the gate is reshaped to N x C and applied with a two-bottom Scale (axis 0), as the same release
does in SE-BN-Inception, then an Eltwise SUM adds the shortcut.
"""
from __future__ import annotations

from .common import ZooNet

STAGES = ((2, 3, 64), (3, 4, 128), (4, 6, 256), (5, 3, 512))  # (stage, blocks, width)


def _branch(net: ZooNet, name: str, bottom: str, num_output: int, kernel: int, stride: int = 1,
            relu: bool = True) -> str:
    """res{name} convolution + bn{name} + scale{name} (+ res{name}_relu), Kaiming's names."""
    top = net.conv(f"res{name}", bottom, num_output, kernel, stride, pad=kernel // 2, bias=False)
    net.bn(f"bn{name}", f"scale{name}", top)
    return net.relu(f"res{name}_relu", top) if relu else top


def resnet50() -> ZooNet:
    net = ZooNet("ResNet-50", 224, input_style="input_dim")
    x = net.conv("conv1", "data", 64, 7, stride=2, pad=3)
    net.bn("bn_conv1", "scale_conv1", x)
    net.relu("conv1_relu", x)
    x = net.pool("pool1", x, "MAX", 3, 2)
    for stage, blocks, width in STAGES:
        for b in range(blocks):
            block = f"{stage}{chr(ord('a') + b)}"
            stride = 2 if b == 0 and stage > 2 else 1
            shortcut = (_branch(net, f"{block}_branch1", x, 4 * width, 1, stride, relu=False)
                        if b == 0 else x)
            y = _branch(net, f"{block}_branch2a", x, width, 1, stride)
            y = _branch(net, f"{block}_branch2b", y, width, 3)
            y = _branch(net, f"{block}_branch2c", y, 4 * width, 1, relu=False)
            x = net.add(f"res{block}", [shortcut, y])
            net.relu(f"res{block}_relu", x)
    x = net.pool("pool5", x, "AVE", 7, 1)
    x = net.fc("fc1000", x, 1000)
    net.softmax("prob", x)
    return net


def _unit(net: ZooNet, name: str, bottom: str, num_output: int, kernel: int, stride: int = 1,
          relu: bool = True) -> str:
    """Convolution name + name/bn + name/bn/scale (+ name/relu), the SENet release's names."""
    top = net.conv(name, bottom, num_output, kernel, stride, pad=kernel // 2, bias=False)
    net.bn(f"{name}/bn", f"{name}/bn/scale", top)
    return net.relu(f"{name}/relu", top) if relu else top


def se_gate(net: ZooNet, name: str, x: str, channels: int, reduction: int = 16) -> str:
    """x * sigmoid(up(relu(down(avgpool(x))))) with BVLC layers; returns the scaled blob."""
    s = net.pool(f"{name}_global_pool", x, "AVE")
    s = net.conv(f"{name}_1x1_down", s, channels // reduction, 1)
    net.relu(f"{name}_1x1_down/relu", s)
    s = net.conv(f"{name}_1x1_up", s, channels, 1)
    s = net.layer(f"{name}_prob", "Sigmoid", s, s)
    s = net.layer(f"{name}_prob_reshape", "Reshape", s,
                  reshape_param=dict(shape=dict(dim=[0, -1])))
    return net.layer(f"{name}_scale", "Scale", [x, s], scale_param=dict(axis=0))


def se_resnet50() -> ZooNet:
    net = ZooNet("SE-ResNet-50", 224, input_style="input_shape")
    x = _unit(net, "conv1/7x7_s2", "data", 64, 7, 2)
    x = net.pool("pool1/3x3_s2", x, "MAX", 3, 2)
    for stage, blocks, width in STAGES:
        for b in range(blocks):
            name = f"conv{stage}_{b + 1}"
            stride = 2 if b == 0 and stage > 2 else 1
            shortcut = (_unit(net, f"{name}_1x1_proj", x, 4 * width, 1, stride, relu=False)
                        if b == 0 else x)
            y = _unit(net, f"{name}_1x1_reduce", x, width, 1, stride)
            y = _unit(net, f"{name}_3x3", y, width, 3)
            y = _unit(net, f"{name}_1x1_increase", y, 4 * width, 1, relu=False)
            y = se_gate(net, name, y, 4 * width)
            x = net.add(name, [shortcut, y])
            net.relu(f"{name}/relu", x)
    x = net.pool("pool5/7x7_s1", x, "AVE")
    x = net.fc("classifier", x, 1000)
    net.softmax("prob", x)
    return net

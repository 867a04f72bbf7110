"""Network in Network, the ImageNet model (Lin, Chen, Yan, ICLR 2014; Caffe Model Zoo gist
mavenlin/d802a5849de39225bcc6 "nin_imagenet"), written from its structure. (The CIFAR-10 NIN
of the same authors is a different, 32x32 net.)

224x224 input; four mlpconv blocks, each a spatial convolution followed by two 1x1 "cccp"
convolutions, every one with bias and ReLU:
    conv1 11x11/4 (96), cccp1 96, cccp2 96, max pool 3x3/2
    conv2 5x5 pad 2 (256), cccp3 256, cccp4 256, max pool 3x3/2
    conv3 3x3 pad 1 (384), cccp5 384, cccp6 384, max pool 3x3/2, Dropout 0.5
    conv4-1024 3x3 pad 1 (1024), cccp7-1024 1024, cccp8-1024 1000
then average pool 6x6 (6x6 -> 1x1: no fully connected layer) and Softmax.
Sizes: 224 -> 54 -> 27 (Caffe ceil) -> 13 -> 6 -> 1.
"""
from __future__ import annotations

from .common import ZooNet

BLOCKS = [  # (conv name, channels, kernel, stride, pad, cccp names, cccp channels, pool)
    ("conv1", 96, 11, 4, 0, ("cccp1", "cccp2"), (96, 96), "pool1"),
    ("conv2", 256, 5, 1, 2, ("cccp3", "cccp4"), (256, 256), "pool2"),
    ("conv3", 384, 3, 1, 1, ("cccp5", "cccp6"), (384, 384), "pool3"),
    ("conv4-1024", 1024, 3, 1, 1, ("cccp7-1024", "cccp8-1024"), (1024, 1000), None),
]


def nin_imagenet() -> ZooNet:
    net = ZooNet("nin_imagenet", 224, input_style="input_shape")
    x = "data"
    for i, (conv, channels, kernel, stride, pad, cccps, widths, pool) in enumerate(BLOCKS):
        x = net.conv(conv, x, channels, kernel, stride, pad)
        net.relu(f"relu{i * 3}", x)
        for j, (cccp, width) in enumerate(zip(cccps, widths)):
            x = net.conv(cccp, x, width, 1)
            net.relu(f"relu{i * 3 + j + 1}", x)
        if pool:
            x = net.pool(pool, x, "MAX", 3, 2)
        if pool == "pool3":
            net.dropout("drop", x)
    x = net.pool("pool4", x, "AVE", 6, 1)
    net.softmax("prob", x)
    return net

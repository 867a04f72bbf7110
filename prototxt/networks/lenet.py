"""LeNet for MNIST, as DIGITS 6.1.1 ships it (digits/standard-networks/caffe/lenet.prototxt).

28x28x1 -> scale 1/80 -> conv5 20 -> max2 -> conv5 50 -> max2 -> fc 500 -> ReLU -> fc (classes).
"""
from __future__ import annotations

from prototxt import caffe_pb2
from prototxt.networks.common import accuracy_loss_softmax, data_layers, pool
from prototxt.netspec import Net

# Weights and bias learn at 1x and 2x the base rate; decay_mult is left at its default (1).
LEARN = [dict(lr_mult=1), dict(lr_mult=2)]
FILLERS = dict(weight_filler=dict(type="xavier"), bias_filler=dict(type="constant"))


def conv(net: Net, name: str, bottom: str, num_output: int) -> str:
    """A 5x5 stride-1 convolution (no ReLU follows in LeNet)."""
    return net.layer(name, "Convolution", bottom, param=LEARN, convolution_param=dict(
        num_output=num_output, kernel_size=5, stride=1, **FILLERS))


def fc(net: Net, name: str, bottom: str, num_output: int | None) -> str:
    """A fully connected layer; num_output None is left for DIGITS to set to the class count."""
    return net.layer(name, "InnerProduct", bottom, param=LEARN,
                     inner_product_param=dict(num_output=num_output, **FILLERS))


def lenet() -> caffe_pb2.NetParameter:
    """Build DIGITS' LeNet."""
    net = Net("LeNet")
    x = data_layers(net, train_batch=64, val_batch=32)
    # Power layer for input scaling: 1/(standard deviation on MNIST), after mean subtraction.
    x = net.layer("scale", "Power", x, top="scaled", power_param=dict(scale=0.0125))
    x = pool(net, "pool1", conv(net, "conv1", x, 20), "MAX", kernel=2, stride=2)
    x = pool(net, "pool2", conv(net, "conv2", x, 50), "MAX", kernel=2, stride=2)
    x = fc(net, "ip1", x, 500)
    net.layer("relu1", "ReLU", x, top=x)
    x = fc(net, "ip2", x, None)
    accuracy_loss_softmax(net, x)
    return net.proto

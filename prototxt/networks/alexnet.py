"""AlexNet, as DIGITS 6.1.1 ships it (digits/standard-networks/caffe/alexnet.prototxt).

227x227x3 crops -> 5 convolutions (LRN and max pooling after the 1st and 2nd, max pooling after
the 5th; conv2, conv4 and conv5 in 2 groups) -> fc 4096 -> fc 4096 (dropout 0.5) -> fc (classes).
"""
from __future__ import annotations

from prototxt import caffe_pb2
from prototxt.networks.common import accuracy_loss_softmax, data_layers, lrn, pool
from prototxt.netspec import Net

# Weights learn at 1x the base rate with weight decay; bias at 2x without.
LEARN = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]


def fillers(std: float, bias: float) -> dict:
    """Gaussian weights with `std`, constant bias."""
    return dict(weight_filler=dict(type="gaussian", std=std),
                bias_filler=dict(type="constant", value=bias))


def conv_relu(net: Net, name: str, relu: str, bottom: str, num_output: int, kernel: int,
              bias: float, stride: int | None = None, pad: int | None = None,
              group: int | None = None) -> str:
    """A convolution (weights N(0, 0.01)) followed by an in-place ReLU named `relu`."""
    x = net.layer(name, "Convolution", bottom, param=LEARN, convolution_param=dict(
        num_output=num_output, pad=pad, kernel_size=kernel, stride=stride,
        group=group, **fillers(0.01, bias)))
    return net.layer(relu, "ReLU", x, top=x)


def fc(net: Net, name: str, bottom: str, num_output: int | None, std: float,
       bias: float) -> str:
    """A fully connected layer; num_output None is left for DIGITS to set to the class count."""
    return net.layer(name, "InnerProduct", bottom, param=LEARN,
                     inner_product_param=dict(num_output=num_output, **fillers(std, bias)))


def alexnet() -> caffe_pb2.NetParameter:
    """Build DIGITS' AlexNet."""
    net = Net("AlexNet")
    x = data_layers(net, train_batch=128, val_batch=32,
                    train_transform=dict(mirror=True, crop_size=227),
                    val_transform=dict(crop_size=227))
    x = conv_relu(net, "conv1", "relu1", x, 96, kernel=11, stride=4, bias=0)
    x = pool(net, "pool1", lrn(net, "norm1", x), "MAX", kernel=3, stride=2)
    x = conv_relu(net, "conv2", "relu2", x, 256, kernel=5, pad=2, group=2, bias=0.1)
    x = pool(net, "pool2", lrn(net, "norm2", x), "MAX", kernel=3, stride=2)
    x = conv_relu(net, "conv3", "relu3", x, 384, kernel=3, pad=1, bias=0)
    x = conv_relu(net, "conv4", "relu4", x, 384, kernel=3, pad=1, group=2, bias=0.1)
    x = conv_relu(net, "conv5", "relu5", x, 256, kernel=3, pad=1, group=2, bias=0.1)
    x = pool(net, "pool5", x, "MAX", kernel=3, stride=2)
    for n in (6, 7):
        x = fc(net, f"fc{n}", x, 4096, std=0.005, bias=0.1)
        net.layer(f"relu{n}", "ReLU", x, top=x)
        net.layer(f"drop{n}", "Dropout", x, top=x, dropout_param=dict(dropout_ratio=0.5))
    x = fc(net, "fc8", x, None, std=0.01, bias=0)
    accuracy_loss_softmax(net, x)
    return net.proto

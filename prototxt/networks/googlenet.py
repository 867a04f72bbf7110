"""GoogLeNet, as DIGITS 6.1.1 ships it (digits/standard-networks/caffe/googlenet.prototxt).

The BVLC GoogLeNet (Szegedy et al. 2014, table 1) with DIGITS' stage rules: 224x224x3 crops ->
stem -> inception 3a 3b -> max pool -> 4a..4e -> max pool -> 5a 5b -> avg pool 7 -> dropout 0.4
-> classifier. Two auxiliary classifiers on 4a and 4d add losses (weight 0.3) in train and val.
Every weight filler is Xavier; the `std` each one carries (copied from the BVLC file) is
ignored by Xavier but kept, so the message equals DIGITS' file.
"""
from __future__ import annotations

from typing import Any

from prototxt import caffe_pb2
from prototxt.networks.common import DEPLOY, VAL, data_layers, lrn, pool
from prototxt.netspec import Net

# Weights learn at 1x the base rate with weight decay; bias at 2x without.
LEARN = [dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)]

# name: (#1x1, #3x3 reduce, #3x3, #5x5 reduce, #5x5, pool proj), table 1 of the paper.
INCEPTIONS = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
    "5a": (256, 160, 320, 32, 128, 128),
    "5b": (384, 192, 384, 48, 128, 128),
}


def fillers(std: float | None, bias: float) -> dict:
    """Xavier weights (carrying an unused `std`) and a constant bias."""
    return dict(weight_filler=dict(type="xavier", std=std),
                bias_filler=dict(type="constant", value=bias))


def conv_relu(net: Net, name: str, bottom: str, num_output: int, kernel: int, std: float,
              pad: int | None = None, stride: int | None = None, relu: str | None = None,
              **extra: Any) -> str:
    """A convolution and its in-place ReLU, named "<block>/relu_<branch>" unless `relu` is given."""
    x = net.layer(name, "Convolution", bottom, param=LEARN, convolution_param=dict(
        num_output=num_output, pad=pad, kernel_size=kernel, stride=stride,
        **fillers(std, bias=0.2)), **extra)
    block, branch = name.rsplit("/", 1)
    return net.layer(relu or f"{block}/relu_{branch}", "ReLU", x, top=x, **extra)


def fc(net: Net, name: str, bottom: str, num_output: int | None, std: float | None,
       bias: float, **extra: Any) -> str:
    """A fully connected layer; num_output None is left for DIGITS to set to the class count."""
    return net.layer(name, "InnerProduct", bottom, param=LEARN,
                     inner_product_param=dict(num_output=num_output, **fillers(std, bias)),
                     **extra)


def inception(net: Net, name: str, bottom: str) -> str:
    """Four branches (1x1; 1x1 -> 3x3; 1x1 -> 5x5; max 3x3 -> 1x1) concatenated on channels."""
    n1, n3r, n3, n5r, n5, proj = INCEPTIONS[name]
    at = f"inception_{name}"
    b1 = conv_relu(net, f"{at}/1x1", bottom, n1, kernel=1, std=0.03)
    b3 = conv_relu(net, f"{at}/3x3_reduce", bottom, n3r, kernel=1, std=0.09)
    b3 = conv_relu(net, f"{at}/3x3", b3, n3, kernel=3, pad=1, std=0.03)
    b5 = conv_relu(net, f"{at}/5x5_reduce", bottom, n5r, kernel=1, std=0.2)
    b5 = conv_relu(net, f"{at}/5x5", b5, n5, kernel=5, pad=2, std=0.03)
    bp = pool(net, f"{at}/pool", bottom, "MAX", kernel=3, stride=1, pad=1)
    bp = conv_relu(net, f"{at}/pool_proj", bp, proj, kernel=1, std=0.1)
    return net.layer(f"{at}/output", "Concat", [b1, b3, b5, bp])


def loss_and_accuracy(net: Net, at: str, scores: str, loss_weight: float,
                      tops: tuple[str, str, str]) -> None:
    """Softmax loss and top-1/top-5 accuracies (val only) of one classifier's `scores`."""
    loss, top1, top5 = tops
    net.layer(f"{at}/loss", "SoftmaxWithLoss", [scores, "label"], top=loss,
              loss_weight=[loss_weight], exclude=DEPLOY)
    net.layer(f"{at}/top-1", "Accuracy", [scores, "label"], top=top1, include=VAL)
    net.layer(f"{at}/top-5", "Accuracy", [scores, "label"], top=top5, include=VAL,
              accuracy_param=dict(top_k=5))


def auxiliary_head(net: Net, at: str, bottom: str) -> None:
    """An auxiliary classifier ("loss1", "loss2"): avg pool 5/3 -> 1x1 conv 128 -> fc 1024
    -> dropout 0.7 -> classifier, with a 0.3-weighted loss; all left out of deploy."""
    off = dict(exclude=DEPLOY)
    x = pool(net, f"{at}/ave_pool", bottom, "AVE", kernel=5, stride=3, **off)
    x = conv_relu(net, f"{at}/conv", x, 128, kernel=1, std=0.08, **off)
    x = fc(net, f"{at}/fc", x, 1024, std=0.02, bias=0.2, **off)
    net.layer(f"{at}/relu_fc", "ReLU", x, top=x, **off)
    net.layer(f"{at}/drop_fc", "Dropout", x, top=x, dropout_param=dict(dropout_ratio=0.7), **off)
    x = fc(net, f"{at}/classifier", x, None, std=0.0009765625, bias=0, **off)
    loss_and_accuracy(net, at, x, 0.3, (f"{at}/loss", f"{at}/accuracy", f"{at}/accuracy-top5"))


def googlenet() -> caffe_pb2.NetParameter:
    """Build DIGITS' GoogLeNet."""
    net = Net("GoogleNet")
    x = data_layers(net, train_batch=32, val_batch=16,
                    train_transform=dict(mirror=True, crop_size=224),
                    val_transform=dict(mirror=False, crop_size=224))
    x = conv_relu(net, "conv1/7x7_s2", x, 64, kernel=7, pad=3, stride=2, std=0.1,
                  relu="conv1/relu_7x7")
    x = lrn(net, "pool1/norm1", pool(net, "pool1/3x3_s2", x, "MAX", kernel=3, stride=2))
    x = conv_relu(net, "conv2/3x3_reduce", x, 64, kernel=1, std=0.1)
    x = conv_relu(net, "conv2/3x3", x, 192, kernel=3, pad=1, std=0.03)
    x = pool(net, "pool2/3x3_s2", lrn(net, "conv2/norm2", x), "MAX", kernel=3, stride=2)
    x = inception(net, "3a", x)
    x = inception(net, "3b", x)
    x = pool(net, "pool3/3x3_s2", x, "MAX", kernel=3, stride=2)
    x = inception(net, "4a", x)
    auxiliary_head(net, "loss1", x)
    x = inception(net, "4b", x)
    x = inception(net, "4c", x)
    x = inception(net, "4d", x)
    auxiliary_head(net, "loss2", x)
    x = inception(net, "4e", x)
    x = pool(net, "pool4/3x3_s2", x, "MAX", kernel=3, stride=2)
    x = inception(net, "5a", x)
    x = inception(net, "5b", x)
    x = pool(net, "pool5/7x7_s1", x, "AVE", kernel=7, stride=1)
    net.layer("pool5/drop_7x7_s1", "Dropout", x, top=x, dropout_param=dict(dropout_ratio=0.4))
    x = fc(net, "loss3/classifier", x, None, std=None, bias=0)
    loss_and_accuracy(net, "loss3", x, 1, ("loss", "accuracy", "accuracy-top5"))
    net.layer("softmax", "Softmax", x, include=DEPLOY)
    return net.proto

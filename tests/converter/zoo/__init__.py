"""Model-zoo classification nets, written by our own builders from their published structure
(layer shapes and counts as facts, never the zoo's prototxt text), for the golden tests in
tests/converter/test_zoo.py.

Each `ZooEntry` says where the structure comes from, the published parameter count (learnable
parameters: weights, biases, Scale gamma/beta; not BatchNorm statistics) and our exact count,
the layer-type counts of the zoo's deploy file (shared/facts/caffe-flavors.md A3, where
verified), the blobs whose shapes are checked, and the classifier blobs.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from prototxt.io import format_text

from .densenet import densenet121
from .inception_bn import inception_bn
from .mobilenet import mobilenet_v1, mobilenet_v2
from .nin import nin_imagenet
from .resnet import resnet50, se_resnet50
from .squeezenet import squeezenet_1_1
from .vgg import vgg16


@dataclass(frozen=True)
class ZooEntry:
    build: Callable               # () -> ZooNet or V1Net
    source: str                   # where the structure is published
    published: float | None       # published parameter count in millions, as printed
    published_digits: int         # decimals it is printed with (25.6 -> 1)
    published_source: str
    params: int                   # our count, exact (golden)
    size: int                     # input height = width
    logits: str                   # the classifier's top
    prob: str | None              # the Softmax top (None: the zoo's file has no Softmax)
    out_shape: tuple[int, ...]    # shape of `logits` and `prob` for batch 1
    shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)  # checkpoint blobs
    counts: dict[str, int] = field(default_factory=dict)  # layer types in the zoo's file
    v1: bool = False              # written in the V1 `layers {}` format

    def text(self) -> str:
        """The deploy prototxt as a user would hold it."""
        net = self.build()
        return net.text() if self.v1 else format_text(net.proto)


TORCHVISION = "torchvision weights meta num_params"
ZOO: dict[str, ZooEntry] = {
    "resnet50": ZooEntry(
        resnet50, "KaimingHe/deep-residual-networks ResNet-50-deploy.prototxt (He et al. 2015)",
        25.6, 1, f"He et al. 2015; {TORCHVISION} 25,557,032 + 64 for Caffe's conv1 bias",
        25_557_096, 224, "fc1000", "prob", (1, 1000),
        {"pool1": (1, 64, 56, 56), "res2c": (1, 256, 56, 56), "res3d": (1, 512, 28, 28),
         "res4f": (1, 1024, 14, 14), "res5c": (1, 2048, 7, 7), "pool5": (1, 2048, 1, 1)},
        {"Convolution": 53, "BatchNorm": 53, "Scale": 53, "Eltwise": 16, "Pooling": 2,
         "InnerProduct": 1, "Softmax": 1}),
    "vgg16": ZooEntry(
        vgg16, "ksimonyan gist 211839e770f7b538e2d8 VGG_ILSVRC_16_layers_deploy (V1 format)",
        138.4, 1, f"Simonyan & Zisserman 2014 (138 M); {TORCHVISION} 138,357,544",
        138_357_544, 224, "fc8", "prob", (1, 1000),
        {"pool1": (1, 64, 112, 112), "pool3": (1, 256, 28, 28), "pool5": (1, 512, 7, 7),
         "fc7": (1, 4096)},
        {"CONVOLUTION": 13, "RELU": 15, "POOLING": 5, "INNER_PRODUCT": 3, "DROPOUT": 2,
         "SOFTMAX": 1}, v1=True),
    "mobilenet_v1": ZooEntry(
        mobilenet_v1, "shicai/MobileNet-Caffe mobilenet_deploy.prototxt (Howard et al. 2017)",
        4.2, 1, "Howard et al. 2017 (1.0 MobileNet-224: 4.2 M)", 4_231_976, 224, "fc7", "prob",
        (1, 1000, 1, 1),
        {"conv2_2/sep": (1, 128, 56, 56), "conv4_2/sep": (1, 512, 14, 14),
         "conv6/sep": (1, 1024, 7, 7), "pool6": (1, 1024, 1, 1)},
        {"Convolution": 28, "BatchNorm": 27, "Scale": 27, "ReLU": 27, "Pooling": 1,
         "Softmax": 1}),
    "mobilenet_v2": ZooEntry(
        mobilenet_v2, "shicai/MobileNet-Caffe mobilenet_v2_deploy.prototxt (Sandler et al. 2018)",
        3.5, 1, f"{TORCHVISION} 3,504,872, + 1,088 for the Caffe port's expand 1x1 (and its "
        "BatchNorm/Scale) in the t=1 block", 3_505_960, 224, "fc7", "prob", (1, 1000, 1, 1),
        {"block_3_2": (1, 24, 56, 56), "block_4_3": (1, 32, 28, 28),
         "block_5_4": (1, 64, 14, 14), "conv8_1/linear": (1, 320, 7, 7),
         "conv_last": (1, 1280, 7, 7)},
        {"Convolution": 54, "BatchNorm": 53, "Scale": 53, "ReLU": 36, "Eltwise": 10,
         "Pooling": 1, "Softmax": 1}),
    "squeezenet1_1": ZooEntry(
        squeezenet_1_1, "forresti/SqueezeNet SqueezeNet_v1.1/deploy.prototxt",
        1.24, 2, f"{TORCHVISION} 1,235,496", 1_235_496, 227, "pool10", "prob", (1, 1000, 1, 1),
        {"pool1": (1, 64, 56, 56), "fire3/concat": (1, 128, 56, 56),
         "fire5/concat": (1, 256, 28, 28), "fire9/concat": (1, 512, 14, 14)},
        {"Convolution": 26, "ReLU": 26, "Concat": 8, "Pooling": 4, "Dropout": 1,
         "Softmax": 1}),
    "nin_imagenet": ZooEntry(
        nin_imagenet, "mavenlin gist d802a5849de39225bcc6 nin_imagenet (Lin et al. 2014)",
        None, 0, "no published count; computed from the structure (30.4 MB of float32 blobs)",
        7_595_176, 224, "pool4", "prob", (1, 1000, 1, 1),
        {"pool1": (1, 96, 27, 27), "pool2": (1, 256, 13, 13), "pool3": (1, 384, 6, 6),
         "cccp8-1024": (1, 1000, 6, 6)}),
    "densenet121": ZooEntry(
        densenet121, "shicai/DenseNet-Caffe DenseNet_121.prototxt (Huang et al. 2017)",
        8.0, 1, f"{TORCHVISION} 7,978,856", 7_978_856, 224, "fc6",
        None, (1, 1000, 1, 1),
        {"pool1": (1, 64, 56, 56), "concat_2_6": (1, 256, 56, 56),
         "concat_3_12": (1, 512, 28, 28), "concat_4_24": (1, 1024, 14, 14),
         "concat_5_16": (1, 1024, 7, 7)},
        {"Convolution": 121, "BatchNorm": 121, "Scale": 121, "ReLU": 121, "Concat": 58,
         "Pooling": 5}),
    "inception_bn": ZooEntry(
        inception_bn, "Ioffe & Szegedy 2015 figure 5; the layout of pertusa/InceptionBN-21K-for-"
        "Caffe with a 1000-class classifier", 11.3, 1,
        "BN-Inception as usually quoted (~11.3 M)", 11_295_240, 224,
        "fc", "prob", (1, 1000),
        {"pool2_3x3_s2": (1, 192, 28, 28), "inception_3c_output": (1, 576, 14, 14),
         "inception_4e_output": (1, 1056, 7, 7), "inception_5b_output": (1, 1024, 7, 7)},
        {"Convolution": 69, "BatchNorm": 69, "Scale": 69, "ReLU": 69, "Concat": 10,
         "Pooling": 13, "InnerProduct": 1, "Softmax": 1}),
    "se_resnet50": ZooEntry(
        se_resnet50, "hujie-frank/SENet SE-ResNet-50.prototxt (Hu et al. 2017), Axpy as "
        "Reshape + Scale(axis 0) + Eltwise", 28.1, 1, "ResNet-50 25,557,032 + 2,530,992 for the SE gates (Hu et al.: ~2.5 M more)",
        28_088_024, 224, "classifier", "prob", (1, 1000),
        {"conv2_3": (1, 256, 56, 56), "conv3_1_prob_reshape": (1, 512),
         "conv4_6": (1, 1024, 14, 14), "conv5_3": (1, 2048, 7, 7)},
        {"Convolution": 85, "BatchNorm": 53, "Sigmoid": 16, "Pooling": 18, "InnerProduct": 1,
         "Softmax": 1}),
}

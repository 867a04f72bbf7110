"""VGG-16 (Simonyan & Zisserman 2014, configuration D) in the V1 `layers { type: ENUM }` format
the model zoo's file (ksimonyan gist 211839e770f7b538e2d8) is in, written from its structure.

`input: "data"` with `input_dim`; 13 CONVOLUTION 3x3 pad 1 layers in five groups
(64 x2, 128 x2, 256 x3, 512 x3, 512 x3), each + RELU, each group closed by POOLING MAX 2x2/2;
INNER_PRODUCT fc6 4096 + RELU + DROPOUT 0.5, fc7 4096 + RELU + DROPOUT 0.5, fc8 1000; SOFTMAX.
The net is made as V1LayerParameter messages and written as V1 text; the test reads it back
through our upgrade (prototxt.upgrade), as a user's zoo file would be read.
"""
from __future__ import annotations

from typing import Any

from prototxt import caffe_pb2
from prototxt.io import format_text
from prototxt.netspec import fill

from .common import BIASES, WEIGHTS

GROUPS = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))


class V1Net:
    """V1 `layers` entries, one per call; `text()` is the prototxt."""

    def __init__(self, name: str, size: int, batch: int = 1):
        self.proto = caffe_pb2.NetParameter(name=name, input=["data"],
                                            input_dim=[batch, 3, size, size])

    def layer(self, name: str, type: str, bottom: str, top: str | None = None,
              **params: Any) -> str:
        top = top or name
        fill(self.proto.layers.add(), dict(name=name, type=type, bottom=[bottom], top=[top],
                                           **params))
        return top

    def text(self) -> str:
        return format_text(self.proto)


def vgg16() -> V1Net:
    net = V1Net("VGG_ILSVRC_16_layers", 224)
    x = "data"
    for g, (channels, count) in enumerate(GROUPS, start=1):
        for i in range(1, count + 1):
            x = net.layer(f"conv{g}_{i}", "CONVOLUTION", x, convolution_param=dict(
                num_output=channels, pad=[1], kernel_size=[3], weight_filler=WEIGHTS,
                bias_filler=BIASES))
            net.layer(f"relu{g}_{i}", "RELU", x, x)
        x = net.layer(f"pool{g}", "POOLING", x,
                      pooling_param=dict(pool="MAX", kernel_size=2, stride=2))
    for n, width in ((6, 4096), (7, 4096)):
        x = net.layer(f"fc{n}", "INNER_PRODUCT", x, inner_product_param=dict(
            num_output=width, weight_filler=WEIGHTS, bias_filler=BIASES))
        net.layer(f"relu{n}", "RELU", x, x)
        net.layer(f"drop{n}", "DROPOUT", x, x, dropout_param=dict(dropout_ratio=0.5))
    x = net.layer("fc8", "INNER_PRODUCT", x, inner_product_param=dict(
        num_output=1000, weight_filler=dict(type="xavier"), bias_filler=BIASES))
    net.layer("prob", "SOFTMAX", x)
    return net

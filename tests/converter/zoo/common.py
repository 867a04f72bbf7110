"""Layer helpers for the zoo builders: a NetSpec `Net` with the handful of layer patterns the
model-zoo classification nets are made of (BVLC Caffe 1.0 layer types only).

Fillers are chosen so that random weights give activations of a sensible scale all the way
down (msra for convolutions, small uniform biases, BatchNorm + Scale with random statistics
set by `calibrate_batch_norm` in the test): the published deploy files carry no fillers.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prototxt.netspec import Net

WEIGHTS = dict(type="msra")
BIASES = dict(type="uniform", min=-0.1, max=0.1)
GAMMA = dict(type="uniform", min=0.5, max=1.5)
BETA = dict(type="uniform", min=-0.2, max=0.2)


class ZooNet(Net):
    """A Net whose methods append the zoo's usual layers and return the top's name."""

    def __init__(self, name: str, size: int, input_style: str = "input_shape",
                 batch: int = 1) -> None:
        """`input_style`: "input_dim" (the old net-level fields, as ResNet and MobileNet ship),
        "input_shape" (net-level input + input_shape) or "layer" (an Input layer)."""
        dims = [batch, 3, size, size]
        if input_style == "input_dim":
            super().__init__(name, input=["data"], input_dim=dims)
        elif input_style == "input_shape":
            super().__init__(name, input=["data"], input_shape=[dict(dim=dims)])
        elif input_style == "layer":
            super().__init__(name)
            self.layer("data", "Input", input_param=dict(shape=[dict(dim=dims)]))
        else:
            raise ValueError(f"input_style {input_style!r}")

    def conv(self, name: str, bottom: str, num_output: int, kernel: int, stride: int = 1,
             pad: int = 0, group: int = 1, bias: bool = True, **extra: Any) -> str:
        param: dict[str, Any] = dict(num_output=num_output, kernel_size=[kernel],
                                     weight_filler=WEIGHTS)
        if stride != 1:
            param["stride"] = [stride]
        if pad:
            param["pad"] = [pad]
        if group != 1:
            param["group"] = group
        if bias:
            param["bias_filler"] = BIASES
        else:
            param["bias_term"] = False
        param.update(extra)
        return self.layer(name, "Convolution", bottom, convolution_param=param)

    def bn(self, bn_name: str, scale_name: str, bottom: str, eps: float | None = None,
           top: str | None = None) -> str:
        """BatchNorm (statistics only, use_global_stats as the zoo's deploy files have it) and
        Scale (gamma, beta): in place, or into a new blob `top` (then Scale in place on it)."""
        top = top or bottom
        self.layer(bn_name, "BatchNorm", bottom, top,
                   batch_norm_param=dict(use_global_stats=True, eps=eps))
        return self.layer(scale_name, "Scale", top, top,
                          scale_param=dict(bias_term=True, filler=GAMMA, bias_filler=BETA))

    def relu(self, name: str, bottom: str) -> str:
        return self.layer(name, "ReLU", bottom, bottom)

    def pool(self, name: str, bottom: str, method: str, kernel: int | None = None,
             stride: int = 1, pad: int = 0, **extra: Any) -> str:
        """Pooling; `kernel=None` is global pooling."""
        param: dict[str, Any] = dict(pool=method)
        if kernel is None:
            param["global_pooling"] = True
        else:
            param.update(kernel_size=kernel, stride=stride)
        if pad:
            param["pad"] = pad
        param.update(extra)
        return self.layer(name, "Pooling", bottom, pooling_param=param)

    def fc(self, name: str, bottom: str, num_output: int) -> str:
        return self.layer(name, "InnerProduct", bottom,
                          inner_product_param=dict(num_output=num_output,
                                                   weight_filler=dict(type="xavier"),
                                                   bias_filler=BIASES))

    def concat(self, name: str, bottoms: Sequence[str]) -> str:
        return self.layer(name, "Concat", list(bottoms))

    def add(self, name: str, bottoms: Sequence[str]) -> str:
        return self.layer(name, "Eltwise", list(bottoms), eltwise_param=dict(operation="SUM"))

    def dropout(self, name: str, bottom: str, ratio: float = 0.5) -> str:
        return self.layer(name, "Dropout", bottom, bottom, dropout_param=dict(dropout_ratio=ratio))

    def softmax(self, name: str, bottom: str) -> str:
        return self.layer(name, "Softmax", bottom)

"""STOCHASTIC pooling (pooling_layer.cu: StoPoolForwardTrain/Test, StoPoolBackward).

Windows as MAX/AVE (pooling.py: same output size, CEIL or FLOOR) but never padded (Caffe:
"Padding implemented only for average and max pooling"), each clipped to the image:

    TEST   y = sum(x^2) / sum(x)  over the window if sum(x) > 0, else 0
           (the activation-weighted average: each x weighted by x / sum(x))
    TRAIN  u ~ U(0, 1) per output, t = u sum(x); y = the first x in the window, row by row,
           at which the running sum reaches t (for x >= 0: x_i drawn with probability
           x_i / sum(x)); the gradient goes to that x alone (StoPoolBackward; several outputs
           that drew the same x add up), which autograd of the gather reproduces.

model.train() / model.eval() pick the phase (as for Dropout). Caffe draws u from curand in
(0, 1], here torch's global generator in [0, 1); the distributions agree. Where Caffe finds no
crossing (a window with a negative sum, or wholly outside the image: pad 0, kernel < stride)
it leaves the output unwritten (stale memory); here it is 0 with no gradient.

Caffe only runs it on the GPU with engine CAFFE: the CPU Forward/Backward are NOT_IMPLEMENTED,
and cuDNN (the default engine in cuDNN builds) aborts with "Unknown pooling method". This
converter computes it on any device. Caffe's Backward after a TEST forward uses whatever
sample indices the layer holds (zeros in a fresh test net: the gradient of every window lands
on element 0); that is not reproduced: in eval mode the gradient is the TEST formula's own.

ONNX (deploy, TEST): Pad (zeros at the end for the ceil overhang) + AveragePool of x and of
x^2 (times the window area) + Where; zeros add nothing to either sum.
"""
from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Built, LayerContext
from .pooling import POOL_METHODS, pooled_size
from .pooling_explicit import P

log = logging.getLogger(__name__)


def window_sums(x: torch.Tensor, kernel, stride) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum x, sum x^2) per window of the (already end-padded) input, no padding or ceil."""
    area = kernel[0] * kernel[1]
    s1 = F.avg_pool2d(x, kernel, stride) * area
    s2 = F.avg_pool2d(x * x, kernel, stride) * area
    return s1, s2


def stochastic_sample(x: torch.Tensor, kernel, stride, out, u: torch.Tensor) -> torch.Tensor:
    """TRAIN: Caffe's StoPoolForwardTrain given the uniforms `u` (N, C, out_h, out_w)."""
    n, c = x.shape[:2]
    cols = F.unfold(x, kernel, stride=stride).reshape(n, c, kernel[0] * kernel[1], -1)
    running = cols.cumsum(2)
    threshold = u.reshape(n, c, 1, -1).to(x.dtype) * running[:, :, -1:]
    crossed = running >= threshold
    first = crossed.to(torch.uint8).argmax(2, keepdim=True)  # the first crossing
    y = cols.gather(2, first)
    y = torch.where(crossed.any(2, keepdim=True), y, torch.zeros_like(y))
    return y.reshape(n, c, *out)


class StochasticPooling(nn.Module):
    """Caffe's STOCHASTIC pooling (formulas in the module docstring)."""

    def __init__(self, kernel: tuple[int, int] | None, stride: tuple[int, int], ceil: bool):
        super().__init__()
        self.kernel, self.stride, self.ceil = kernel, stride, ceil

    def extra_repr(self) -> str:
        kernel = "global" if self.kernel is None else f"kernel={self.kernel}"
        return f"STOCHASTIC, {kernel}, stride={self.stride}, round={'CEIL' if self.ceil else 'FLOOR'}"

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        kernel = self.kernel or (height, width)
        return tuple(pooled_size(n, k, s, 0, self.ceil, False)
                     for n, k, s in zip((height, width), kernel, self.stride))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(int(d) for d in x.shape[-2:])
        kernel = self.kernel or size
        out = self.output_size(*size)
        end = [max(0, (o - 1) * s + k - n) for n, k, s, o in zip(size, kernel, self.stride, out)]
        if any(end):
            x = F.pad(x, (0, end[1], 0, end[0]))
        if self.training:
            u = torch.rand((x.shape[0], x.shape[1], *out), dtype=x.dtype, device=x.device)
            return stochastic_sample(x, kernel, self.stride, out, u)
        s1, s2 = window_sums(x, kernel, self.stride)
        positive = s1 > 0
        return torch.where(positive, s2 / torch.where(positive, s1, torch.ones_like(s1)),
                           torch.zeros_like(s1))


def stochastic_pooling(ctx: LayerContext, kernel, stride, pad, ceil: bool) -> Built:
    """Pooling with pool: STOCHASTIC (called by the Pooling builder)."""
    ctx.check(pad == (0, 0), f"pad {pad}: padding is implemented only for AVE and MAX pooling "
                             "(STOCHASTIC takes pad 0)")
    module = StochasticPooling(kernel, stride, ceil)
    shape = ctx.bottoms[0]
    out = module.output_size(*shape[2:])
    ctx.check_size(min(out) > 0, f"the output would be {out[0]}x{out[1]}: the input "
                                 f"{shape[2]}x{shape[3]} is smaller than the kernel {kernel}")
    for n, k, s, o in zip(shape[2:], kernel or shape[2:], stride, out):
        if (o - 1) * s >= n:
            log.warning("layer '%s' (Pooling): its last window starts outside the input (kernel "
                        "%s < stride %s): Caffe gives 0 there at TEST and leaves it unwritten at "
                        "TRAIN; this converter gives 0", ctx.layer.name, k, s)
            break
    return Built(module)


POOL_METHODS[P.STOCHASTIC] = stochastic_pooling

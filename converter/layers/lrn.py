"""Local response normalisation (lrn_layer.cpp), n = local_size (odd):

    ACROSS_CHANNELS: y_c = x_c (k + alpha/n sum_{c'=c-(n-1)/2}^{c+(n-1)/2} x_c'^2)^(-beta)
                     (channels zero-padded) = torch's LocalResponseNorm(n, alpha, beta, k) and
                     ONNX LRN(size=n, alpha, beta, bias=k); exported as the same arithmetic
                     with an AveragePool over channels (ONNX Runtime's LRN kernel is slow).
    WITHIN_CHANNEL:  y = x (1 + alpha/n^2 sum_{n x n window} x^2)^(-beta)   (k is not used)
                     Caffe: AVE pooling of x^2 (kernel n, stride 1, pad (n-1)/2, padding counts,
                     so the divisor is always n^2), Power(shift 1, scale alpha, power -beta),
                     product. No ONNX op: exported as that decomposition.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from prototxt import caffe_pb2
from ..registry import Built, LayerContext, layer

L = caffe_pb2.LRNParameter


class _OnnxLRN(torch.autograd.Function):
    """Writes ACROSS_CHANNELS LRN as x / (k + alpha/n sum x^2)^beta with the windowed channel
    sum as a 1x1 Conv of x^2 with a banded C x C weight (alpha/n inside the window) and bias k:
    the same formula, and several times faster in ONNX Runtime than its LRN kernel (which took
    half of GoogLeNet's CPU time)."""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k, channels):
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k, channels):
        half = (size - 1) // 2
        band = torch.zeros(channels, channels, 1, 1)
        for c in range(channels):
            band[c, max(0, c - half):c + size - half, 0, 0] = alpha / size
        scale = g.op("Conv", g.op("Mul", x, x), g.op("Constant", value_t=band),
                     g.op("Constant", value_t=torch.full((channels,), float(k))), kernel_shape_i=[1, 1])
        if beta == 0.75:  # AlexNet's and GoogLeNet's: scale^0.75 = sqrt(scale) sqrt(sqrt(scale))
            root = g.op("Sqrt", scale)
            return g.op("Div", x, g.op("Mul", root, g.op("Sqrt", root)))
        return g.op("Div", x, g.op("Pow", scale, g.op("Constant", value_t=torch.tensor(beta))))


class AcrossChannelLRN(nn.LocalResponseNorm):
    """Caffe's LRN ACROSS_CHANNELS (exactly torch's LocalResponseNorm)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return _OnnxLRN.apply(x, self.size, self.alpha, self.beta, self.k, int(x.shape[1]))
        return super().forward(x)


class WithinChannelLRN(nn.Module):
    """Caffe's LRN WITHIN_CHANNEL: x (1 + alpha/n^2 sum_{n x n} x^2)^(-beta)."""

    def __init__(self, size: int, alpha: float, beta: float):
        super().__init__()
        self.size, self.alpha, self.beta = size, alpha, beta

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.size - 1) // 2
        mean = F.avg_pool2d(x * x, self.size, 1, pad, count_include_pad=True)
        return x * torch.pow(1 + self.alpha * mean, -self.beta)


@layer("LRN", bottoms=1, tops=1)
def lrn(ctx: LayerContext) -> Built:
    """Local response normalisation ACROSS_CHANNELS (with k) and WITHIN_CHANNEL."""
    p = ctx.layer.lrn_param
    ctx.check(p.local_size % 2 == 1, f"LRN only supports odd values for local_size, not "
                                     f"{p.local_size}")
    ctx.check(len(ctx.bottoms[0]) == 4, f"the bottom must have 4 axes, not shape "
                                        f"{list(ctx.bottoms[0])}")
    if p.norm_region == L.WITHIN_CHANNEL:
        return Built(WithinChannelLRN(p.local_size, p.alpha, p.beta))
    return Built(AcrossChannelLRN(p.local_size, p.alpha, p.beta, p.k))

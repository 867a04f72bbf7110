"""Local response normalisation (lrn_layer.cpp), n = local_size (odd):

    ACROSS_CHANNELS: y_c = x_c (k + alpha/n sum_{c'=c-(n-1)/2}^{c+(n-1)/2} x_c'^2)^(-beta)
                     (channels zero-padded) = torch's LocalResponseNorm(n, alpha, beta, k) and
                     ONNX LRN(size=n, alpha, beta, bias=k); exported as that single LRN op.
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
    """Lets the ONNX exporter write one LRN node (same formula) instead of a decomposition."""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k):
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k):
        return g.op("LRN", x, size_i=size, alpha_f=alpha, beta_f=beta, bias_f=k)


class AcrossChannelLRN(nn.LocalResponseNorm):
    """Caffe's LRN ACROSS_CHANNELS (exactly torch's LocalResponseNorm; ONNX LRN on export)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return _OnnxLRN.apply(x, self.size, self.alpha, self.beta, self.k)
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

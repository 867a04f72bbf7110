"""Local response normalisation (lrn_layer.cpp), n = local_size (odd):

    ACROSS_CHANNELS: y_c = x_c (k + alpha/n sum_{c'=c-(n-1)/2}^{c+(n-1)/2} x_c'^2)^(-beta)
                     (channels zero-padded) = torch's LocalResponseNorm(n, alpha, beta, k) and
                     ONNX LRN(size=n, alpha, beta, bias=k); exported as the same arithmetic
                     with the window sum as a 1x1 Conv (ONNX Runtime's LRN kernel is slow).
    WITHIN_CHANNEL:  y = x (1 + alpha/n^2 sum_{n x n window} x^2)^(-beta)   (k is not used)
                     Caffe: AVE pooling of x^2 (kernel n, stride 1, pad (n-1)/2, padding counts,
                     so the divisor is always n^2), Power(shift 1, scale alpha, power -beta),
                     product. No ONNX op: exported as that decomposition.

Both exports square x * sqrt(alpha/n) (within: x * sqrt(alpha)), not x: the same sum, but a
float16 copy of the model (converter/half.py) would overflow x^2 at |x| > 256 (65504 is
float16's largest value), and a trained net's first LRN sees activations of several hundred
(GoogLeNet on 0-255 pixels: top-1 agreement with fp32 fell to 10.6 % on an H200). Scaled, the
squares stay below 65504 up to |x| ~ 57,000 for GoogLeNet's alpha 1e-4, n 5.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F
from torch import nn

from prototxt import caffe_pb2
from ..registry import Built, LayerContext, layer

L = caffe_pb2.LRNParameter


class _OnnxLRN(torch.autograd.Function):
    """Writes ACROSS_CHANNELS LRN as x / (k + sum (x sqrt(alpha/n))^2)^beta with the windowed
    channel sum as a 1x1 Conv of the squares with a banded C x C weight (1 inside the window)
    and bias k: the same formula, several times faster in ONNX Runtime than its LRN kernel
    (which took half of GoogLeNet's CPU time), and inside float16's range (module docstring)."""

    @staticmethod
    def forward(ctx, x, size, alpha, beta, k, channels):
        return F.local_response_norm(x, size, alpha, beta, k)

    @staticmethod
    def symbolic(g, x, size, alpha, beta, k, channels):
        band = channel_band(channels, size, 1.0)
        scaled = g.op("Mul", x, g.op("Constant", value_t=torch.tensor(math.sqrt(alpha / size))))
        scale = g.op("Conv", g.op("Mul", scaled, scaled), g.op("Constant", value_t=band),
                     g.op("Constant", value_t=torch.full((channels,), float(k))), kernel_shape_i=[1, 1])
        if beta == 0.75:  # AlexNet's and GoogLeNet's: scale^0.75 = sqrt(scale) sqrt(sqrt(scale))
            root = g.op("Sqrt", scale)
            return g.op("Div", x, g.op("Mul", root, g.op("Sqrt", root)))
        return g.op("Div", x, g.op("Pow", scale, g.op("Constant", value_t=torch.tensor(beta))))


@functools.lru_cache(maxsize=64)  # made once per layer shape and device, not every forward
def channel_band(channels: int, size: int, scale: float, dtype: torch.dtype = torch.float32,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """C x C x 1 x 1 weight summing each channel's window of `size` channels, times `scale`
    (shared between callers: do not modify it)."""
    half = (size - 1) // 2
    idx = torch.arange(channels, device=device)
    inside = (idx[None, :] - idx[:, None]).abs() <= half
    return (inside.to(dtype) * scale)[:, :, None, None]


class _BandLRN(torch.autograd.Function):
    """y = x s^-beta with s = k + band * x^2 (band: alpha/n over each channel's window).

    Backward is Caffe's CrossChannelBackward: dx = dy s^-beta - (2 beta) x band^T(dy y / s)
    (Caffe's cache_ratio 2 alpha beta / n, with alpha/n inside the band), which needs one more
    1x1 convolution and far fewer temporaries than autograd's chain through pow.

    At least float32, also under autocast (--fast): CUDA's autocast runs pow in float32 but the
    convolutions in bf16, which mixed the two in backward, and x^-0.75 of a bf16 sum of squares
    is the kind of op autocast keeps in float32 anyway. The result has the input's dtype."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, band: torch.Tensor, k: float, beta: float) -> torch.Tensor:
        with torch.autocast(x.device.type, enabled=False):
            xf = x.to(torch.promote_types(x.dtype, torch.float32))  # float64 stays (gradcheck)
            band = band.to(xf.dtype)
            scale = F.conv2d(xf * xf, band).add_(k)
            inv = scale.pow(-beta)
            ctx.save_for_backward(xf, scale, inv, band)
            ctx.beta = beta
            return (xf * inv).to(x.dtype)

    @staticmethod
    def backward(ctx, dy: torch.Tensor):
        x, scale, inv, band = ctx.saved_tensors
        with torch.autocast(x.device.type, enabled=False):
            dyf = dy.to(x.dtype)
            window = F.conv2d(dyf * x * inv / scale, band)  # the band is symmetric: band^T = band
            dx = dyf * inv - (2 * ctx.beta) * x * window
        return dx.to(dy.dtype), None, None, None


class AcrossChannelLRN(nn.LocalResponseNorm):
    """Caffe's LRN ACROSS_CHANNELS (torch's LocalResponseNorm formula).

    The windowed channel sum runs as a 1x1 convolution of x^2 with a banded weight (the same
    terms) and backward is Caffe's own formula (_BandLRN): about 1.7x faster on CPUs than torch's
    avg_pool3d-based kernel, which took a third of a GoogLeNet training iteration."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.onnx.is_in_onnx_export():
            return _OnnxLRN.apply(x, self.size, self.alpha, self.beta, self.k, int(x.shape[1]))
        if x.dim() != 4 or x.device.type == "meta":
            return super().forward(x)
        band = channel_band(x.shape[1], self.size, self.alpha / self.size, torch.float32, x.device)
        return _BandLRN.apply(x, band, float(self.k), float(self.beta))


class WithinChannelLRN(nn.Module):
    """Caffe's LRN WITHIN_CHANNEL: x (1 + alpha/n^2 sum_{n x n} x^2)^(-beta)."""

    def __init__(self, size: int, alpha: float, beta: float):
        super().__init__()
        self.size, self.alpha, self.beta = size, alpha, beta

    def extra_repr(self) -> str:
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pad = (self.size - 1) // 2
        if torch.onnx.is_in_onnx_export():  # squares inside float16's range (module docstring)
            scaled = x * math.sqrt(self.alpha)
            mean = F.avg_pool2d(scaled * scaled, self.size, 1, pad, count_include_pad=True)
            return x * torch.pow(1 + mean, -self.beta)
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
    same = tuple(ctx.bottoms[0])
    if p.norm_region == L.WITHIN_CHANNEL:
        return Built(WithinChannelLRN(p.local_size, p.alpha, p.beta), tops=(same,))
    return Built(AcrossChannelLRN(p.local_size, p.alpha, p.beta, p.k), tops=(same,))

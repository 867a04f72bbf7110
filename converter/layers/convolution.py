"""Convolution and Deconvolution: stock nn.Conv{1,2,3}d / nn.ConvTranspose{1,2,3}d, which
compute exactly Caffe's im2col + GEMM.

    Convolution:   out = floor((in + 2p - (d(k - 1) + 1)) / s) + 1
    Deconvolution: out = s(in - 1) + d(k - 1) + 1 - 2p

Blobs: weight (num_output, C/group, kh, kw) for Convolution, (C, num_output/group, kh, kw) for
Deconvolution (the same layout as PyTorch), then bias (num_output,) when bias_term. kernel, stride,
pad and dilation follow BaseConvolutionLayer::LayerSetUp: `kernel_h/kernel_w` (2-D only) or
`kernel_size` given once or once per spatial axis; stride 1, pad 0, dilation 1 by default.
"""
from __future__ import annotations

from torch import nn

from ..registry import Blob, Built, LayerContext, layer

CONV = {1: nn.Conv1d, 2: nn.Conv2d, 3: nn.Conv3d}
DECONV = {1: nn.ConvTranspose1d, 2: nn.ConvTranspose2d, 3: nn.ConvTranspose3d}


def _dims(ctx: LayerContext, name: str, n: int, default: int) -> list[int]:
    p = ctx.layer.convolution_param
    has_hw = p.HasField(f"{name}_h") or p.HasField(f"{name}_w")
    values = list(getattr(p, name if name != "kernel" else "kernel_size"))
    if has_hw:
        ctx.check(n == 2, f"{name}_h & {name}_w can only be used for 2D convolution")
        field = "kernel_size" if name == "kernel" else name
        ctx.check(not values, f"either {field} or {name}_h/w should be specified; not both")
        return [getattr(p, f"{name}_h"), getattr(p, f"{name}_w")]
    if not values:
        ctx.check(name != "kernel", "kernel_size (or kernel_h and kernel_w) is required")
        return [default] * n
    ctx.check(len(values) in (1, n), f"{name} must be specified once, or once per spatial "
                                     f"dimension ({n}); it is given {len(values)} times")
    return values * n if len(values) == 1 else values


def _setup(ctx: LayerContext):
    p = ctx.layer.convolution_param
    shape = ctx.bottoms[0]
    ctx.check(ctx.axis(p.axis) == 1, "only axis 1 (channels) is supported")
    n = len(shape) - 2
    ctx.check(n in CONV, f"the bottom must have 1 to 3 spatial axes, not shape {list(shape)}")
    kernel = _dims(ctx, "kernel", n, 0)
    stride = _dims(ctx, "stride", n, 1)
    pad = _dims(ctx, "pad", n, 0)
    dilation = list(p.dilation) or [1]
    ctx.check(len(dilation) in (1, n), f"dilation must be specified once, or once per spatial "
                                       f"dimension ({n})")
    dilation = dilation * n if len(dilation) == 1 else dilation
    ctx.check(all(k > 0 for k in kernel), f"filter dimensions must be nonzero: {kernel}")
    ctx.check(all(s > 0 for s in stride), f"stride dimensions must be nonzero: {stride}")
    ctx.check(p.num_output > 0, "num_output must be set and positive")
    channels = shape[1]
    ctx.check(channels % p.group == 0, f"{channels} input channels are not a multiple of "
                                       f"group {p.group}")
    ctx.check(p.num_output % p.group == 0, f"num_output {p.num_output} is not a multiple of "
                                           f"group {p.group}")
    return n, channels, kernel, stride, pad, dilation


def _blobs(ctx: LayerContext) -> tuple[Blob, ...]:
    p = ctx.layer.convolution_param
    blobs = (Blob("weight", p.weight_filler),)
    return blobs + (Blob("bias", p.bias_filler),) if p.bias_term else blobs


@layer("Convolution", bottoms=1, tops=1)
def convolution(ctx: LayerContext) -> Built:
    """N-D convolution with group, dilation, kernel/stride/pad (h, w), bias_term."""
    n, channels, kernel, stride, pad, dilation = _setup(ctx)
    p = ctx.layer.convolution_param
    top = [ctx.bottoms[0][0], p.num_output]
    for i in range(n):
        extent = dilation[i] * (kernel[i] - 1) + 1
        size = ctx.bottoms[0][2 + i]
        ctx.check_size(size + 2 * pad[i] >= extent,
                  f"the kernel (extent {extent}) is larger than the padded input "
                  f"({size} + 2x{pad[i]}) on spatial axis {i}")
        top.append((size + 2 * pad[i] - extent) // stride[i] + 1)
    module = CONV[n](channels, p.num_output, kernel, stride, pad, dilation, p.group,
                     bias=p.bias_term)
    return Built(module, _blobs(ctx), (tuple(top),))


@layer("Deconvolution", bottoms=1, tops=1)
def deconvolution(ctx: LayerContext) -> Built:
    """Transposed convolution (Caffe's backward-of-convolution), same parameters."""
    n, channels, kernel, stride, pad, dilation = _setup(ctx)
    p = ctx.layer.convolution_param
    module = DECONV[n](channels, p.num_output, kernel, stride, pad, 0, p.group,
                       bias=p.bias_term, dilation=dilation)
    return Built(module, _blobs(ctx))

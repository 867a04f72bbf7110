"""Depthwise convolution under the forks' own type strings, as nn.Conv2d with group = channels:

    y[n, c] = sum_{i,j} w[c, 0, i, j] x[n, c, h s - p + i d, w s - p + j d] (+ b[c])

Both spellings read BVLC's convolution_param (kernel, stride, pad, dilation, bias_term, fillers)
and store the blobs as BVLC's Convolution with group = C does: weight C x 1 x kh x kw, bias C.

- ConvolutionDepthwise (yonghenglh6/DepthwiseConvolution, conv_dw_layer.cpp; also in Tiny-DSOD
  and other MobileNet-SSD forks): computes one filter per input channel and ignores num_output
  and group. OpenCV reads it as a Convolution with the prototxt's num_output and group.
- DepthwiseConvolution (eric612/MobileNet-YOLO, SyGoing/caffe-depthwiseconvolution,
  depthwise_conv_layer.cpp): BVLC's im2col path with the prototxt's group on the CPU, a
  per-channel kernel (weight c for channel c) on the GPU; the two agree only when num_output =
  group = C.

So here the output has C channels and group is C. A num_output other than C is refused, since
one fork would ignore it and the other would compute something else on CPU than on GPU; a group
other than 1 (unset) or C likewise.
"""
from __future__ import annotations

import dataclasses

from ..registry import Built, LayerContext, layer
from .convolution import convolution


@layer("ConvolutionDepthwise", bottoms=1, tops=1)
@layer("DepthwiseConvolution", bottoms=1, tops=1)
def depthwise(ctx: LayerContext) -> Built:
    """Depthwise convolution (group = num_output = channels) from convolution_param (forks)."""
    shape = ctx.bottoms[0]
    ctx.check(len(shape) == 4, f"the bottom must have 4 axes (num, channels, height, width), "
                               f"not shape {list(shape)}")
    channels = shape[1]
    p = ctx.layer.convolution_param
    ctx.check(not p.HasField("num_output") or p.num_output == channels,
              f"num_output {p.num_output} differs from the bottom's {channels} channels: a "
              f"{ctx.layer.type} computes one filter per input channel (num_output = group = "
              f"channels); write num_output: {channels}, or use Convolution with a group")
    ctx.check(p.group in (1, channels),
              f"group {p.group} is neither the bottom's {channels} channels nor unset: a "
              f"{ctx.layer.type} is grouped by channel (group = channels)")
    param = type(ctx.layer)()
    param.CopyFrom(ctx.layer)
    param.convolution_param.num_output = channels
    param.convolution_param.group = channels
    return convolution(dataclasses.replace(ctx, layer=param))

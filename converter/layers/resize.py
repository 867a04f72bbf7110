"""Resizing layers of the forks: Upsample (YOLOv3 forks) and Interp (DeepLab v2 / PSPNet).

Upsample, as in the YOLOv3 forks (eric612/MobileNet-YOLO upsample_layer.cpp, the layer
ChenYingpeng/darknet2caffe has users add; upsample_param { scale }, default 1): nearest
neighbour by an integer factor, on a 4-axis bottom.

    y[n, c, h, w] = x[n, c, floor(h / scale), floor(w / scale)]      top H scale x W scale
    dx[n, c, i, j] = sum of dy over the scale x scale block it was copied to

SegNet's Upsample (alexgkendall/caffe-segnet) is a different layer under the same name: a
max-unpooling that takes the pooling mask as a second bottom. It is refused with that reason
(the converter's Pooling has no mask top either). Computed as Expand + Reshape, which is exact
for every scale (a Resize by a float factor can floor h / scale one row early) and exports to
ONNX Unsqueeze/Expand/Reshape.

Interp, as in DeepLab v2 (deeplab-public-ver2 interp_layer.cpp and util/interp.cpp, George
Papandreou's caffe_cpu_interp2 / caffe_gpu_interp2; the same files in PSPNet): bilinear
interpolation with aligned corners of the bottom cropped by pad_beg / pad_end (both <= 0):

    crop      x[..., -pad_beg : H + pad_end, -pad_beg : W + pad_end]   (He = H + pad_beg + pad_end)
    size      shrink_factor only:  (He - 1) / shrink + 1                (integer division)
              zoom_factor only:    He + (He - 1)(zoom - 1)
              height and width:    as given
              shrink and zoom:     shrink first, then zoom
              else, two bottoms:   bottom 1's height and width
    sample    h1 = h2 (He - 1) / (Ho - 1) (0 when Ho = 1), y = bilinear between rows floor(h1)
              and floor(h1) + 1 (the last row repeats), likewise along the width

This is torch's (and ONNX Resize's) bilinear with align_corners=True, since PyTorch's kernel
was adapted from the same interp.cu; a top of the cropped size is the crop itself. The backward
is the adjoint (Caffe's caffe_cpu_interp2_backward), which autograd gives. Caffe computes the
ratio (He - 1)/(Ho - 1) in float32 even for double blobs; a float64 model here uses it in
float64. Zoom gives H + (H - 1)(zoom - 1), not H zoom, so a DeepLab net keeps its sizes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Built, LayerContext, layer


class NearestUpsample(nn.Module):
    """The YOLO forks' Upsample: every pixel copied to a scale x scale block."""

    def __init__(self, scale: int):
        super().__init__()
        self.scale = scale

    def extra_repr(self) -> str:
        return f"scale={self.scale}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.scale
        if s == 1:
            return x
        _, c, h, w = (int(d) for d in x.shape)
        blocks = x[:, :, :, None, :, None].expand(-1, -1, -1, s, -1, s)
        return blocks.reshape(-1, c, h * s, w * s)


class Interp(nn.Module):
    """DeepLab's Interp: crop by pad_beg/pad_end, then bilinear (aligned corners) to `size`."""

    def __init__(self, crop: tuple[int, int, int, int], size: tuple[int, int]):
        super().__init__()
        self.crop, self.size = crop, size  # crop: (top, bottom, left, right) bounds

    def extra_repr(self) -> str:
        return f"crop={self.crop}, size={self.size}"

    def forward(self, x: torch.Tensor, reference: torch.Tensor | None = None) -> torch.Tensor:
        top, bottom, left, right = self.crop
        if (top, left) != (0, 0) or (bottom, right) != tuple(int(d) for d in x.shape[-2:]):
            x = x[:, :, top:bottom, left:right]
        if tuple(int(d) for d in x.shape[-2:]) == self.size:
            return x  # Caffe's special case: a plain copy
        return F.interpolate(x, size=self.size, mode="bilinear", align_corners=True)


def _four_axes(ctx: LayerContext) -> tuple[int, ...]:
    shape = ctx.bottoms[0]
    ctx.check(len(shape) == 4, f"the bottom must have 4 axes (num, channels, height, width), "
                               f"not shape {list(shape)}")
    return shape


@layer("Upsample", bottoms=(1, 2), tops=1)
def upsample(ctx: LayerContext) -> Built:
    """Nearest-neighbour upsampling by upsample_param.scale (the YOLOv3 forks' Upsample)."""
    ctx.check(len(ctx.bottoms) == 1,
              "an Upsample with 2 bottoms is SegNet's max-unpooling (data + pooling mask), "
              "which is not supported; this converter reads the YOLOv3 forks' Upsample "
              "(one bottom, nearest neighbour by upsample_param.scale)")
    _four_axes(ctx)
    scale = ctx.layer.upsample_param.scale
    ctx.check(scale >= 1, f"upsample_param.scale must be at least 1, not {scale}")
    return Built(NearestUpsample(scale))


@layer("Interp", bottoms=(1, 2), tops=1)
def interp(ctx: LayerContext) -> Built:
    """Bilinear resize with aligned corners by zoom/shrink/size/bottom 1 (DeepLab, PSPNet)."""
    _, _, height, width = _four_axes(ctx)
    p = ctx.layer.interp_param
    ctx.check(p.pad_beg <= 0 and p.pad_end <= 0,
              f"pad_beg {p.pad_beg} and pad_end {p.pad_end} must be <= 0 (Interp only crops)")
    he, we = height + p.pad_beg + p.pad_end, width + p.pad_beg + p.pad_end
    ctx.check_size(he > 0 and we > 0, f"cropping by pad_beg {p.pad_beg} and pad_end "
                                      f"{p.pad_end} leaves {he}x{we} of {height}x{width}")
    has_shrink, has_zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
    if has_shrink:
        ctx.check(p.shrink_factor >= 1, "shrink_factor must be positive")
    if has_zoom:
        ctx.check(p.zoom_factor >= 1, "zoom_factor must be positive")
    if has_shrink or has_zoom:
        size = (he, we)
        if has_shrink:
            size = tuple((n - 1) // p.shrink_factor + 1 for n in size)
        if has_zoom:
            size = tuple(n + (n - 1) * (p.zoom_factor - 1) for n in size)
    elif p.HasField("height") and p.HasField("width"):
        size = (p.height, p.width)
    elif len(ctx.bottoms) == 2:
        ctx.check(len(ctx.bottoms[1]) == 4, f"bottom 1 must have 4 axes, not shape "
                                            f"{list(ctx.bottoms[1])}")
        size = tuple(ctx.bottoms[1][2:])
    else:
        raise ctx.fail("interp_param needs zoom_factor, shrink_factor, or height and width, "
                       "or the layer a second bottom whose size to take")
    ctx.check_size(min(size) > 0, f"the top would be {size[0]}x{size[1]}")
    crop = (-p.pad_beg, height + p.pad_end, -p.pad_beg, width + p.pad_end)
    return Built(Interp(crop, tuple(int(n) for n in size)))

"""BatchNorm.

BatchNorm, BVLC (batch_norm_layer.cpp), blobs [mean_sum, var_sum, factor] (C), (C), (1):
    global statistics: mean = mean_sum / factor, var = var_sum / factor (0 when factor = 0)
    y = (x - mean) / sqrt(var + eps)               no affine: a following Scale supplies it
    batch statistics (TRAIN, unless use_global_stats is set) over every axis but 1, biased var
    for y; then factor <- maf factor + 1, mean_sum <- maf mean_sum + mean_B,
    var_sum <- maf var_sum + m/(m - 1) var_B   (m = values per channel, maf =
    moving_average_fraction). use_global_stats defaults to "phase is TEST" (= not training).
BatchNorm, NVIDIA Caffe (a prototxt with scale_filler/bias_filler, or a 5-blob caffemodel):
    statistics stored as they are (no factor), y = scale (x - mean) / sqrt(var + eps) + bias,
    running statistics r <- (1 - maf) x_B + maf r (the first update copies), biased var.
    Blob order 0.15 (DIGITS): [scale, bias, mean, var, counter]; 0.16+: [mean, var, 1, scale,
    bias] with eps at least 1e-5. NVCaffe's variance clipping in training is not reproduced.
A following Scale layer (scale.py) supplies the BVLC affine part.
"""
from __future__ import annotations

import torch
from torch import nn

from ..fillers import constant_filler
from ..registry import Blob, Built, LayerContext, layer

BVLC, NVCAFFE_015, NVCAFFE_016 = "bvlc", "nvcaffe-0.15", "nvcaffe-0.16"
BLOB_ORDER = {BVLC: ("mean", "variance", "scale_factor"),
              NVCAFFE_015: ("weight", "bias", "mean", "variance", "counter"),
              NVCAFFE_016: ("mean", "variance", "scale_factor", "weight", "bias")}


class CaffeBatchNorm(nn.Module):
    """Caffe's BatchNorm (formulas in the module docstring); `layout` names the blob layout."""

    def __init__(self, channels: int, eps: float, maf: float, use_global_stats: bool | None,
                 layout: str = BVLC):
        super().__init__()
        self.channels, self.base_eps, self.maf = channels, eps, maf
        self.use_global_stats = use_global_stats
        self.register_buffer("mean", torch.empty(channels))
        self.register_buffer("variance", torch.empty(channels))
        self.register_buffer("scale_factor", torch.empty(1))
        self.layout = BVLC
        self.weight = self.bias = None
        if layout != BVLC:
            self.make_affine(layout)

    def make_affine(self, layout: str) -> None:
        """Switch to an NVIDIA Caffe layout (adds scale `weight`, `bias` and a counter)."""
        if self.weight is None:
            self.weight = nn.Parameter(torch.ones_like(self.mean))
            self.bias = nn.Parameter(torch.zeros_like(self.mean))
            self.register_buffer("counter", torch.zeros_like(self.scale_factor))
        self.layout = layout

    @property
    def eps(self) -> float:
        return max(self.base_eps, 1e-5) if self.layout == NVCAFFE_016 else self.base_eps

    def extra_repr(self) -> str:
        return (f"{self.channels}, eps={self.eps}, moving_average_fraction={self.maf}, "
                f"use_global_stats={self.use_global_stats}, layout={self.layout}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, self.channels) + (1,) * (x.dim() - 2)
        use_global = self.use_global_stats if self.use_global_stats is not None else not self.training
        if use_global:
            mean, var = self.mean, self.variance
            if self.layout == BVLC:
                factor = self.scale_factor[0]
                inv = torch.where(factor == 0, torch.zeros_like(factor), 1 / factor)
                mean, var = mean * inv, var * inv
        else:
            dims = [0] + list(range(2, x.dim()))
            mean = x.mean(dims)
            var = (x - mean.view(shape)).pow(2).mean(dims)
            self._update(mean.detach(), var.detach(), x.numel() // self.channels)
        y = (x - mean.view(shape)) / torch.sqrt(var.view(shape) + self.eps)
        if self.weight is not None:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y

    @torch.no_grad()
    def _update(self, mean: torch.Tensor, var: torch.Tensor, m: int) -> None:
        if self.layout == BVLC:
            self.scale_factor.mul_(self.maf).add_(1)
            self.mean.mul_(self.maf).add_(mean)
            self.variance.mul_(self.maf).add_(var * (m / (m - 1) if m > 1 else 1.0))
            return
        first = self.counter.item() == 0 if self.counter.device.type != "meta" else False
        self.counter.add_(1)
        if first:
            self.mean.copy_(mean), self.variance.copy_(var)
        else:
            self.mean.mul_(self.maf).add_((1 - self.maf) * mean)
            self.variance.mul_(self.maf).add_((1 - self.maf) * var)


@layer("BatchNorm", bottoms=1, tops=1, in_place=True)
def batch_norm(ctx: LayerContext) -> Built:
    """Batch normalisation, BVLC 3 blobs (use_global_stats, moving_average_fraction, eps); NVIDIA Caffe 5 blobs."""
    p = ctx.layer.batch_norm_param
    ctx.check(len(ctx.bottoms[0]) >= 2, "the bottom must have at least 2 axes (num, channels, ...)")
    channels = ctx.bottoms[0][1]
    nvcaffe = p.HasField("scale_filler") or p.HasField("bias_filler")
    use_global = p.use_global_stats if p.HasField("use_global_stats") else None
    module = CaffeBatchNorm(channels, p.eps, p.moving_average_fraction, use_global,
                            NVCAFFE_015 if nvcaffe else BVLC)
    zero = constant_filler(0.0)
    blobs = {"mean": zero, "variance": zero, "scale_factor": zero, "counter": zero,
             "weight": p.scale_filler if p.HasField("scale_filler") else constant_filler(1.0),
             "bias": p.bias_filler}
    return Built(module, tuple(Blob(name, blobs[name]) for name in BLOB_ORDER[module.layout]))

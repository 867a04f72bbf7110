"""BatchNorm in each Caffe flavour's blob layout, and the layout of a file's blobs.

x is the bottom; per channel c (axis 1), statistics broadcast over every other axis; m is the
number of values per channel in a batch; maf = moving_average_fraction.

BVLC (BVLC/caffe 1.0 batch_norm_layer.cpp), "bvlc": blobs [mean_sum (C), var_sum (C), factor (1)]
    global statistics (TEST, or use_global_stats): s = 0 if factor == 0 else 1 / factor,
        y = (x - s mean_sum) / sqrt(s var_sum + eps)                 eps as given
    batch statistics (TRAIN unless use_global_stats; the default is "phase is TEST"): biased var
    for y; then factor <- maf factor + 1, mean_sum <- maf mean_sum + mean_B,
    var_sum <- maf var_sum + m/(m - 1) var_B. No affine part: a following Scale layer (scale.py).

NVIDIA Caffe 0.15 (NVIDIA/caffe v0.15.14 batch_norm_layer.cpp, cudnn_batch_norm_layer.cpp/.cu;
the Caffe of DIGITS 4 to 6.0), "nvcaffe-0.15": always 5 blobs
    [scale (C), bias (C), mean (C), var (C), reserved (1)]   (engine CUDNN: 1xCx1x1 and 1x1x1x1)
        y = scale (x - mean) / sqrt(var + eps') + bias              statistics as stored
        eps' = max(eps, 1e-5) with engine CUDNN (cuDNN's CUDNN_BN_MIN_EPSILON; DEFAULT means CUDNN
        in a cuDNN build), eps with engine CAFFE.
    TRAIN: r <- (1 - maf) r_B + maf r, the first update copies, biased var. use_global_stats is
    honoured as by the CAFFE engine (the cuDNN engine goes by the phase alone). Not reproduced:
    NVCaffe's variance clipping after 200 iterations (CAFFE engine only).

NVIDIA Caffe 0.16 / 0.17 (v0.16.1 to v0.17.4 batch_norm_layer.cpp and the cuDNN layer),
"nvcaffe-0.16": blobs [mean (C), var (C), factor (1)], plus [scale (C), bias (C)] when
scale_bias: true or a scale/bias filler is given (scale 1, bias 0 without fillers)
        y = (x - mean) / sqrt(var + eps') [* scale + bias]           statistics as stored
        eps' = max(eps, 1e-5) (v0.16.2+ and the cuDNN engine; v0.16.1's CPU layer used 1e-4)
    The factor is never read: v0.16.1-v0.16.4 write 0 there, v0.16.5+ write 1 (NVIDIA/caffe#436:
    BVLC's reading of a 0 turns the statistics into zeros). The phase alone picks batch or global
    statistics (use_global_stats is ignored). On load, NVCaffe 0.16+ swaps a 5-blob file whose
    blob 4 has 1 element from the 0.15 order; v0.17.4 also divides a 3-blob file's statistics by
    its factor (0 -> 0) and sets the factor to 1 (net.cpp CopyTrainedLayersFrom).

Which layout a file's blobs are in (detect_layout, logged per layer by load_caffemodel):
    3 blobs  [C, C, 1], factor f:
        f != 0                 -> bvlc. With f == 1 (what NVCaffe 0.16.5+ writes) both read the
                                  same, except for the eps clamp: if eps < 1e-5 that is ambiguous
                                  unless the prototxt sets scale_bias (NVCaffe-only) or the caller
                                  names the flavour. Another f from NVCaffe 0.16 (which copied a
                                  BVLC file's factor and never read it) needs the flavour named.
        f == 0, stats all 0    -> bvlc (every reading gives zeros)
        f == 0, stats not 0    -> nvcaffe-0.16 without scale/bias (#436): factor read as 1,
                                  with a warning (BVLC never writes 0 beside non-zero sums)
    5 blobs  [C, C, C, C, 1]   -> nvcaffe-0.15 (eps < 1e-5 with engine DEFAULT is ambiguous)
             [C, C, 1, C, C]   -> nvcaffe-0.16 with scale/bias, when f is 0 or 1; another f is
                                  not NVCaffe's (whether to divide by it is unknown): an error
             C == 1 fits both orders: an error
    any other count or shape   -> an error.
A prototxt with scale_bias: true builds "nvcaffe-0.16" with scale/bias, one with only fillers
"nvcaffe-0.15" (DIGITS'), else "bvlc"; the file's layout replaces it on load, and a caffemodel
is written back in the layout it was read in.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import nn

from prototxt import caffe_pb2
from ..fillers import constant_filler
from ..registry import Blob, Built, LayerContext, layer

BVLC, NVCAFFE_015, NVCAFFE_016 = "bvlc", "nvcaffe-0.15", "nvcaffe-0.16"
LAYOUTS = (BVLC, NVCAFFE_015, NVCAFFE_016)
EPS_FLOOR = float(np.float32(1e-5))  # NVCaffe: std::max<float>(eps, 0.00001f)
_STATS = ("mean", "variance", "scale_factor")
_ORDERS = {(BVLC, False): _STATS,
           (NVCAFFE_015, True): ("weight", "bias", "mean", "variance", "counter"),
           (NVCAFFE_016, False): _STATS,
           (NVCAFFE_016, True): _STATS + ("weight", "bias")}
_CUDNN = caffe_pb2.BatchNormParameter.CUDNN
_CAFFE = caffe_pb2.BatchNormParameter.CAFFE


def blob_order(layout: str, affine: bool) -> tuple[str, ...]:
    """The module attributes of a layout's blobs, in the file's order."""
    return _ORDERS[(layout, affine)]


def eps_floor(layout: str, engine: int) -> float:
    """The least eps a layout's program used (0: eps as given); see the module docstring."""
    if layout == NVCAFFE_016 or (layout == NVCAFFE_015 and engine != _CAFFE):
        return EPS_FLOOR
    return 0.0


class CaffeBatchNorm(nn.Module):
    """Caffe's BatchNorm (formulas in the module docstring); `layout` names the blob layout,
    `affine` whether the layer holds its own scale and bias (NVIDIA Caffe)."""

    def __init__(self, channels: int, eps: float, maf: float, use_global_stats: bool | None,
                 layout: str = BVLC, affine: bool = False, engine: int = 0):
        super().__init__()
        self.channels, self.base_eps, self.maf = channels, eps, maf
        self.use_global_stats, self.engine = use_global_stats, engine
        self.register_buffer("mean", torch.empty(channels))
        self.register_buffer("variance", torch.empty(channels))
        self.register_buffer("scale_factor", torch.empty(1))
        self.layout, self.affine = BVLC, False
        self.weight = self.bias = None
        self.set_layout(layout, affine)

    def set_layout(self, layout: str, affine: bool) -> None:
        """Switch to another layout (adds the scale `weight`, `bias` and the 0.15 counter)."""
        blob_order(layout, affine)  # a KeyError for a combination no Caffe writes
        if affine and self.weight is None:
            self.weight = nn.Parameter(torch.ones_like(self.mean))
            self.bias = nn.Parameter(torch.zeros_like(self.mean))
        elif not affine:
            self.weight = self.bias = None
        counter = self._buffers.pop("counter", None)
        if layout != BVLC:  # the first running update copies (NVCaffe); a file blob only in 0.15
            self.register_buffer("counter", torch.zeros_like(self.scale_factor) if counter is None
                                 else counter, persistent=layout == NVCAFFE_015)
        self.layout, self.affine = layout, affine

    @property
    def eps(self) -> float:
        return max(self.base_eps, eps_floor(self.layout, self.engine))

    def extra_repr(self) -> str:
        return (f"{self.channels}, eps={self.eps}, moving_average_fraction={self.maf}, "
                f"use_global_stats={self.use_global_stats}, layout={self.layout}"
                + (", scale and bias" if self.affine else ""))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = (1, self.channels) + (1,) * (x.dim() - 2)
        use_global = self.use_global_stats
        if use_global is None or self.layout == NVCAFFE_016:
            use_global = not self.training
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


def layout_blobs(layout: str, affine: bool,
                 param: caffe_pb2.BatchNormParameter) -> tuple[Blob, ...]:
    """The layout's Blob entries (attribute + filler) for the net's layer_info."""
    zero, one = constant_filler(0.0), constant_filler(1.0)
    fillers = {"weight": param.scale_filler if param.HasField("scale_filler") else one,
               "bias": param.bias_filler,
               "scale_factor": one if layout == NVCAFFE_016 else zero}
    return tuple(Blob(name, fillers.get(name, zero)) for name in blob_order(layout, affine))


@layer("BatchNorm", bottoms=1, tops=1, in_place=True)
def batch_norm(ctx: LayerContext) -> Built:
    """Batch normalisation: BVLC 3 blobs; NVIDIA Caffe 0.15 and 0.16/0.17 with scale and bias."""
    p = ctx.layer.batch_norm_param
    ctx.check(len(ctx.bottoms[0]) >= 2, "the bottom must have at least 2 axes (num, channels, ...)")
    channels = ctx.bottoms[0][1]
    if p.scale_bias:
        layout, affine = NVCAFFE_016, True
    elif p.HasField("scale_filler") or p.HasField("bias_filler"):
        layout, affine = NVCAFFE_015, True
    else:
        layout, affine = BVLC, False
    use_global = p.use_global_stats if p.HasField("use_global_stats") else None
    module = CaffeBatchNorm(channels, p.eps, p.moving_average_fraction, use_global, layout, affine,
                            p.engine)
    return Built(module, layout_blobs(layout, affine, p))


# ---------------------------------------------------------------- the layout of a file's blobs

class LayoutError(ValueError):
    """A file's BatchNorm blobs fit no layout, or more than one that read differently."""


class Detected(NamedTuple):
    layout: str
    affine: bool
    factor: float | None  # replaces the file's factor (#436: 1.0); None keeps it
    note: str             # for the log
    warning: str | None = None


def _vector(array: np.ndarray, size: int) -> bool:
    return array.size == size and sum(d != 1 for d in array.shape) <= (1 if size > 1 else 0)


def _fits(arrays: list[np.ndarray], sizes: tuple[int, ...]) -> bool:
    return len(arrays) == len(sizes) and all(_vector(a, n) for a, n in zip(arrays, sizes))


def detect_layout(arrays: list[np.ndarray], channels: int, param: caffe_pb2.BatchNormParameter,
                  flavor: str | None = None) -> Detected:
    """The layout of one layer's blobs in a file (rules in the module docstring). `flavor`
    (bvlc, nvcaffe-0.15, nvcaffe-0.16) settles the cases the blobs leave open, and only those.
    Raises LayoutError when no layout fits or the fitting ones disagree."""
    if flavor is not None and flavor not in LAYOUTS:
        raise LayoutError(f"unknown BatchNorm flavour {flavor!r}; one of {', '.join(LAYOUTS)}")
    c = channels
    shapes = [list(a.shape) for a in arrays]
    small_eps = param.eps < EPS_FLOOR
    if _fits(arrays, (c, c, 1)):
        factor = float(arrays[2].ravel()[0])
        if factor == 0 and (arrays[0].any() or arrays[1].any()):
            return Detected(NVCAFFE_016, False, 1.0, "NVIDIA Caffe 0.16 BatchNorm (3 blobs, "
                            "statistics as stored)", "the scale factor blob is 0 beside non-zero "
                            "statistics, as NVIDIA Caffe 0.16.1-0.16.4 wrote it "
                            "(NVIDIA/caffe#436); read as 1 (BVLC's reading would zero the "
                            "statistics)")
        if factor == 1 and small_eps and not param.HasField("scale_bias") and flavor is None:
            raise LayoutError(
                f"3 BatchNorm blobs with scale factor 1 and eps {param.eps:g} < 1e-5: BVLC Caffe "
                "uses that eps, NVIDIA Caffe 0.16+ clamps it to 1e-5, and both write such files; "
                "name the flavour (load_caffemodel(..., batchnorm='bvlc' or 'nvcaffe-0.16'); "
                "converter onnx --batchnorm bvlc or nvcaffe-0.16) or set eps >= 1e-5")
        if flavor == NVCAFFE_016 or (factor == 1 and param.HasField("scale_bias")):
            return Detected(NVCAFFE_016, False, None, "NVIDIA Caffe 0.16 BatchNorm (3 blobs, "
                            "statistics as stored)")
        if flavor not in (None, BVLC):
            raise LayoutError(f"3 BatchNorm blobs cannot be the {flavor} layout")
        return Detected(BVLC, False, None, f"BVLC BatchNorm (3 blobs, scale factor {factor:g})")
    if len(arrays) != 5:
        raise LayoutError(f"{len(arrays)} BatchNorm blobs of shapes {shapes} for {c} channels: "
                          "Caffe writes 3 [mean, variance, scale factor] or NVIDIA Caffe 5")
    old, new = _fits(arrays, (c, c, c, c, 1)), _fits(arrays, (c, c, 1, c, c))
    if old and new:
        if flavor in (NVCAFFE_015, NVCAFFE_016):
            old, new = flavor == NVCAFFE_015, flavor == NVCAFFE_016
        else:
            raise LayoutError("5 BatchNorm blobs of 1 channel fit both NVIDIA Caffe orders, 0.15 "
                              "[scale, bias, mean, var, 1] and 0.16 [mean, var, factor, scale, "
                              "bias]; name the flavour (load_caffemodel(..., "
                              "batchnorm='nvcaffe-0.15' or 'nvcaffe-0.16'); converter onnx "
                              "--batchnorm nvcaffe-0.15 or nvcaffe-0.16)")
    if old:
        if small_eps and param.engine not in (_CAFFE, _CUDNN):
            raise LayoutError(
                f"NVIDIA Caffe 0.15 BatchNorm with eps {param.eps:g} < 1e-5 and engine DEFAULT: "
                "its cuDNN engine clamps eps to 1e-5, its CAFFE engine does not, and the file "
                "does not say which ran; set batch_norm_param { engine: CUDNN } or "
                "{ engine: CAFFE }")
        return Detected(NVCAFFE_015, True, None, "NVIDIA Caffe 0.15 BatchNorm (5 blobs: scale, "
                        "bias, mean, variance, reserved)")
    if new:
        factor = float(arrays[2].ravel()[0])
        if factor not in (0.0, 1.0):
            raise LayoutError(
                f"5 BatchNorm blobs in NVIDIA Caffe 0.16's order [mean, var, factor, scale, bias] "
                f"but scale factor {factor:g}: NVIDIA Caffe writes 0 or 1 there and uses the "
                "statistics as stored, a BVLC-style writer would divide them by it; cannot tell "
                "which wrote this file")
        return Detected(NVCAFFE_016, True, 1.0 if factor == 0 else None,
                        "NVIDIA Caffe 0.16 BatchNorm (5 blobs: mean, variance, factor, scale, bias)"
                        + (", scale factor 0 read as 1" if factor == 0 else ""))
    raise LayoutError(f"5 BatchNorm blobs of shapes {shapes} for {c} channels fit neither NVIDIA "
                      f"Caffe order: 0.15 [{c}, {c}, {c}, {c}, 1] or 0.16 [{c}, {c}, 1, {c}, {c}]")

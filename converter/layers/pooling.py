"""Pooling with Caffe's output size and border rules (pooling_layer.cpp).

    out = ceil((H + 2p - k) / s) + 1        (round_mode CEIL, the default; FLOOR uses floor)
    floor has three spellings: BVLC master's `round_mode: FLOOR`, NVIDIA Caffe's
    `torch_pooling: true` (declared in 0.16.5-0.17.4 but ignored by NVCaffe's own Pooling;
    TensorRT's Caffe parser reads it as floor, and so does this one) and the forks'
    `ceil_mode: false` (BVLC PR #3057); spellings that set opposite modes are an error.
    if (pad_h or pad_w) and (out - 1)s >= H + p:  out -= 1     (both axes; last window must
                                                                 start inside image + left pad)
    MAX: max of the window clipped to the image (padding never wins)
    AVE: sum of the window clipped to the image, divided by
         (min(hs + k, H + p) - hs) (min(ws + k, W + p) - ws),  hs = i s - p
         (padding counts, the ceil overhang beyond H + p does not)
    STOCHASTIC: pooling_stochastic.py (delegated through POOL_METHODS)

With pad 0 and kernel < stride Caffe's ceil can put the last window wholly outside the image
(pytorch#57178: k1 s2 on 32 gives 17, PyTorch 16). Caffe then outputs -FLT_MAX (MAX) or 0/0
(AVE); here the size is Caffe's, MAX gives -FLT_MAX and AVE gives 0, and the build warns.

Two equivalent computations: PyTorch's own pooling (`ceil_mode`, `count_include_pad=True`) where
its size equals Caffe's and pad <= k/2, else, and always during ONNX export, the explicit
recipe of facts P2: pad p on both sides plus e = max(0, (out - 1)s + k - (H + 2p)) at the end
(value -FLT_MAX for MAX, 0 for AVE), pool without padding or ceil, and for AVE rescale border
windows by k_h k_w / divisor. Exported, that is Pad + MaxPool/AveragePool (+ Mul by a constant),
which every runtime computes the same way. (MAX uses MaxPool's own asymmetric pads (p, p + e)
where they stay below the kernel: padding never wins a max, so that is runtime-independent too,
and it saves a copy of the tensor per pooling; ceil_mode is never used.)
"""
from __future__ import annotations

import logging
import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..registry import Built, LayerContext, layer
from .pooling_explicit import P, OnnxPool, explicit_pool

log = logging.getLogger(__name__)
# Builders of the other pool methods, registered by their own modules (pooling_stochastic.py):
# fn(ctx, kernel or None (global), stride, pad, ceil) -> Built.
POOL_METHODS: dict[int, Callable[..., Built]] = {}


def pooled_size(size: int, kernel: int, stride: int, pad: int, ceil: bool, clip: bool) -> int:
    """Caffe's pooled output size along one axis (`clip`: the layer has any non-zero pad)."""
    span = (size + 2 * pad - kernel) / stride
    out = (math.ceil(span) if ceil else math.floor(span)) + 1
    if clip and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _torch_size(size: int, kernel: int, stride: int, pad: int, ceil: bool) -> int:
    """PyTorch's pooled size (pooling_output_shape), to know when its kernel equals Caffe's."""
    span = size + 2 * pad - kernel + ((stride - 1) if ceil else 0)
    out = span // stride + 1
    if ceil and (out - 1) * stride >= size + pad:
        out -= 1
    return out


class CaffePooling(nn.Module):
    """Caffe's MAX/AVE pooling (formulas in the module docstring)."""

    def __init__(self, method: int, kernel: tuple[int, int] | None, stride: tuple[int, int],
                 pad: tuple[int, int], ceil: bool):
        super().__init__()
        self.method, self.kernel, self.stride, self.pad, self.ceil = method, kernel, stride, pad, ceil
        self.force_explicit = False  # tests use it to check both computations

    def extra_repr(self) -> str:
        kind = "MAX" if self.method == P.MAX else "AVE"
        kernel = "global" if self.kernel is None else f"kernel={self.kernel}"
        return (f"{kind}, {kernel}, stride={self.stride}, pad={self.pad}, "
                f"round={'CEIL' if self.ceil else 'FLOOR'}")

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        kernel = self.kernel or (height, width)
        clip = any(self.pad)
        return tuple(pooled_size(n, k, s, p, self.ceil, clip)
                     for n, k, s, p in zip((height, width), kernel, self.stride, self.pad))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = tuple(int(d) for d in x.shape[-2:])  # static under ONNX tracing: plain ints
        kernel = self.kernel or size
        out = self.output_size(*size)
        native = (not self.force_explicit and not torch.onnx.is_in_onnx_export()
                  and all(2 * p <= k and n + 2 * p >= k and _torch_size(n, k, s, p, self.ceil) == o
                          for n, k, s, p, o in zip(size, kernel, self.stride, self.pad, out)))
        if native:
            if self.method == P.MAX:
                return F.max_pool2d(x, kernel, self.stride, self.pad, ceil_mode=self.ceil)
            return F.avg_pool2d(x, kernel, self.stride, self.pad, ceil_mode=self.ceil,
                                count_include_pad=True)
        end = self._end_pads(size, kernel, out)
        if torch.onnx.is_in_onnx_export():
            if self.method == P.AVE and any(e >= k for e, k in zip(end, kernel)):
                raise ValueError("an AVE pooling whose last window lies wholly outside the input "
                                 "(pad 0, kernel < stride) has no ONNX form (Caffe divides by 0 "
                                 "there); change its kernel, stride or input size")
            return OnnxPool.apply(x, self.method, *kernel, *self.stride, *self.pad, *end)
        return explicit_pool(x, self.method, kernel, self.stride, self.pad, end)

    def _end_pads(self, size, kernel, out) -> tuple[int, int]:
        """e = max(0, (out - 1)s + k - (H + 2p)) per axis: the ceil overhang past the pad."""
        return tuple(max(0, (o - 1) * s + k - (n + 2 * p))
                     for n, k, s, p, o in zip(size, kernel, self.stride, self.pad, out))


def _pair(ctx: LayerContext, p, name: str, default: int | None) -> tuple[int, int] | None:
    h, w = f"{name}_h", f"{name}_w"
    single = "kernel_size" if name == "kernel" else name
    has_single, has_h, has_w = p.HasField(single), p.HasField(h), p.HasField(w)
    ctx.check(not (has_single and (has_h or has_w)),
              f"{single} OR {h} and {w} are allowed, not both")
    ctx.check(has_h == has_w, f"both {h} and {w} are required when either is given")
    if has_h:
        return getattr(p, h), getattr(p, w)
    if has_single or default is None:
        return (getattr(p, single),) * 2
    return (default,) * 2


def _ceil(ctx: LayerContext, p) -> bool:
    """Caffe's ceil rounding unless one of floor's three spellings asks for floor."""
    said = {}
    if p.HasField("round_mode"):
        said[f"round_mode: {P.RoundMode.Name(p.round_mode)}"] = p.round_mode == P.CEIL
    if p.HasField("torch_pooling"):
        said[f"torch_pooling: {str(p.torch_pooling).lower()}"] = not p.torch_pooling
        if p.torch_pooling:
            log.warning("layer '%s' (Pooling): torch_pooling: true read as floor rounding (as "
                        "TensorRT's Caffe parser does); NVIDIA Caffe itself ignores the field "
                        "and rounds up", ctx.layer.name)
    if p.HasField("ceil_mode"):
        said[f"ceil_mode: {str(p.ceil_mode).lower()}"] = p.ceil_mode
    ctx.check(len(set(said.values())) <= 1,
              f"{' and '.join(said)} ask for different rounding; keep one of them")
    return all(said.values())


@layer("Pooling", bottoms=1, tops=1)
def pooling(ctx: LayerContext) -> Built:
    """MAX, AVE, STOCHASTIC, global_pooling; ceil or floor (round_mode/torch_pooling/ceil_mode).

    Floor is round_mode: FLOOR, NVCaffe's torch_pooling: true or the forks' ceil_mode: false."""
    p = ctx.layer.pooling_param
    shape = ctx.bottoms[0]
    ctx.check(len(shape) == 4, f"the bottom must have 4 axes (num, channels, height, width), "
                               f"not shape {list(shape)}")
    ctx.check(p.pool in (P.MAX, P.AVE) or p.pool in POOL_METHODS,
              f"pool: {P.PoolMethod.Name(p.pool)} is not supported")
    if p.global_pooling:
        ctx.check(not (p.HasField("kernel_size") or p.HasField("kernel_h") or
                       p.HasField("kernel_w")), "with global_pooling: true the filter size "
                                                "cannot be specified")
        kernel = None
    else:
        ctx.check(p.HasField("kernel_size") or (p.HasField("kernel_h") and p.HasField("kernel_w")),
                  "kernel_size (or kernel_h and kernel_w) is required")
        kernel = _pair(ctx, p, "kernel", None)
        ctx.check(min(kernel) > 0, f"filter dimensions must be nonzero: {kernel}")
    pad = _pair(ctx, p, "pad", p.pad)
    stride = _pair(ctx, p, "stride", p.stride)
    ctx.check(min(stride) > 0, f"stride must be positive: {stride}")
    if kernel is None:
        ctx.check(pad == (0, 0) and stride == (1, 1),
                  "with global_pooling: true only pad = 0 and stride = 1 are allowed")
    ceil = _ceil(ctx, p)
    if p.pool in POOL_METHODS:
        return POOL_METHODS[p.pool](ctx, kernel, stride, pad, ceil)
    if kernel is not None and any(pad):
        ctx.check(pad[0] < kernel[0] and pad[1] < kernel[1],
                  f"pad {pad} must be smaller than the kernel {kernel}")
    module = CaffePooling(p.pool, kernel, stride, pad, ceil)
    out = module.output_size(*shape[2:])
    ctx.check_size(min(out) > 0, f"the output would be {out[0]}x{out[1]}: the input "
                            f"{shape[2]}x{shape[3]} is smaller than the kernel {kernel}")
    kernel = kernel or tuple(shape[2:])
    for n, k, s, pd, o in zip(shape[2:], kernel, stride, pad, out):
        if (o - 1) * s >= n + pd:
            log.warning("layer '%s' (Pooling): its last window starts outside the input (pad 0, "
                        "kernel %s < stride %s): Caffe outputs -FLT_MAX (MAX) or 0/0 (AVE) there; "
                        "this converter gives -FLT_MAX or 0", ctx.layer.name, k, s)
            break
    return Built(module, tops=((*shape[:2], *out),))

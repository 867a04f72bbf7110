"""Pooling's explicit computation (facts P2) and its ONNX form, used by pooling.py.

Pad p on both sides plus the ceil overhang e = max(0, (out - 1)s + k - (H + 2p)) at the end,
then pool without padding or ceil_mode; AVE border windows are rescaled to Caffe's divisor.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from prototxt import caffe_pb2

P = caffe_pb2.PoolingParameter
FLT_MAX = 3.4028234663852886e38  # Caffe's MAX pooling starts from -FLT_MAX, in float and double


class OnnxPool(torch.autograd.Function):
    """Writes facts P2's recipe as ONNX nodes without ceil_mode. AVE: Pad (constant p, value 0)
    + AveragePool(pads = end overhang e only, count_include_pad = 0). MAX: MaxPool with the
    asymmetric pads (p, p + e), where padding never wins on any runtime, or Pad (-FLT_MAX) +
    MaxPool when p + e reaches the kernel (runtimes refuse pads >= kernel). forward is the
    eager explicit computation."""

    @staticmethod
    def forward(ctx, x, method, kh, kw, sh, sw, ph, pw, eh, ew):
        return explicit_pool(x, method, (kh, kw), (sh, sw), (ph, pw), (eh, ew))

    @staticmethod
    def symbolic(g, x, method, kh, kw, sh, sw, ph, pw, eh, ew):
        attrs = dict(kernel_shape_i=[kh, kw], strides_i=[sh, sw], ceil_mode_i=0)
        if method == P.MAX:
            if ph + eh < kh and pw + ew < kw:
                return g.op("MaxPool", x, pads_i=[ph, pw, ph + eh, pw + ew], **attrs)
            pads = g.op("Constant", value_t=torch.tensor([0, 0, ph, pw, 0, 0, ph + eh, pw + ew]))
            fill = g.op("Constant", value_t=torch.tensor(-FLT_MAX, dtype=torch.float32))
            x = g.op("Pad", x, pads, fill, mode_s="constant")
            return g.op("MaxPool", x, pads_i=[0, 0, 0, 0], **attrs)
        if ph or pw:
            pads = g.op("Constant", value_t=torch.tensor([0, 0, ph, pw, 0, 0, ph, pw]))
            fill = g.op("Constant", value_t=torch.tensor(0.0, dtype=torch.float32))
            x = g.op("Pad", x, pads, fill, mode_s="constant")
        return g.op("AveragePool", x, pads_i=[0, 0, eh, ew], count_include_pad_i=0, **attrs)


def explicit_pool(x: torch.Tensor, method: int, kernel, stride, pad, end) -> torch.Tensor:
    """Pad p (+ the end overhang e), pool without padding or ceil; AVE border windows are
    rescaled by k_h k_w / Caffe's divisor (0 where Caffe divides by <= 0)."""
    (kh, kw), (sh, sw), (ph, pw), (eh, ew) = kernel, stride, pad, end
    if method == P.MAX:
        padded = F.pad(x, (pw, pw + ew, ph, ph + eh), value=-FLT_MAX)
        return F.max_pool2d(padded, (kh, kw), (sh, sw))
    y = F.avg_pool2d(F.pad(x, (pw, pw + ew, ph, ph + eh), value=0.0), (kh, kw), (sh, sw))
    if not (eh or ew):
        return y
    spans = []
    for n, k, s, p, o in zip(map(int, x.shape[-2:]), kernel, stride, pad, map(int, y.shape[-2:])):
        start = torch.arange(o, dtype=torch.float64) * s - p
        spans.append(torch.minimum(start + k, torch.tensor(n + p, dtype=torch.float64)) - start)
    divisor = spans[0][:, None] * spans[1][None, :]
    scale = torch.where(divisor > 0, kh * kw / divisor.clamp(min=1e-30), torch.zeros_like(divisor))
    return y * scale.to(dtype=x.dtype, device=x.device)

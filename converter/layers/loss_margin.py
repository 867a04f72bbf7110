"""HingeLoss and ContrastiveLoss (hinge_loss_layer.cpp, contrastive_loss_layer.cpp).

    HingeLoss        x flattened to N x D, d_ij = -1 at j = y_i, else +1:
                     m_ij = max(0, 1 + d_ij x_ij)
                     L1 (default): loss = sum m / N      gradient d_ij [m_ij > 0] / N
                     L2:           loss = sum m^2 / N    gradient 2 d_ij m_ij / N
    ContrastiveLoss  a, b: N x C (x 1 x 1), s: N (x 1 x 1 x 1), d^2_i = |a_i - b_i|^2,
                     similar pair (int(s_i) != 0): d^2_i, else
                       max(0, margin - d_i)^2        (default)
                       max(0, margin - d^2_i)        (legacy_version: true)
                     loss = sum / (2 N);  margin default 1
                     gradient (Caffe's) for a (b gets its negative): similar (a - b) / N;
                     dissimilar, margin - d > 0: -(margin - d)/(d + 1e-4) (a - b) / N,
                     legacy (margin - d^2 > 0): -(a - b) / N

Autograd gives Caffe's gradient everywhere except ContrastiveLoss's default version, where Caffe
divides by d + 1e-4 instead of d (so that identical dissimilar pairs get no NaN); that gradient
is reproduced (a straight-through d whose derivative is (a - b)/(d + 1e-4)), so it differs from
the finite differences of the forward by that 1e-4. Neither layer reads loss_param: they always
divide by N = bottom 0's num. Labels are truncated to integers; HingeLoss uses the first N
label values. No gradient reaches the labels (Caffe refuses to backpropagate to them). Both
export to ONNX as plain arithmetic (train nets only in practice).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from prototxt import caffe_pb2
from ..registry import Built, LayerContext, layer
from .loss_logistic import legacy_shape

L2 = caffe_pb2.HingeLossParameter.L2


class HingeLoss(nn.Module):
    """One-vs-all hinge loss, L1 or L2 (formulas in the module docstring)."""

    def __init__(self, squared: bool):
        super().__init__()
        self.squared = squared

    def extra_repr(self) -> str:
        return f"norm={'L2' if self.squared else 'L1'}"

    def forward(self, x: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        flat = x.reshape(n, -1)
        index = label.detach().reshape(-1)[:n].to(torch.int64)
        is_label = torch.arange(flat.shape[1], device=x.device)[None, :] == index[:, None]
        margin = F.relu(1 + torch.where(is_label, -flat, flat))
        return (margin * margin if self.squared else margin).sum() / n


class ContrastiveLoss(nn.Module):
    """Hadsell et al.'s contrastive loss as Caffe computes it (module docstring)."""

    def __init__(self, margin: float, legacy: bool):
        super().__init__()
        self.margin, self.legacy = margin, legacy

    def extra_repr(self) -> str:
        return f"margin={self.margin}, legacy_version={self.legacy}"

    def forward(self, a: torch.Tensor, b: torch.Tensor, similar: torch.Tensor) -> torch.Tensor:
        n = a.shape[0]
        diff = (a - b.reshape(a.shape)).reshape(n, -1)
        dist_sq = (diff * diff).sum(1)
        same = similar.detach().reshape(-1)[:n].to(torch.int64) != 0
        if self.legacy:
            apart = F.relu(self.margin - dist_sq)
        else:
            dist = dist_sq.detach().sqrt()
            # value d, derivative (a - b) / (d + 1e-4): Caffe's backward
            slope = (diff * diff.detach()).sum(1) / (dist + 1e-4)
            apart = F.relu(self.margin - (dist + slope - slope.detach())).pow(2)
        return torch.where(same, dist_sq, apart).sum() / n / 2


def _same_first(ctx: LayerContext) -> None:
    a, b = ctx.bottoms[:2]
    ctx.check(len(a) >= 1 and len(b) >= 1 and a[0] == b[0], f"bottoms 0 {list(a)} and 1 "
              f"{list(b)} must have the same first dimension")


@layer("HingeLoss", bottoms=2, tops=1, loss=True)
def hinge_loss(ctx: LayerContext) -> Built:
    """One-vs-all hinge loss of scores and labels, norm L1 (default) or L2, / N."""
    _same_first(ctx)
    ctx.check(math.prod(ctx.bottoms[1]) >= ctx.bottoms[0][0],
              f"the label {list(ctx.bottoms[1])} needs one value per item")
    return Built(HingeLoss(ctx.layer.hinge_loss_param.norm == L2))


@layer("ContrastiveLoss", bottoms=3, tops=1, loss=True)
def contrastive_loss(ctx: LayerContext) -> Built:
    """Siamese pair loss with margin and legacy_version, / 2N."""
    _same_first(ctx)
    a = legacy_shape(ctx, ctx.bottoms[0], "bottom 0")
    b = legacy_shape(ctx, ctx.bottoms[1], "bottom 1")
    s = legacy_shape(ctx, ctx.bottoms[2], "the similarity bottom")
    ctx.check(a[1] == b[1] and a[2:] == b[2:] == (1, 1), f"bottoms 0 and 1 must be N x C x 1 x 1 "
              f"with the same C: {list(ctx.bottoms[0])} and {list(ctx.bottoms[1])}")
    ctx.check(s[1:] == (1, 1, 1) and s[0] >= a[0], f"the similarity bottom must be N x 1 x 1 x 1 "
              f"(N = {a[0]}), not {list(ctx.bottoms[2])}")
    p = ctx.layer.contrastive_loss_param
    return Built(ContrastiveLoss(p.margin, p.legacy_version))

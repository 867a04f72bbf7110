"""Dropout (dropout_layer.cpp): in TRAIN each value is kept with probability 1 - p and scaled by
1 / (1 - p) ("inverted" dropout, as torch's nn.Dropout); in TEST it is the identity. The model's
train() / eval() is Caffe's TRAIN / TEST phase.
"""
from __future__ import annotations

from torch import nn

from ..registry import Built, LayerContext, layer


@layer("Dropout", bottoms=1, tops=1, in_place=True)
def dropout(ctx: LayerContext) -> Built:
    """Dropout with dropout_ratio; scales kept units by 1/(1 - p) at train time."""
    ratio = ctx.layer.dropout_param.dropout_ratio
    ctx.check(0.0 <= ratio < 1.0, f"dropout_ratio must be in [0, 1), not {ratio}")
    return Built(nn.Dropout(ratio))

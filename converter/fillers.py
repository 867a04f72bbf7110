"""Caffe's fillers (include/caffe/filler.hpp), by the `type` string of a FillerParameter.

With `count` the number of values, `num = shape[0]`, fan_in = count / shape[0] and
fan_out = count / shape[1] (count for a 1-axis blob):

| type | values |
|---|---|
| constant | `value` (schema default 0: an unset weight_filler gives zeros, as in Caffe) |
| uniform | U(`min`, `max`) |
| gaussian | N(`mean`, `std`); with `sparse` >= 0 each value is kept with probability sparse / num, else 0 |
| positive_unitball | U(0, 1), then each of the `num` rows divided by its sum |
| xavier | U(-a, a), a = sqrt(3 / n) |
| msra | N(0, sqrt(2 / n)) |
| bilinear | 4-axis square kernels: (1 - abs(x/f - c)) (1 - abs(y/f - c)), f = ceil(K/2), c = (K - 1) / (2f) |

n for xavier and msra follows `variance_norm`: FAN_IN (default) fan_in, FAN_OUT fan_out,
AVERAGE (fan_in + fan_out) / 2. PyTorch's xavier_uniform_ is Caffe's AVERAGE, not its default.
`sparse` is only valid for gaussian (Caffe: "Sparsity not supported by this Filler").
Random numbers come from a torch.Generator, so a seed reproduces a fill; the streams are not
Caffe's (Boost) streams, the distributions are the same. bilinear uses BVLC master's centre
c = (K - 1) / (2f) (older Caffe had (2f - 1 - f % 2) / (2f), equal for the usual K = 2s - s % 2).
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from prototxt import caffe_pb2
from .errors import ConverterError

FillerParameter = caffe_pb2.FillerParameter
FILLERS: dict[str, Callable[[torch.Tensor, FillerParameter, torch.Generator | None], None]] = {}


def filler(name: str) -> Callable:
    def register(fn):
        FILLERS[name] = fn
        return fn
    return register


def constant_filler(value: float) -> FillerParameter:
    return FillerParameter(type="constant", value=value)


def fill(blob: torch.Tensor, param: FillerParameter, generator: torch.Generator | None = None,
         where: str = "") -> torch.Tensor:
    """Fill `blob` in place as Caffe's filler `param.type` would; `where` names it in errors."""
    fn = FILLERS.get(param.type)
    if fn is None:
        raise ConverterError(f"{where}unknown filler type {param.type!r}; known: "
                             f"{', '.join(sorted(FILLERS))}")
    if blob.numel() == 0:
        raise ConverterError(f"{where}cannot fill an empty blob of shape {list(blob.shape)}")
    if param.sparse != -1 and param.type != "gaussian":
        raise ConverterError(f"{where}sparsity is only supported by the gaussian filler "
                             f"(filler {param.type!r} has sparse: {param.sparse})")
    with torch.no_grad():
        fn(blob, param, generator)
    return blob


def fans(shape: tuple[int, ...]) -> tuple[int, int]:
    """Caffe's (fan_in, fan_out): count / shape[0] and count / shape[1] (count if 1 axis)."""
    count = math.prod(shape)
    num = shape[0] if shape else 1
    return count // num, count // shape[1] if len(shape) > 1 else count


def _n(shape: tuple[int, ...], param: FillerParameter) -> float:
    fan_in, fan_out = fans(shape)
    if param.variance_norm == FillerParameter.AVERAGE:
        return (fan_in + fan_out) / 2.0
    if param.variance_norm == FillerParameter.FAN_OUT:
        return float(fan_out)
    return float(fan_in)


@filler("constant")
def _constant(blob, param, generator):
    blob.fill_(param.value)


@filler("uniform")
def _uniform(blob, param, generator):
    blob.uniform_(param.min, param.max, generator=generator)


@filler("gaussian")
def _gaussian(blob, param, generator):
    blob.normal_(param.mean, param.std, generator=generator)
    if param.sparse < -1:
        raise ConverterError(f"gaussian filler: sparse must be >= -1, not {param.sparse}")
    if param.sparse >= 0:
        num_outputs = blob.shape[0] if blob.dim() else 1
        probability = torch.full_like(blob, min(1.0, param.sparse / num_outputs))
        blob.mul_(torch.bernoulli(probability, generator=generator))


@filler("positive_unitball")
def _positive_unitball(blob, param, generator):
    blob.uniform_(0, 1, generator=generator)
    rows = blob.view(blob.shape[0] if blob.dim() else 1, -1)
    rows.div_(rows.sum(dim=1, keepdim=True))


@filler("xavier")
def _xavier(blob, param, generator):
    scale = math.sqrt(3.0 / _n(tuple(blob.shape), param))
    blob.uniform_(-scale, scale, generator=generator)


@filler("msra")
def _msra(blob, param, generator):
    blob.normal_(0.0, math.sqrt(2.0 / _n(tuple(blob.shape), param)), generator=generator)


@filler("bilinear")
def _bilinear(blob, param, generator):
    if blob.dim() != 4 or blob.shape[2] != blob.shape[3]:
        raise ConverterError(f"the bilinear filler needs a 4-axis blob with square kernels, "
                             f"not {list(blob.shape)}")
    size = blob.shape[3]
    f = math.ceil(size / 2.0)
    c = (size - 1) / (2.0 * f)
    x = torch.arange(size, dtype=torch.float64)
    ramp = 1 - torch.abs(x / f - c)
    blob.copy_((ramp[:, None] * ramp[None, :]).expand_as(blob))

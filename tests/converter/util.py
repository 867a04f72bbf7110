"""Helpers for the converter tests: one-layer nets, float64 runs, gradient checks."""
from __future__ import annotations

import numpy as np
import torch
from google.protobuf import text_format

from converter import build_model
from prototxt import caffe_pb2


def parse_net(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def layer_net(layer: str, shapes: dict[str, tuple[int, ...]], tops: tuple[str, ...] = ("y",),
              name: str = "l") -> caffe_pb2.NetParameter:
    """Net inputs `shapes` (in order) feeding one layer; `layer` is the inside of layer { }
    without name/bottom/top."""
    inputs = "".join(f'input: "{n}" input_shape {{ {" ".join(f"dim: {d}" for d in s)} }}\n'
                     for n, s in shapes.items())
    bottoms = " ".join(f'bottom: "{n}"' for n in shapes)
    top_text = " ".join(f'top: "{t}"' for t in tops)
    return parse_net(f'{inputs}layer {{ name: "{name}" {bottoms} {top_text} {layer} }}')


def build_layer(layer: str, shapes: dict[str, tuple[int, ...]], tops=("y",), phase="TEST",
                seed: int = 0, double: bool = True):
    model = build_model(layer_net(layer, shapes, tops), phase, seed=seed)
    return model.double() if double else model


def run(model, *arrays: np.ndarray, top: str = "y") -> np.ndarray:
    with torch.no_grad():
        out = model(*(torch.from_numpy(np.asarray(a)) for a in arrays), keep="all")
    return out[top].numpy()


def gradcheck(model, *arrays: np.ndarray, top: str = "y", wrt: tuple[int, ...] | None = None,
              eps: float = 1e-6, atol: float = 1e-6, params: bool = True,
              fast: bool = True) -> bool:
    """Finite differences vs autograd (Caffe's GradientChecker idea) for the inputs `wrt` and,
    with `params`, every learnable blob."""
    tensors = [torch.from_numpy(np.asarray(a, dtype=np.float64)).clone() for a in arrays]
    wrt = tuple(range(len(tensors))) if wrt is None else wrt
    names = [n for n, p in model.named_parameters()] if params else []
    current = dict(model.named_parameters())

    def f(*xs):
        inputs = list(tensors)
        for i, x in zip(wrt, xs):
            inputs[i] = x
        state = dict(zip(names, xs[len(wrt):]))
        out = torch.func.functional_call(model, state, tuple(inputs), {"keep": "all"},
                                         strict=False)
        return out[top]

    values = [tensors[i].requires_grad_(True) for i in wrt]
    values += [current[n].detach().clone().requires_grad_(True) for n in names]
    return torch.autograd.gradcheck(f, values, eps=eps, atol=atol, fast_mode=fast)


def rng(seed: int = 20190317) -> np.random.Generator:
    return np.random.default_rng(seed)

"""Exceptions of the converter package.

`ConverterError` is a `PrototxtError` (so every command line prints it as one clear line) that
also names the layer and its type: "deploy.prototxt: layer 'pool5' (Pooling): ...".
"""
from __future__ import annotations

from pathlib import Path

from prototxt.errors import PrototxtError


class ConverterError(PrototxtError):
    """A net could not be built, run, loaded, saved or exported.

    `layer` and `layer_type` say which layer, when one is to blame; `path` is the net's file
    (or `<net NAME>` when the net was built in memory).
    """

    def __init__(self, message: str, path: str | Path | None = None, layer: str | None = None,
                 layer_type: str | None = None, **where):
        self.layer = layer
        self.layer_type = layer_type
        if layer is not None:
            kind = f" ({layer_type})" if layer_type else ""
            message = f"layer '{layer}'{kind}: {message}"
        super().__init__(message, path, field=layer, **where)


class ShapeError(ConverterError):
    """A blob size became zero or negative: the input is too small for the net (or a layer's
    parameters do not fit its input). `smallest` is set by shape inference when a larger input
    of the same kind works."""
    smallest: tuple[int, ...] | None = None

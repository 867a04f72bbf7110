"""docs/supported_layers.md, generated from the layer registry and the filler table.

    python -m converter layers            # print it
    python -m converter layers --write    # rewrite docs/supported_layers.md
    python -m converter layers --check    # exit 1 if the file is stale (a test does this too)
"""
from __future__ import annotations

from pathlib import Path

from . import layers as _layers  # noqa: F401  (fills the registry)
from .fillers import FILLERS
from .registry import REGISTRY, LayerSpec

DOC_PATH = Path(__file__).resolve().parent.parent / "docs" / "supported_layers.md"

HEADER = """\
# Layers the converter supports

Generated from the layer registry by `python -m converter layers --write`; a test keeps this file
in sync with `converter/registry.py`. Each builder declares its blob counts once; the graph
builder checks them, in-place use and loss weights for every layer. The formulas (and where
Caffe differs from PyTorch) are in each family's module docstring.

Data layers become model inputs (their image size, when the database holds it, comes from
`input_shapes=` / `--input`). "Loss" layers have loss weight 1 on their first top unless
`loss_weight` says otherwise; any layer's tops can carry a `loss_weight`.

The **train** and **ONNX** columns come from each builder's `gradient` and `onnx` flags
(`converter/registry.py`); `tests/converter/test_layer_flags.py` checks them on a one-layer net
of every type.

- train: *yes* = Caffe's TRAIN-phase forward and its Backward (gradients to the bottoms, learned
  blobs; each family's tests compare them with Caffe's code or finite differences). *no
  gradient* = Caffe's Backward is NOT_IMPLEMENTED: the tops carry no gradient, so the layer
  belongs beside the loss, not below it (as in Caffe). *input* = a data layer:
  `python -m trainer run` feeds Data layers from their LMDB and DummyData layers from their
  fillers at every iteration, and refuses Input, ImageData and MemoryData.
- ONNX: *yes* = exports to standard ONNX ops (PyTorch vs ONNX Runtime tested); *input* = becomes
  a graph input. Losses and Accuracy export too, with their labels as graph inputs, but
  `python -m converter onnx` exports deploy nets (one image input, the Softmax output), which
  have none.

| Caffe type | bottoms | tops | in place | kind | train | ONNX | what | module |
|---|---|---|---|---|---|---|---|---|
"""

FOOTER = """
## Fillers

{fillers}: see `converter/fillers.py` for the formulas (Caffe's filler.hpp).

## Not supported (an error names the layer, its type and the file)

Convolution with `axis` other than 1 or more than 3 spatial axes; any type not in the table
above: of BVLC Caffe 1.0's, Python, HDF5Data, HDF5Output, WindowData, Im2col and the recurrent
layers (RNN, LSTM, LSTMUnit); DetectNet's and other forks' layers not listed. ONNX export also
refuses an AVE pooling whose last window lies wholly outside the input (pad 0, kernel < stride:
Caffe divides by 0 there).
"""


def _kind(spec: LayerSpec) -> str:
    return "data (input)" if spec.data else "loss" if spec.loss else ""


def _train(spec: LayerSpec) -> str:
    return "input" if spec.data else "yes" if spec.gradient else "no gradient"


def _onnx(spec: LayerSpec) -> str:
    return "input" if spec.data else "yes" if spec.onnx else "no"


def render() -> str:
    rows = []
    for name in sorted(REGISTRY, key=str.lower):
        spec = REGISTRY[name]
        module = spec.build.__module__.replace(".", "/") + ".py"
        rows.append(f"| {name} | {spec.describe(spec.bottoms)} | {spec.describe(spec.tops)} | "
                    f"{'yes' if spec.in_place else ''} | {_kind(spec)} | {_train(spec)} | {_onnx(spec)} | "
                    f"{spec.summary} | "
                    f"`{module}` |")
    fillers = ", ".join(f"`{n}`" for n in FILLERS)
    return HEADER + "\n".join(rows) + "\n" + FOOTER.format(fillers=fillers)

"""ONNX export of one blob of a CaffeNet with any number of inputs (labels, selectors, indices),
run in ONNX Runtime: export_onnx itself takes nets with one image input only."""
from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import torch

from converter.onnx_export import MIN_OPSET, ort_session


class _Top(torch.nn.Module):
    def __init__(self, model, names, top):
        super().__init__()
        self.model, self.names, self.top = model, names, top

    def forward(self, *xs):
        return self.model(**dict(zip(self.names, xs)), keep=[self.top])[self.top]


def ort_vs_torch(model, inputs: dict[str, np.ndarray], top: str = "y",
                 dynamic: tuple[str, ...] = ()) -> tuple[np.ndarray, np.ndarray, onnx.ModelProto]:
    """(PyTorch's value, ONNX Runtime's value, the checked ONNX model) of blob `top` in float32;
    `dynamic` names inputs whose axis 0 is dynamic."""
    model = model.float().eval()
    names = list(inputs)
    arrays = [np.ascontiguousarray(inputs[n], dtype=np.float32) for n in names]
    tensors = tuple(torch.from_numpy(a) for a in arrays)
    wrapper = _Top(model, names, top).eval()  # a new module is in training mode
    buffer = io.BytesIO()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        ours = wrapper(*tensors).numpy()
        torch.onnx.export(wrapper, tensors, buffer, dynamo=False,
                          opset_version=MIN_OPSET, input_names=names, output_names=[top],
                          dynamic_axes={n: {0: "n"} for n in dynamic} or None)
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.checker.check_model(proto, full_check=True)
    session = ort_session(buffer.getvalue())
    feed = {i.name: arrays[names.index(i.name)] for i in session.get_inputs()}
    (theirs,) = session.run(None, feed)
    return ours, theirs, proto


def op_types(proto: onnx.ModelProto) -> set[str]:
    return {node.op_type for node in proto.graph.node}

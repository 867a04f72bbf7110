"""A tiny ONNX classifier written with onnx.helper, with any metadata_props: for tests that
need a model file quickly (hostile metadata, server limits) rather than a trained LeNet."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def tiny_onnx(path: Path, meta: dict[str, str] | None = None, channels: int = 1, size: int = 28,
              classes: int = 10, seed: int = 0) -> Path:
    """N x C x size x size -> global average pool -> C x classes weights -> softmax."""
    rng = np.random.default_rng(seed)
    weights = numpy_helper.from_array(rng.standard_normal((channels, classes)).astype(np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["data"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("MatMul", ["flat", "w"], ["scores"]),
         helper.make_node("Softmax", ["scores"], ["prob"], axis=1)],
        "tiny",
        [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", channels, size, size])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, ["N", classes])],
        [weights])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    for key, value in (meta or {}).items():
        model.metadata_props.add(key=key, value=value)
    onnx.save(model, path)
    return path

"""inference.cuda_graph without onnxruntime's CUDA provider: a clear error, not a CPU session."""
from __future__ import annotations

import onnxruntime
import pytest

from inference.cuda_graph import GraphRunner
from inference.errors import InferenceError


def test_a_build_without_cuda_is_refused_by_name(monkeypatch):
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    with pytest.raises(InferenceError, match="CUDA graphs need onnxruntime-gpu"):
        GraphRunner(b"not even a model", 1, where="m.onnx")

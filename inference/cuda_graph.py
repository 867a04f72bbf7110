"""ONNX Runtime on CUDA with the whole model replayed as one CUDA graph, for one fixed batch size.

Why: GoogLeNet at batch 1 took 2.36 ms per run on an H100 through a plain CUDA session
(benchmarks/results/gpu/2026-11-27-h100), most of it the host launching ~150 kernels one by one.
ONNX Runtime's CUDA provider can capture the first run into a CUDA graph and replay it
(`enable_cuda_graph`); that needs every input and output bound to a fixed device buffer, so a
`GraphRunner` owns one input and one output buffer of its batch size:

    run(x):  copy x (host) into the bound input buffer -> replay the graph -> copy the output
             buffer to the host

cuDNN's exhaustive algorithm search pays off here (one shape, searched once) and TF32 stays off
(Caffe's float32, as for the plain session). A model any of whose nodes fall back to the CPU
cannot be captured: the constructor's first run fails and says so.
"""
from __future__ import annotations

import numpy as np

from .errors import InferenceError
from .providers import PROVIDERS, _preload_cuda_libraries, session_options


class GraphRunner:
    """`runner.run(x) -> outputs` for x of shape (batch, *input_shape), replayed as a CUDA graph."""

    def __init__(self, model: bytes, batch: int, output: str | None = None, device_id: int = 0,
                 where: str | None = None, options: dict[str, str] | None = None):
        """`options`: more CUDA provider options, over the defaults (benchmarks/gpu/
        ort_variants.py measures e.g. {"prefer_nhwc": "1"} or {"use_tf32": "1"})."""
        import onnxruntime as ort
        if PROVIDERS["cuda"] not in ort.get_available_providers():
            raise InferenceError("CUDA graphs need onnxruntime-gpu (no CUDAExecutionProvider "
                                 "in this build)", where)
        _preload_cuda_libraries(ort)
        chosen = {"device_id": str(device_id), "enable_cuda_graph": "1", "use_tf32": "0",
                  "cudnn_conv_algo_search": "EXHAUSTIVE", **(options or {})}
        try:
            self.session = ort.InferenceSession(model, session_options(),
                                                providers=[(PROVIDERS["cuda"], chosen)])
        except Exception as exc:  # ORT's own exception types
            raise InferenceError(f"CUDA graph session: {exc}", where) from None
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.output_name = output or self.session.get_outputs()[-1].name
        shape = (batch, *first.shape[1:])
        if not all(isinstance(d, int) for d in shape):
            raise InferenceError(f"the input shape {first.shape} must be fixed but for the batch",
                                 where)
        self.shape = shape
        self.input = ort.OrtValue.ortvalue_from_numpy(np.zeros(shape, np.float32), "cuda",
                                                      device_id)
        out = next(o for o in self.session.get_outputs() if o.name == self.output_name)
        out_shape = (batch, *out.shape[1:])
        if not all(isinstance(d, int) for d in out_shape):
            raise InferenceError(f"the output shape {out.shape} must be fixed but for the batch",
                                 where)
        self.output = ort.OrtValue.ortvalue_from_numpy(np.zeros(out_shape, np.float32), "cuda",
                                                       device_id)
        self.binding = self.session.io_binding()
        self.binding.bind_ortvalue_input(self.input_name, self.input)
        self.binding.bind_ortvalue_output(self.output_name, self.output)
        try:
            self.run(np.zeros(shape, np.float32))  # the capture
        except Exception as exc:
            raise InferenceError(f"the model could not be captured as a CUDA graph: {exc}",
                                 where) from None

    def run(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != self.shape:
            raise InferenceError(f"this graph runs {list(self.shape)} inputs, not {list(x.shape)}")
        self.input.update_inplace(x)
        self.session.run_with_iobinding(self.binding)
        return self.output.numpy()

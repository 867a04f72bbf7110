"""What this Python sees: package versions, ONNX Runtime's providers, the GPU and the machine.

    python benchmarks/gpu/probe.py [imports] [ort] [facts]      # one JSON object on stdout

run.py calls it in a child process (after installing the wheels and setting PYTHONPATH), so
that what it reports is what the measured commands will get. Every part catches its own errors
and reports them as text: a probe never fails because something is missing.
"""
from __future__ import annotations

import importlib
import json
import os
import platform
import re
import shutil
import sys
import traceback
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

ANSI = re.compile(r"\x1b\[[0-9;]*m")
MODULES = ("torch", "numpy", "onnx", "onnxruntime", "google.protobuf", "lmdb", "PIL", "cv2",
           "tqdm", "matplotlib")


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".strip()[:500]


def imports() -> dict:
    """Version (and file) of each third-party module, then whether our packages import."""
    found: dict = {}
    for name in MODULES:
        try:
            module = importlib.import_module(name)
            found[name] = {"version": str(getattr(module, "__version__", "?")),
                           "file": str(getattr(module, "__file__", ""))}
        except Exception as exc:
            found[name] = {"error": _error(exc)}
    for name in ("prototxt.caffe_pb2", "lmdb_builder", "converter", "trainer", "inference"):
        try:
            importlib.import_module(name)
            found[name] = {"ok": True}
        except Exception as exc:
            found[name] = {"ok": False, "error": _error(exc)}
    return found


def _tiny_model() -> bytes:
    """A 3x3 convolution and a ReLU on 1x3x8x8: enough to make a provider load cuDNN."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.full((4, 3, 3, 3), 0.1, np.float32), "w")
    graph = helper.make_graph(
        [helper.make_node("Conv", ["data", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["out"])],
        "probe", [helper.make_tensor_value_info("data", TensorProto.FLOAT, ["N", 3, 8, 8])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, ["N", 4, 8, 8])], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def ort() -> dict:
    """onnxruntime's build and which GPU providers really run a model (inference.providers)."""
    try:
        import onnxruntime
    except Exception as exc:
        return {"error": _error(exc)}
    found: dict = {"version": onnxruntime.__version__, "file": onnxruntime.__file__,
                   "device": onnxruntime.get_device(),
                   "available_providers": onnxruntime.get_available_providers(),
                   "ld_library_path": os.environ.get("LD_LIBRARY_PATH", "")}
    try:
        from inference.providers import open_session
        model = _tiny_model()
    except Exception as exc:
        found["error"] = _error(exc)
        return found
    for name in ("cuda", "tensorrt"):
        try:
            session = open_session(model, name)
            found[name] = {"ok": True, "providers": list(session.session.get_providers())}
        except Exception as exc:
            # open_session keeps ORT's C++ log quiet; ask once more with the log on, for the why
            found[name] = {"ok": False, "error": _error(exc), "ort_log": _raw_attempt(model, name)}
    if not found["cuda"]["ok"] and hasattr(onnxruntime, "preload_dlls"):
        # the CUDA/cuDNN libraries of the nvidia-* wheels (torch's), loaded by ORT itself
        with _CaptureFds() as captured:
            try:
                onnxruntime.preload_dlls()
                open_session(model, "cuda")
                result = {"ok": True}
            except Exception as exc:
                result = {"ok": False, "error": _error(exc)}
        result["log"] = [line.strip() for line in captured.text.splitlines() if line.strip()][:8]
        found["cuda_after_preload_dlls"] = result
    return found


class _CaptureFds:
    """Collect what C++ code and Python print on file descriptors 1 and 2 (ORT logs there)."""

    def __enter__(self):
        import tempfile
        self.file = tempfile.TemporaryFile(mode="w+b")
        sys.stdout.flush()
        sys.stderr.flush()
        self.saved = [os.dup(1), os.dup(2)]
        os.dup2(self.file.fileno(), 1)
        os.dup2(self.file.fileno(), 2)
        return self

    def __exit__(self, *exc) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, saved in zip((1, 2), self.saved):
            os.dup2(saved, fd)
            os.close(saved)
        self.file.seek(0)
        self.text = ANSI.sub("", self.file.read().decode(errors="replace"))
        self.file.close()


def _raw_attempt(model: bytes, name: str) -> list[str]:
    """ORT's own log lines (warnings and errors) from one session on provider `name`."""
    import onnxruntime
    from inference.providers import PROVIDERS
    with _CaptureFds() as captured:
        try:
            onnxruntime.set_default_logger_severity(1)
            session = onnxruntime.InferenceSession(model, providers=[PROVIDERS[name],
                                                                     "CPUExecutionProvider"])
            used = session.get_providers()
        except Exception as exc:
            used = [_error(exc)]
        finally:
            onnxruntime.set_default_logger_severity(3)
    lines = [line.strip() for line in captured.text.splitlines()
             if any(w in line.lower() for w in ("error", "fail", "cannot", "not found", "missing"))]
    return lines[:6] + [f"session providers: {used}"]


def facts() -> dict:
    """The machine: torch, CUDA, the GPUs, cores, /dev/shm, trainer.device.machine_description()."""
    found: dict = {"python": platform.python_version(), "platform": platform.platform(),
                   "cpu_count": os.cpu_count(),
                   "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else os.cpu_count()}
    for name, path in (("dev_shm", "/dev/shm"), ("tmp", "/tmp")):
        try:
            usage = shutil.disk_usage(path)
            found[f"{name}_bytes"] = {"total": usage.total, "free": usage.free}
        except OSError as exc:
            found[f"{name}_bytes"] = {"error": _error(exc)}
    try:
        import torch
        found["torch"] = torch.__version__
        found["torch_cuda"] = torch.version.cuda
        found["cuda_available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            found["cudnn"] = torch.backends.cudnn.version()
            found["gpus"] = []
            for i in range(torch.cuda.device_count()):
                props = torch.cuda.get_device_properties(i)
                found["gpus"].append({"name": props.name, "memory_bytes": props.total_memory,
                                      "capability": f"{props.major}.{props.minor}",
                                      "multiprocessors": props.multi_processor_count})
            found["bf16"] = torch.cuda.is_bf16_supported()
    except Exception as exc:
        found["torch_error"] = _error(exc)
    try:
        from trainer.device import machine_description
        found["machine_description"] = machine_description()
    except Exception as exc:
        found["machine_description"] = {"error": _error(exc)}
    return found


PARTS = {"imports": imports, "ort": ort, "facts": facts}


def main(argv: list[str]) -> int:
    names = argv or list(PARTS)
    unknown = [n for n in names if n not in PARTS]
    if unknown:
        print(f"error: unknown part(s) {', '.join(unknown)}; use {', '.join(PARTS)}", file=sys.stderr)
        return 2
    out = {}
    for name in names:
        try:
            out[name] = PARTS[name]()
        except Exception:  # a probe reports, it does not fail
            out[name] = {"error": traceback.format_exc(limit=3)[-800:]}
    print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""ONNX Runtime sessions on the best execution provider that actually works here.

onnxruntime-gpu lists the TensorRT and CUDA providers on every machine, and a session asked for
one that cannot load (no GPU, no libcudnn or libnvinfer) silently falls back to CPU after
printing a page of errors. So each candidate is tried quietly, kept only when the session really
runs on it *and* a first inference succeeds, and the choice is reported by `Session.provider`.
Order: TensorRT, CUDA (only where an NVIDIA device node exists), then CPU.

TensorRT builds an engine per input shape; an optimisation profile from batch 1 to `max_batch`
lets one engine serve every batch size, and the engine cache (under ~/.cache/redigits/tensorrt)
saves the build on the next start.
"""
from __future__ import annotations

import contextlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .errors import InferenceError

if TYPE_CHECKING:
    import onnxruntime

PROVIDERS = {"tensorrt": "TensorrtExecutionProvider", "cuda": "CUDAExecutionProvider",
             "cpu": "CPUExecutionProvider"}


def gpu_present() -> bool:
    """An NVIDIA device node (Linux) or WSL's GPU node exists."""
    return any(Path(p).exists() for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg"))


def _cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "redigits" / "tensorrt"


def _options(name: str, input_name: str, shape: tuple[int, ...], max_batch: int) -> dict:
    if name == "tensorrt":
        chw = "x".join(map(str, shape[1:]))
        cache = _cache_dir()
        cache.mkdir(parents=True, exist_ok=True)
        return {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache),
                "trt_profile_min_shapes": f"{input_name}:1x{chw}",
                "trt_profile_opt_shapes": f"{input_name}:{max_batch}x{chw}",
                "trt_profile_max_shapes": f"{input_name}:{max_batch}x{chw}"}
    if name == "cuda":
        # the exhaustive cuDNN search re-runs for every new batch size; a server sees many.
        # TF32 (on by default in ORT's CUDA provider) keeps 10 mantissa bits: outputs moved by
        # ~5e-4 of their scale against the CPU's float32, the Caffe numerics we promise.
        return {"cudnn_conv_algo_search": "HEURISTIC", "use_tf32": "0"}
    return {}


@dataclass
class Session:
    session: object          # onnxruntime.InferenceSession
    provider: str            # "tensorrt", "cuda" or "cpu"
    tried: dict[str, str]    # provider -> why it was not used


def session_options(threads: int | None = None, spin: bool = True) -> "onnxruntime.SessionOptions":
    import onnxruntime as ort
    options = ort.SessionOptions()
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    if not spin:
        # spinning worker threads steal the CPU from request handling in a server
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _try(model: bytes, name: str, options, base, max_batch: int) -> tuple[object | None, str]:
    """A session on provider `name` that ran one batch, or None and why not. `base` is the
    model's CPU session (it names the input)."""
    import onnxruntime as ort
    if PROVIDERS[name] not in ort.get_available_providers():
        return None, "not in this onnxruntime build"
    first = base.get_inputs()[0]
    shape = (1, *first.shape[1:])
    chatter = io.StringIO()
    ort.set_default_logger_severity(4)  # the provider libraries log load failures at ERROR
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            if name == "cpu":
                session = base
            else:
                _preload_cuda_libraries(ort)
                session = ort.InferenceSession(
                    model, options, providers=[(PROVIDERS[name], _options(name, first.name, shape,
                                                                          max_batch)),
                                               "CPUExecutionProvider"])
            if session.get_providers()[0] != PROVIDERS[name]:
                return None, _reason(chatter.getvalue()) or "the provider did not load"
            session.run(None, {first.name: np.zeros(shape, np.float32)})
    except Exception as exc:  # ORT raises its own types (Fail, InvalidGraph, RuntimeException)
        return None, _reason(chatter.getvalue()) or f"{type(exc).__name__}: {exc}"
    finally:
        ort.set_default_logger_severity(3)
    return session, ""


_PRELOADED: list[bool] = []


def _preload_cuda_libraries(ort) -> None:
    """Let the GPU providers find CUDA, cuBLAS and cuDNN where pip put them (the nvidia-*
    packages that a CUDA build of torch brings), not only on the system's library path:
    onnxruntime's own `preload_dlls`, once per process; its complaints are ignored."""
    if _PRELOADED or not hasattr(ort, "preload_dlls"):
        return
    _PRELOADED.append(True)
    try:
        ort.preload_dlls()
    except Exception:  # noqa: BLE001 - a library that is missing is reported by the session
        pass


def _reason(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if "rror" in line and line.strip()]
    return lines[0][:300] if lines else ""


def open_session(model: bytes, provider: str | None = None, threads: int | None = None,
                 max_batch: int = 64, spin: bool = True, where: str | None = None) -> Session:
    """A session on `provider` ("tensorrt", "cuda", "cpu"), or the best that works when None."""
    if provider is not None and provider not in PROVIDERS:
        raise InferenceError(f"unknown provider {provider!r}; use one of {', '.join(PROVIDERS)}")
    if provider is None:
        candidates = (["tensorrt", "cuda"] if gpu_present() else []) + ["cpu"]
    else:
        candidates = [provider]
    import onnxruntime as ort
    ort.set_default_logger_severity(3)
    options = session_options(threads, spin)
    try:
        base = ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise InferenceError(f"not a model ONNX Runtime can load: {exc}", where) from None
    tried: dict[str, str] = {}
    for name in candidates:
        session, why = _try(model, name, options, base, max_batch)
        if session is not None:
            return Session(session, name, tried)
        tried[name] = why
    detail = "; ".join(f"{k}: {v}" for k, v in tried.items())
    hint = " (try --provider cpu)" if provider not in (None, "cpu") else ""
    raise InferenceError(f"no ONNX Runtime provider could run the model: {detail}{hint}", where)

"""benchmarks/gpu/ort_variants.py on a machine without a GPU: what CI can check of it (the GPU
side is tests/inference/test_gpu.py's)."""
from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from benchmarks.gpu import ort_variants


def test_a_profile_that_cannot_run_says_why(lenet):
    """The kernel profile runs in a child process; its failure comes back as the variant's
    error (here: no GPU), never as the parent's crash."""
    from inference.providers import gpu_present
    if gpu_present():
        pytest.skip("a GPU here: the profile would run (tests/inference/test_gpu.py)")
    args = argparse.Namespace(model=Path(lenet.onnx), batch=1, fp16=None)
    assert ort_variants._child_kernels(args, "fp16-nhwc") == {
        "error": "exit 1: error: no NVIDIA GPU here"}


def test_kernel_note_reads_a_profile_or_its_error():
    row = {"variant": "fp32", "kernels": {"kernel_ms_per_step": 1.234, "kernels_per_step": 85}}
    assert ort_variants._kernel_note(row) == ", GPU 1.234 ms in 85 kernels"
    assert ort_variants._kernel_note({"kernels": {"error": "exit 1: x"}}) == ", kernels: exit 1: x"
    assert ort_variants._kernel_note({"variant": "fp32"}) == ""

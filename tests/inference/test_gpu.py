"""ONNX Runtime's CUDA provider against its CPU provider, on models the project's exporter wrote.

The checks are plain functions of two providers (`compare_sessions`, `compare_classifiers`) so
that their logic runs anywhere with ("cpu", "cpu"); the `gpu` tests call them with "cuda".

Tolerance: max |CUDA - CPU| <= 1e-4 of the output's scale (its max |value| on the CPU), for
logits and for probabilities. Both providers compute in float32; cuDNN/cuBLAS sum in another
order than MLAS, which moves results by ~1e-7..1e-6 relative, so 1e-4 is a wide margin that
still catches a reduced-precision path. One such path is on by default: ONNX Runtime's CUDA
provider allows TF32 (provider option `use_tf32`, default 1), which rounds Conv/Gemm operands to
10 mantissa bits (~5e-4 relative per operand). If these tests fail by ~1e-4..1e-3 of the scale,
that is the likely cause, and the fix belongs in inference/providers.py (pass
"use_tf32": "0" for "cuda", as trainer/device.py switches TF32 off for training).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
import pytest
import torch
from PIL import Image

from converter import build_model, load_caffemodel, save_caffemodel
from converter.onnx_export import export_job, export_onnx
from inference import Classifier
from inference.providers import gpu_present, open_session
from lmdb_builder import write_mean
from prototxt import caffe_pb2, parse_text

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not (torch.cuda.is_available() or gpu_present()), reason="no CUDA GPU here"),
    pytest.mark.skipif("CUDAExecutionProvider" not in onnxruntime.get_available_providers(),
                       reason="this onnxruntime build has no CUDAExecutionProvider "
                              "(install onnxruntime-gpu)"),
]

RTOL_OF_SCALE = 1e-4     # max |a - b| / max |b| (see the module docstring)
TOP_LOG_GAP = 1e-2       # the check images' top-6 log-probabilities are at least this far apart
C, H, W, CLASSES = 3, 17, 23, 7

# A small colour classifier with a non-square, odd input (N != C != H != W in the checks):
# conv 3x3 -> 6 x 15 x 21, ReLU, max pool 3/2 (Caffe's ceil: 7 x 10), ip 7, Softmax.
LAYERS = """
name: "gpu-check"
input: "data"
input_shape { dim: 1 dim: 3 dim: 17 dim: 23 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 6 kernel_size: 3
                            weight_filler { type: "gaussian" std: 0.03 }
                            bias_filler { type: "constant" value: 0.2 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
        inner_product_param { num_output: 7 weight_filler { type: "gaussian" std: 0.02 }
                              bias_filler { type: "constant" value: 0.1 } } }
"""
SOFTMAX = 'layer { name: "softmax" type: "Softmax" bottom: "ip1" top: "softmax" }\n'


@pytest.fixture(scope="module")
def job(tmp_path_factory) -> Path:
    """A DIGITS-like model job (deploy, snapshot, colour mean image, labels, info.json) exported
    to model.onnx with `export_job`, plus logits.onnx: the same weights without the Softmax,
    exported with `export_onnx(output="ip1")`."""
    job = tmp_path_factory.mktemp("gpu-job")
    (job / "deploy.prototxt").write_text(LAYERS + SOFTMAX)
    weights = job / "snapshot_iter_1.caffemodel"
    save_caffemodel(build_model(job / "deploy.prototxt", seed=11), weights)
    write_mean(np.random.default_rng(5).integers(70, 180, (H, W, C)).astype(np.uint8),
               job / "mean.binaryproto")
    (job / "labels.txt").write_text("".join(f"class-{i}\n" for i in range(CLASSES)))
    (job / "info.json").write_text('{"image dimensions": [17, 23, 3], "image resize mode": '
                                   '"squash", "mean subtraction": "image"}')
    export_job(job / "model.onnx", job=job)
    logits = build_model(parse_text(LAYERS, caffe_pb2.NetParameter()), "TEST")
    load_caffemodel(logits, weights, strict=True)
    export_onnx(logits, job / "logits.onnx", output="ip1")
    return job


def check_images() -> list:
    """Six seeded images of other sizes than the input, as arrays (RGB) and PIL images."""
    rng = np.random.default_rng(29)
    images = []
    for i in range(6):
        h, w = 13 + 5 * i, 41 - 3 * i
        smooth = rng.integers(0, 256, (h // 3 + 1, w // 3 + 1, 3), dtype=np.uint8)
        image = np.asarray(Image.fromarray(smooth).resize((w, h), Image.BILINEAR))
        images.append(Image.fromarray(image) if i % 2 else image)
    return images


# -- the checks, for any two providers ---------------------------------------------------------

def compare_sessions(model: bytes, provider_a: str, provider_b: str) -> None:
    """The same seeded batches through `open_session(provider=a)` and `(provider=b)`."""
    a = open_session(model, provider=provider_a)
    b = open_session(model, provider=provider_b)
    assert (a.provider, b.provider) == (provider_a, provider_b), (a.tried, b.tried)
    assert a.session.get_providers()[0] == {"cuda": "CUDAExecutionProvider",
                                            "cpu": "CPUExecutionProvider"}[provider_a]
    name = a.session.get_inputs()[0].name
    rng = np.random.default_rng(13)
    for n in (5, 2, 1):
        x = rng.normal(0, 50, (n, C, H, W)).astype(np.float32)   # mean-subtracted pixel scale
        (ya,) = a.session.run(None, {name: x})
        (yb,) = b.session.run(None, {name: x})
        assert ya.shape == yb.shape == (n, CLASSES)
        assert np.isfinite(ya).all() and np.isfinite(yb).all()
        scale = float(np.abs(yb).max())
        assert scale > 0
        diff = float(np.abs(ya.astype(np.float64) - yb).max())
        assert diff <= RTOL_OF_SCALE * scale, (
            f"batch {n}: {provider_a} vs {provider_b} max |diff| {diff:.3g} = {diff / scale:.3g} "
            f"of the output scale {scale:.3g} (> {RTOL_OF_SCALE:g}); ~1e-4..1e-3 suggests TF32 "
            "in ONNX Runtime's CUDA provider (use_tf32 defaults to 1)")


def compare_classifiers(path: Path, provider_a: str, provider_b: str, images: list) -> None:
    """`Classifier(provider=a)` and `(provider=b)`: the same top-5 classes in the same order."""
    a = Classifier(path, provider=provider_a)
    b = Classifier(path, provider=provider_b)
    assert (a.provider, b.provider) == (provider_a, provider_b), (a.providers_tried, b.providers_tried)
    x = np.stack([b.preprocess(image) for image in images])
    assert np.array_equal(x, np.stack([a.preprocess(image) for image in images]))  # CPU-side
    probabilities = b.probabilities(x)
    # no near-ties among the check images' top 6 (in log-probability, i.e. logit, gaps), so the
    # order cannot hinge on the last bits: a 1e-2 gap is ~20x the logit error RTOL_OF_SCALE allows
    top6 = np.log(-np.sort(-probabilities.astype(np.float64), axis=1)[:, :6])
    assert (top6[:, :-1] - top6[:, 1:]).min() >= TOP_LOG_GAP, top6
    expected, got = b.classify(images, top=5), a.classify(images, top=5)
    assert len(got) == len(expected) == len(images)
    for i, (g, e) in enumerate(zip(got, expected)):
        assert [(p.index, p.label) for p in g] == [(p.index, p.label) for p in e], f"image {i}"
        np.testing.assert_allclose([p.probability for p in g], [p.probability for p in e],
                                   rtol=0, atol=RTOL_OF_SCALE, err_msg=f"image {i}")


# -- the gpu tests -----------------------------------------------------------------------------

@pytest.mark.parametrize("model", ["model.onnx", "logits.onnx"])
def test_cuda_session_matches_cpu(job, model):
    compare_sessions((job / model).read_bytes(), "cuda", "cpu")


def test_cuda_classifier_gives_the_cpu_top5(job):
    compare_classifiers(job / "model.onnx", "cuda", "cpu", check_images())


@pytest.mark.parametrize("batch, options", [(1, None), (3, None), (2, {"prefer_nhwc": "1"})])
def test_cuda_graph_replays_give_the_cpu_outputs(job, batch, options):
    """inference.cuda_graph: the first run is the capture, later ones replay it with new input
    copied into the bound buffer; every replay must compute on its own input. Provider options
    (here ONNX Runtime's NHWC kernels, one of ort_variants.py's) keep the float32 outputs."""
    from inference.cuda_graph import GraphRunner
    model = (job / "model.onnx").read_bytes()
    runner = GraphRunner(model, batch, options=options)
    cpu = open_session(model, provider="cpu").session
    name = cpu.get_inputs()[0].name
    rng = np.random.default_rng(21 + batch)
    for _ in range(3):
        x = rng.normal(0, 50, (batch, C, H, W)).astype(np.float32)
        (expected,) = cpu.run(None, {name: x})
        got = runner.run(x)
        assert got.shape == expected.shape == (batch, CLASSES)
        assert float(np.abs(got - expected).max()) <= RTOL_OF_SCALE * float(np.abs(expected).max())


def test_ort_variants_profiles_onnx_runtimes_kernels(job):
    """benchmarks/gpu/ort_variants.py reads ONNX Runtime's kernels through PyTorch's profiler
    (CUPTI sees the whole process): a run of this net launches its convolutions among them."""
    from benchmarks.gpu.ort_variants import kernels
    table = kernels((job / "model.onnx").read_bytes(), {}, batch=2, runs=5)
    assert table["kernels_per_step"] >= 3 and table["kernel_ms_per_step"] > 0
    assert table["top"] and all(row["ms"] >= 0 and row["name"] for row in table["top"])

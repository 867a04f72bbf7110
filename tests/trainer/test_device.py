"""trainer.device: device strings, bf16 detection, fast mode and its log line."""
from __future__ import annotations

import pytest
import torch

from converter import build_model
from prototxt import parse_text
from prototxt import caffe_pb2
from trainer.device import (DeviceError, Precision, cpu_bf16_flags, machine_description,
                            resolve_device, select_precision)
from trainer.timing import random_inputs

X86_BF16 = "processor : 0\nmodel name : Test CPU\nflags : fpu sse2 avx2 avx512f avx512_bf16\n"
X86_PLAIN = "processor : 0\nflags : fpu sse2 avx2 avx512f avx512bw\n"
ARM_BF16 = "processor : 0\nFeatures : fp asimd sve bf16 i8mm\n"

# N=3 != C=2 != H=9 != W=7 so an axis mix-up shows.
NET = """
name: "small"
input: "data"  input_shape { dim: 3 dim: 2 dim: 9 dim: 7 }
input: "label" input_shape { dim: 3 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 5 kernel_size: 3 pad: 1
                            weight_filler { type: "gaussian" std: 0.3 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
        inner_product_param { num_output: 4 weight_filler { type: "gaussian" std: 0.2 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip1" bottom: "label" top: "loss" }
"""


def small_net() -> caffe_pb2.NetParameter:
    return parse_text(NET, caffe_pb2.NetParameter())


@pytest.mark.parametrize("spec", [None, "", "cpu", " CPU ", torch.device("cpu")])
def test_cpu_specs(spec):
    assert resolve_device(spec) == torch.device("cpu")


@pytest.mark.parametrize("spec", ["gpu", "cuda:x", "cuda:-1", "cpu:0", "tpu"])
def test_bad_specs_name_the_choices(spec):
    with pytest.raises(DeviceError, match="use cpu, cuda or cuda:N"):
        resolve_device(spec)


def test_cuda_absent(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match=r"'cuda'.*use --device cpu"):
        resolve_device("cuda")


def test_cuda_index_range(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(DeviceError, match=r"only 2 GPU\(s\): cuda:0..cuda:1"):
        resolve_device("cuda:2")


def test_bf16_flags_from_cpuinfo():
    assert cpu_bf16_flags(X86_BF16) == ["avx512_bf16"]
    assert cpu_bf16_flags(ARM_BF16) == ["bf16"]
    assert cpu_bf16_flags(X86_PLAIN) == []  # avx512bw alone: oneDNN would emulate bf16
    assert cpu_bf16_flags("") == []


def test_describe_lines():
    cpu = torch.device("cpu")
    assert select_precision(cpu).describe() == \
        "precision: fp32 on cpu, channels_last (Caffe's numerics; --fast for bf16)"
    assert select_precision(cpu, fast=True, cpuinfo=X86_BF16).describe() == \
        "fast mode: bf16 autocast on cpu (avx512_bf16), channels_last"
    assert select_precision(cpu, fast=True, cpuinfo=X86_PLAIN).describe() == \
        "fast mode: fp32 on cpu (this CPU has no native bf16), channels_last"
    assert Precision(torch.device("cuda", 0)).describe() == \
        "precision: fp32 on cuda:0, TF32 off, cuDNN autotuned (Caffe's numerics; --fast for bf16)"
    assert Precision(torch.device("cuda", 0), cudnn_search="get").describe() == \
        "precision: fp32 on cuda:0, TF32 off, cuDNN heuristics (Caffe's numerics; --fast for bf16)"
    assert Precision(torch.device("cuda", 1), True, torch.bfloat16, True, "H200, TF32 on",
                     "get").describe() == \
        "fast mode: bf16 autocast on cuda:1 (H200, TF32 on), channels_last, cuDNN heuristics"


def test_an_unknown_cudnn_search_names_the_choices():
    with pytest.raises(ValueError, match="'fastest': use one of find, get"):
        select_precision("cpu", cudnn_search="fastest")


def test_default_is_fp32_in_onednns_layout():
    p = select_precision("cpu")
    assert p.dtype is None and p.channels_last and not p.fast
    x = p.prepare_input(torch.zeros(3, 2, 9, 7))
    assert x.is_contiguous(memory_format=torch.channels_last) and x.dtype == torch.float32
    assert p.prepare_input(torch.zeros(3)).shape == (3,)
    with p.autocast():
        assert not torch.is_autocast_enabled("cpu")
    nchw = Precision(torch.device("cpu"))  # what the GPU default keeps, and the reference
    assert not nchw.channels_last and nchw.prepare_input(torch.zeros(3, 2, 9, 7)).is_contiguous()


def test_channels_last_fp32_matches_nchw():
    """Only the summation order inside the convolutions differs: float32 rounding, no more."""
    ref_scores, ref_grad = _run(Precision(torch.device("cpu")))
    scores, grad = _run(select_precision("cpu"))
    torch.testing.assert_close(scores, ref_scores, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, ref_grad, rtol=1e-5, atol=1e-6)


def test_fast_layout_and_autocast():
    p = select_precision("cpu", fast=True, cpuinfo=X86_BF16)
    x = p.prepare_input(torch.zeros(3, 2, 9, 7))
    assert x.is_contiguous(memory_format=torch.channels_last)
    label = p.prepare_input(torch.zeros(3))
    assert label.shape == (3,)
    model = p.prepare_model(build_model(small_net(), "TRAIN", seed=1))
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    with p.autocast():
        assert torch.is_autocast_enabled("cpu")
        assert torch.get_autocast_dtype("cpu") == torch.bfloat16
        out = model(**{k: p.prepare_input(v) for k, v in random_inputs(model).items()},
                    keep=["ip1"])
    assert out["ip1"].dtype == torch.bfloat16
    assert out.loss.dtype == torch.float32  # loss layers get float32 inputs
    p.prepare_model(model)  # a second call adds no second hook
    assert len(model.loss._forward_pre_hooks) == 1


def _run(precision: Precision) -> tuple[torch.Tensor, torch.Tensor]:
    model = precision.prepare_model(build_model(small_net(), "TRAIN", seed=3))
    inputs = {k: precision.prepare_input(v) for k, v in random_inputs(model, seed=4).items()}
    with precision.autocast():
        out = model(**inputs, keep=["ip1"])
    out.loss.backward()
    return out["ip1"].float().detach(), model.conv1.weight.grad.float()


@pytest.mark.parametrize("cpuinfo, tol", [(X86_BF16, 3e-2), (X86_PLAIN, 1e-5)])
def test_fast_mode_stays_close_to_fp32(cpuinfo, tol):
    ref_scores, ref_grad = _run(Precision(torch.device("cpu")))  # NCHW float32
    fast = select_precision("cpu", fast=True, cpuinfo=cpuinfo)
    scores, grad = _run(fast)
    scale = ref_scores.abs().max()
    assert (scores - ref_scores).abs().max() <= tol * scale
    assert (grad - ref_grad).abs().max() <= tol * ref_grad.abs().max()
    if fast.dtype is None:  # the fp32 fallback differs only by the channels_last layout
        torch.testing.assert_close(scores, ref_scores, rtol=1e-5, atol=1e-6)


def test_machine_description():
    info = machine_description()
    assert info["logical_cores"] >= 1 and info["torch_threads"] >= 1
    assert info["torch"] == torch.__version__
    assert isinstance(info["cpu"], str) and info["cpu"]
    assert set(info["cpu_bf16"]) <= {"amx_bf16", "avx512_bf16", "bf16"}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_tf32_switches():
    select_precision("cuda")
    assert not torch.backends.cuda.matmul.allow_tf32 and not torch.backends.cudnn.allow_tf32
    fast = select_precision("cuda", fast=True)
    assert torch.backends.cuda.matmul.allow_tf32 and fast.channels_last
    assert torch.backends.cudnn.benchmark
    heuristic = select_precision("cuda", cudnn_search="get")
    assert not torch.backends.cudnn.benchmark and heuristic.cudnn_search == "get"
    select_precision("cuda")  # leave the process in fidelity mode
    ref_scores, _ = _run(select_precision("cpu"))
    scores, _ = _run(fast)
    assert (scores.cpu() - ref_scores).abs().max() <= 3e-2 * ref_scores.abs().max()

"""Provider choice: the best that works, CPU without a GPU, a clear error when one is forced."""
from __future__ import annotations

import numpy as np
import pytest

from inference import Classifier, InferenceError
from inference.providers import gpu_present


def test_auto_picks_a_working_provider(lenet):
    clf = Classifier(lenet.onnx)
    assert clf.provider in ("tensorrt", "cuda", "cpu")
    if not gpu_present():
        assert clf.provider == "cpu"
    assert clf.probabilities(np.zeros((3, 1, 28, 28), np.float32)).shape == (3, 10)


def test_unknown_provider(lenet):
    with pytest.raises(InferenceError, match="unknown provider 'tpu'"):
        Classifier(lenet.onnx, provider="tpu")


@pytest.mark.skipif(gpu_present(), reason="this machine has a GPU")
@pytest.mark.parametrize("provider", ["cuda", "tensorrt"])
def test_forcing_a_gpu_provider_without_a_gpu_says_why(lenet, provider, capfd):
    with pytest.raises(InferenceError, match=f"{provider}: .*try --provider cpu"):
        Classifier(lenet.onnx, provider=provider)
    out, err = capfd.readouterr()
    assert "EP Error" not in out + err                      # ORT's page of errors stays quiet


@pytest.mark.gpu
@pytest.mark.skipif(not gpu_present(), reason="no NVIDIA GPU here")
def test_cuda_matches_cpu(lenet, rng):
    x = rng.normal(0, 50, (5, 1, 28, 28)).astype(np.float32)
    cpu = Classifier(lenet.onnx, provider="cpu").probabilities(x)
    cuda = Classifier(lenet.onnx, provider="cuda")
    assert cuda.provider == "cuda"
    np.testing.assert_allclose(cuda.probabilities(x), cpu, atol=1e-4)

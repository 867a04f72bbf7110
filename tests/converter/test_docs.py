"""docs/supported_layers.md stays in sync with the registry, which covers the issue's list."""
from __future__ import annotations

from converter.__main__ import main
from converter.docs import DOC_PATH, render
from converter.registry import REGISTRY

ISSUE_TYPES = """Input Data ImageData MemoryData Convolution Deconvolution Pooling LRN ReLU PReLU ELU
Sigmoid TanH AbsVal Power Exp Log BNLL InnerProduct Dropout Concat Eltwise Split Slice Flatten
Reshape Crop Softmax SoftmaxWithLoss Accuracy BatchNorm Scale Bias EuclideanLoss
SigmoidCrossEntropyLoss Silence""".split()


def test_doc_file_is_generated_from_the_registry():
    assert DOC_PATH.read_text(encoding="utf-8") == render(), \
        "run: python -m converter layers --write"
    assert main(["layers", "--check"]) == 0


def test_every_type_of_the_issue_is_registered_and_documented():
    text = DOC_PATH.read_text(encoding="utf-8")
    assert set(ISSUE_TYPES) <= set(REGISTRY)
    for name in REGISTRY:
        assert f"\n| {name} |" in text

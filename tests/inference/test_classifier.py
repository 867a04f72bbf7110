"""Classifier: same probabilities as the PyTorch graph, DIGITS' top-k, real MNIST accuracy,
every kind of input, and a colour crop network with a non-square input."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from converter import build_model, load_caffemodel, save_caffemodel
from converter.onnx_export import export_job
from inference import Classifier, InferenceError, ModelInfo, top_k
from lmdb_builder import write_mean

TOLERANCE = 1e-5

TINY_DEPLOY = """
name: "tiny"
input: "data"
input_shape { dim: 1 dim: 3 dim: 20 dim: 26 }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        convolution_param { num_output: 4 kernel_size: 3 weight_filler { type: "gaussian" std: 0.02 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: MAX kernel_size: 3 stride: 2 } }
layer { name: "ip1" type: "InnerProduct" bottom: "pool1" top: "ip1"
        inner_product_param { num_output: 5 weight_filler { type: "gaussian" std: 0.02 } } }
layer { name: "softmax" type: "Softmax" bottom: "ip1" top: "softmax" }
"""


@pytest.fixture(scope="module")
def colour_job(tmp_path_factory):
    """A DIGITS-like job: 3 x 20 x 26 input, dataset stored at 24 x 31 (a crop network), crop
    resize mode, a colour mean image, 5 labels, random weights."""
    job = tmp_path_factory.mktemp("colour-job")
    (job / "deploy.prototxt").write_text(TINY_DEPLOY)
    save_caffemodel(build_model(job / "deploy.prototxt", seed=3), job / "snapshot_iter_1.caffemodel")
    mean = np.random.default_rng(4).integers(60, 200, (24, 31, 3)).astype(np.uint8)  # RGB
    write_mean(mean, job / "mean.binaryproto")
    (job / "labels.txt").write_text("apple\nbanana\ncherry\ndate\nelder\n")
    (job / "info.json").write_text(json.dumps({"image dimensions": [24, 31, 3],
                                               "image resize mode": "crop",
                                               "mean subtraction": "image"}))
    export_job(job / "model.onnx", job=job)
    return job


def torch_probabilities(job, weights, x):
    model = build_model(job / "deploy.prototxt", "TEST").eval()
    load_caffemodel(model, weights)
    with torch.no_grad():
        return model(torch.from_numpy(x))["softmax"].numpy()


def test_lenet_probabilities_equal_pytorch(lenet, lenet_classifier, mnist_test):
    images = [Image.fromarray(255 - d) for d in mnist_test.images[:37]]   # DIGITS' polarity
    x = np.stack([lenet_classifier.preprocess(i) for i in images])
    ours = lenet_classifier.probabilities(x)
    np.testing.assert_allclose(ours, torch_probabilities(lenet.job, lenet.snapshot, x), atol=TOLERANCE)
    assert ours.shape == (37, 10)


@pytest.mark.parametrize("crop", ["resize", "center"])
def test_colour_crop_network_equals_pytorch(colour_job, crop, rng):
    clf = Classifier(colour_job / "model.onnx", provider="cpu", crop=crop, max_batch=4)
    assert clf.info.input_shape == (3, 20, 26) and clf.info.stored_size == (24, 31)
    assert clf.info.resize_mode == "crop" and clf.info.mean_image.shape == (3, 24, 31)
    images = [rng.integers(0, 256, (17 + 3 * i, 40 - 2 * i, 3), dtype=np.uint8) for i in range(7)]
    x = np.stack([clf.preprocess(i) for i in images])
    ours = clf.probabilities(x)                                    # in runs of max_batch 4
    weights = colour_job / "snapshot_iter_1.caffemodel"
    np.testing.assert_allclose(ours, torch_probabilities(colour_job, weights, x), atol=TOLERANCE)
    result = clf.classify(images, top=3)
    assert [p.index for p in result[5]] == list(np.argsort(-ours[5], kind="stable")[:3])


def test_resize_and_center_crop_differ_on_a_crop_network(colour_job, rng):
    image = rng.integers(0, 256, (24, 31, 3), dtype=np.uint8)
    a = Classifier(colour_job / "model.onnx", provider="cpu").preprocess(image)
    b = Classifier(colour_job / "model.onnx", provider="cpu", crop="center").preprocess(image)
    assert a.shape == b.shape and not np.allclose(a, b)


def test_mnist_test_digits_are_classified(lenet_classifier, mnist_test):
    images = [255 - d for d in mnist_test.images]                  # black on white, as trained
    results = lenet_classifier.classify(images, top=5)
    top1 = np.mean([r[0].index == y for r, y in zip(results, mnist_test.labels)])
    assert top1 >= 0.95
    assert all(len(r) == 5 and r[0].probability >= r[-1].probability for r in results)


def test_inputs_of_every_kind_agree(lenet_classifier, mnist_test, tmp_path):
    digit = 255 - mnist_test.images[0]
    path = tmp_path / "d.png"
    Image.fromarray(digit).save(path)
    expected = lenet_classifier.classify_one(digit)
    for source in (path, str(path), path.read_bytes(), Image.open(path),
                   Image.fromarray(digit).convert("RGB"), digit[:, :, None]):
        assert lenet_classifier.classify_one(source) == expected
    assert expected[0].label == str(mnist_test.labels[0])


def test_top_k_is_digits(mnist_test):
    spec = ModelInfo("x", "y", 1, 4, 4, labels=["a", "b", "c"])
    probabilities = np.array([0.1, 0.5, 0.1, 0.3], np.float32)      # index 3 has no label
    result = top_k(probabilities, spec, 5)
    assert [p.label for p in result] == ["b", "a", "c"]               # ties keep index order
    assert result[0].percent() == 50.0
    unlabelled = top_k(probabilities, ModelInfo("x", "y", 1, 4, 4), 2)
    assert [(p.label, p.index) for p in unlabelled] == [("1", 1), ("3", 3)]


def test_wrong_input_shape_and_missing_model(lenet_classifier, tmp_path):
    with pytest.raises(InferenceError, match="expected N x 1x28x28"):
        lenet_classifier.probabilities(np.zeros((2, 1, 28, 27), np.float32))
    assert lenet_classifier.probabilities(np.zeros((0, 1, 28, 28), np.float32)).shape[0] == 0
    with pytest.raises(InferenceError, match="cannot read the model"):
        Classifier(tmp_path / "missing.onnx")
    (tmp_path / "bad.onnx").write_bytes(b"not a model")
    with pytest.raises(InferenceError, match="bad.onnx: not a model ONNX Runtime can load"):
        Classifier(tmp_path / "bad.onnx")

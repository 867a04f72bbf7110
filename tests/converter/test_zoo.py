"""The model zoo as golden tests: ResNet-50, VGG-16 (V1 format), MobileNet v1/v2,
SqueezeNet 1.1, NIN (ImageNet), DenseNet-121, BN-Inception and SE-ResNet-50, written by our
builders (tests/converter/zoo/) from their published structure.

Per net: the prototxt text is read back through read_net (V1 and input_dim upgrades included)
and built with seeded fillers; BatchNorm statistics are set from one forward pass of the test
image (from each BatchNorm's input, perturbed, times a moving-average factor as BVLC files
store them; see calibrate_batch_norm), so activations keep a sensible scale through 50+
layers of random weights. Then: layer-type counts and parameter counts against the published
figures, blob shapes at checkpoints, PyTorch vs ONNX Runtime (export_onnx of the classifier
top) and PyTorch vs OpenCV's Caffe importer (prototxt + our .caffemodel: output, Softmax and
checkpoints) on the same image, each blob within 1e-5 of its scale (max abs difference / max
abs value).

One module-scoped fixture builds each net once for its three tests (batch 1).
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from converter import build_model, export_onnx, save_caffemodel
from converter.layers.batch_norm import CaffeBatchNorm
from converter.onnx_export import ort_session
from prototxt import caffe_pb2, read_text

from .zoo import ZOO, ZooEntry

import cv2  # opencv-python-headless < 5 (OpenCV 5 dropped the Caffe importer)

pytestmark = pytest.mark.slow
RTOL = 1e-5  # max abs difference / max abs value of a blob, PyTorch vs ONNX Runtime or OpenCV
# BVLC's BatchNorm factor after 10,000 iterations at moving_average_fraction 0.999
BN_FACTOR = (1 - 0.999 ** 10_000) / (1 - 0.999)


@dataclass
class Built:
    entry: ZooEntry
    prototxt: Path
    model: torch.nn.Module
    x: np.ndarray
    ours: dict[str, np.ndarray]
    folder: Path


def calibrate_batch_norm(model, x: torch.Tensor, seed: int, keep: list[str]) -> dict:
    """Give every BatchNorm statistics near those of its input for `x` (BVLC layout: sums
    times the factor), with seeded perturbations, in one forward pass; return the blobs `keep`
    of that pass (each BatchNorm is set before it runs, so they are the calibrated net's).

    Each channel's variance is the layer's mean square (over all its channels) times a random
    0.8 to 1.25, and up to a quarter of the channel's mean is taken out (plus noise of 0.1 of
    its std): the net keeps unit scale, and no channel is normalised on its own. Statistics of
    the channel itself (as a net trained on real data would have) raise a nearly dead channel
    (a few values just above a ReLU's zero, carrying the rounding of a large cancelling sum) to
    unit scale with that rounding, and float32 noise of two implementations reaches 1e-5 of the
    output (ResNet-50, MobileNet v1: 0.5 to 1.3e-5, against about 1e-6 this way)."""
    g = torch.Generator().manual_seed(seed)

    def hook(module: CaffeBatchNorm, args):
        inp = args[0]
        dims = [0] + list(range(2, inp.dim()))
        mean, var = inp.mean(dims), inp.var(dims, unbiased=False)
        centred = 0.25 * torch.rand(mean.shape, generator=g)  # share of the mean taken out
        stat_mean = centred * mean + 0.1 * var.sqrt() * torch.randn(mean.shape, generator=g)
        power = float((var + mean ** 2).mean())  # the layer's mean square, all channels
        stat_var = power * (0.8 + 0.45 * torch.rand(var.shape, generator=g))
        module.mean.copy_(BN_FACTOR * stat_mean)
        module.variance.copy_(BN_FACTOR * stat_var)
        module.scale_factor.fill_(BN_FACTOR)

    handles = [m.register_forward_pre_hook(hook) for m in model.modules()
               if isinstance(m, CaffeBatchNorm)]
    try:
        with torch.no_grad():
            out = model(x, keep=keep)
        return {b: out[b].numpy().copy() for b in keep}
    finally:
        for h in handles:
            h.remove()


def rel_diff(ours: np.ndarray, theirs: np.ndarray) -> float:
    return float(np.abs(ours - theirs).max() / np.abs(ours).max())


@pytest.fixture(scope="module", params=list(ZOO))
def zoo_net(request, tmp_path_factory) -> Built:
    name = request.param
    entry = ZOO[name]
    folder = tmp_path_factory.mktemp(name)
    prototxt = folder / "deploy.prototxt"
    prototxt.write_text(entry.text(), encoding="utf-8")
    seed = sum(map(ord, name))
    model = build_model(prototxt, "TEST", seed=seed).eval()
    g = np.random.default_rng(seed)
    x = g.normal(0, 50, (1, 3, entry.size, entry.size)).astype(np.float32)
    keep = [entry.logits, *entry.shapes] + ([entry.prob] if entry.prob else [])
    ours = calibrate_batch_norm(model, torch.from_numpy(x), seed, keep)
    return Built(entry, prototxt, model, x, ours, folder)


def test_structure_and_parameters(zoo_net: Built):
    entry, model = zoo_net.entry, zoo_net.model
    if entry.v1:  # the file as written holds only V1 layers; the model has them upgraded
        raw = read_text(zoo_net.prototxt, caffe_pb2.NetParameter())
        assert len(raw.layer) == 0 and len(model.net.layers) == 0
        assert [l.name for l in model.net.layer] == [l.name for l in raw.layers]
        types = Counter(caffe_pb2.V1LayerParameter.LayerType.Name(l.type) for l in raw.layers)
    else:
        types = Counter(layer.type for layer in model.net.layer)
    assert {t: types[t] for t in entry.counts} == entry.counts
    params = sum(t.numel() for _, _, t, _ in model.caffe_params())
    assert params == entry.params
    if entry.published is not None:
        half_unit = 0.5 * 10 ** -entry.published_digits
        assert abs(params / 1e6 - entry.published) <= half_unit, (params, entry.published)
    shapes = model.blob_shapes()
    for blob, shape in entry.shapes.items():
        assert shapes[blob] == shape, blob
        assert zoo_net.ours[blob].shape == shape, blob
    for blob in filter(None, (entry.logits, entry.prob)):
        assert zoo_net.ours[blob].shape == entry.out_shape, blob
    assert np.isfinite(zoo_net.ours[entry.logits]).all()
    if entry.prob:
        np.testing.assert_allclose(zoo_net.ours[entry.prob].sum(1), 1.0, rtol=1e-5)


def classifier(model) -> torch.nn.Module:
    """The deploy net without its final Softmax, sharing the weights: export_onnx exports a
    net output, and the logits are the sharper comparison (Softmax squashes differences)."""
    net = caffe_pb2.NetParameter()
    net.CopyFrom(model.net)
    if net.layer[-1].type == "Softmax":
        del net.layer[-1]
    head = build_model(net, "TEST", source=model.source, materialize=False)
    head.load_state_dict(model.state_dict(), assign=True)
    return head.eval()


def test_onnx_runtime_parity(zoo_net: Built):
    entry, x = zoo_net.entry, zoo_net.x
    logits = zoo_net.ours[entry.logits]
    scale = float(np.abs(logits).max())
    path = zoo_net.folder / "model.onnx"
    report = export_onnx(classifier(zoo_net.model), path, output=entry.logits,
                         tolerance=10 * RTOL * scale)
    (theirs,) = ort_session(path.read_bytes()).run(None, {report.input_name: x})
    diff = rel_diff(logits, theirs)
    print(f"{entry.logits}: ONNX Runtime max rel diff {diff:.2e} (scale {scale:.3g}); "
          f"export self-check {report.summary()}")
    assert theirs.shape == logits.shape
    assert diff <= RTOL


def opencv_prototxt(built: Built) -> Path:
    """The prototxt as OpenCV reads it: OpenCV's schema spells BVLC master's
    `round_mode: FLOOR` as `ceil_mode: false` (its PoolingParameter field 13, as the forks)."""
    text = built.prototxt.read_text(encoding="utf-8")
    if "round_mode: FLOOR" not in text:
        return built.prototxt
    path = built.folder / "deploy_opencv.prototxt"
    path.write_text(text.replace("round_mode: FLOOR", "ceil_mode: false"), encoding="utf-8")
    return path


def test_opencv_parity(zoo_net: Built):
    """The classifier's output, the Softmax and the checkpoint blobs inside the net."""
    entry = zoo_net.entry
    weights = zoo_net.folder / "weights.caffemodel"
    save_caffemodel(zoo_net.model, weights)
    net = cv2.dnn.readNetFromCaffe(str(opencv_prototxt(zoo_net)), str(weights))
    net.enableWinograd(False)  # OpenCV's Winograd 3x3 path rounds differently (F(6,3))
    net.setInput(zoo_net.x)
    blobs = [entry.logits] + ([entry.prob] if entry.prob else []) + list(entry.shapes)
    # OpenCV names outputs by layer: a blob's value is that of the last layer writing it
    writer = {top: layer.name for layer in zoo_net.model.net.layer for top in layer.top}
    theirs = dict(zip(blobs, net.forward([writer[b] for b in blobs])))
    diffs = {b: rel_diff(zoo_net.ours[b], theirs[b].reshape(zoo_net.ours[b].shape))
             for b in blobs}
    print("OpenCV max rel diff:", {b: f"{d:.2e}" for b, d in diffs.items()})
    assert max(diffs.values()) <= RTOL, diffs

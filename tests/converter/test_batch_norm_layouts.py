"""BatchNorm caffemodels in every layout and storage, made the way each Caffe writes them, through
build_model + load_caffemodel (layout detected from the blobs) against a float64 reference,
back out through save_caffemodel, and through ONNX export; ambiguous files are errors."""
from __future__ import annotations

import logging
from typing import NamedTuple

import numpy as np
import pytest
import torch

from converter import ConverterError, build_model
from converter.__main__ import main
from converter.caffemodel import load_caffemodel, save_caffemodel
from converter.onnx_export import export_onnx, ort_session
from prototxt import blob_array, read_caffemodel, write_binary

from .caffe_files import blob, kept, weights
from .util import layer_net

C = 5
X = (2, C, 3, 7)  # N != C != H != W
EPS32 = float(np.float32(1e-5))


def stats(seed=4):
    g = np.random.default_rng(seed)
    return {"mean": g.standard_normal(C), "var": g.uniform(0.2, 3, C),
            "scale": g.uniform(0.5, 2, C) * g.choice([-1, 1], C), "bias": g.standard_normal(C)}


class Case(NamedTuple):
    prototxt: str            # the inside of batch_norm_param { }
    blobs: list              # (values, storage, shape or None), in the file's order
    layout: str              # what the loader must detect
    eps: float               # the eps the writing program used
    affine: bool
    factor: float | None     # the divisor of the stored statistics (None: as stored)
    factor_saved: float | None = None  # the factor blob written back (None: as read)
    warns: bool = False


def cases() -> dict[str, Case]:
    s = stats()
    m, v, g, b = s["mean"], s["var"], s["scale"], s["bias"]
    f = 987.5  # a BVLC factor: sum of maf^k over the iterations run
    one, zero = [1.0], [0.0]
    cudnn_c, cudnn_1 = (1, C, 1, 1), (1, 1, 1, 1)  # NVCaffe 0.15's cuDNN engine
    return {
        # BVLC: statistics scaled by the factor; eps as given, even below 1e-5
        "bvlc": Case("eps: 1e-6", [(m * f, "data", None), (v * f, "data", None), ([f], "data", None)],
                     "bvlc", float(np.float32(1e-6)), False, f),
        # BVLC before any iteration: factor 0 and zero sums, statistics read as 0
        "bvlc-untrained": Case("", [(0 * m, "data", None), (0 * v, "data", None), (zero, "data", None)],
                               "bvlc", EPS32, False, 0.0),
        # NVCaffe 0.15 (DIGITS), engine CAFFE: [scale, bias, mean, var, reserved], eps as given
        "nvcaffe-0.15-cpu": Case('eps: 1e-6 engine: CAFFE scale_filler { value: 1 } bias_filler { value: 0 }',
                                 [(g, "data", None), (b, "data", None), (m, "data", None),
                                  (v, "data", None), (zero, "data", None)],
                                 "nvcaffe-0.15", float(np.float32(1e-6)), True, None),
        # NVCaffe 0.15, cuDNN engine: 1xCx1x1 blobs, eps clamped; the prototxt has no fillers
        "nvcaffe-0.15-cudnn": Case("", [(g, "data", cudnn_c), (b, "data", cudnn_c), (m, "data", cudnn_c),
                                        (v, "data", cudnn_c), (zero, "data", cudnn_1)],
                                   "nvcaffe-0.15", EPS32, True, None),
        # NVCaffe 0.16.5+ without scale/bias: raw FLOAT, factor 1; scale_bias says NVCaffe -> clamp
        "nvcaffe-0.16-3": Case("eps: 1e-6 scale_bias: false",
                               [(m, "FLOAT", None), (v, "FLOAT", None), (one, "FLOAT", None)],
                               "nvcaffe-0.16", EPS32, False, None),
        # NVCaffe 0.16.1-0.16.4 (#436): factor written as 0, statistics as stored
        "nvcaffe-0.16-436-raw": Case("", [(m, "FLOAT", None), (v, "FLOAT", None), (zero, "FLOAT", None)],
                                     "nvcaffe-0.16", EPS32, False, None, 1.0, True),
        # the same with store_blobs_in_old_format: the file BVLC Caffe misreads
        "nvcaffe-0.16-436-old-format": Case("", [(m, "data", None), (v, "data", None), (zero, "data", None)],
                                            "nvcaffe-0.16", EPS32, False, None, 1.0, True),
        # NVCaffe 0.16 scale_bias, an fp16 net: raw FLOAT16, eps clamped to 1e-5
        "nvcaffe-0.16-5-fp16": Case("eps: 1e-6 scale_bias: true",
                                    [(m, "FLOAT16", None), (v, "FLOAT16", None), (one, "FLOAT16", None),
                                     (g, "FLOAT16", None), (b, "FLOAT16", None)],
                                    "nvcaffe-0.16", EPS32, True, None),
        # NVCaffe 0.17, fillers only (built as 0.15, the file says 0.16+), raw DOUBLE
        "nvcaffe-0.17-5-double": Case("scale_filler { value: 1 } bias_filler { value: 0 }",
                                      [(m, "DOUBLE", None), (v, "DOUBLE", None), (one, "DOUBLE", None),
                                       (g, "DOUBLE", None), (b, "DOUBLE", None)],
                                      "nvcaffe-0.16", EPS32, True, None),
        # NVCaffe 0.16.1-0.16.4 with scale_bias: factor 0, never read
        "nvcaffe-0.16-5-factor-0": Case("scale_bias: true",
                                        [(m, "FLOAT", None), (v, "FLOAT", None), (zero, "FLOAT", None),
                                         (g, "FLOAT", None), (b, "FLOAT", None)],
                                        "nvcaffe-0.16", EPS32, True, None, 1.0),
    }


CASES = cases()


def write_case(case: Case, path) -> None:
    write_binary(weights({"l": [blob(values, storage, shape) for values, storage, shape in case.blobs]}),
                 path)


def reference(case: Case, x: np.ndarray) -> np.ndarray:
    """The writing program's output, in float64, from the values its file keeps as the float32
    model holds them (a raw DOUBLE file is rounded to float32 on load)."""
    kept_values = [kept(values, storage).astype(np.float32).astype(np.float64).ravel()
                   for values, storage, _ in case.blobs]
    if case.layout == "nvcaffe-0.15":
        scale, bias, mean, var = kept_values[:4]
    else:
        mean, var = kept_values[:2]
        scale, bias = kept_values[3:5] if case.affine else (np.ones(C), np.zeros(C))
    if case.factor is not None:
        inv = 0.0 if case.factor == 0 else 1 / kept_values[2][0]
        mean, var = mean * inv, var * inv
    k = (slice(None), None, None)
    return (x - mean[k]) / np.sqrt(var[k] + case.eps) * scale[k] + bias[k]


def net_text(case: Case) -> str:
    return f'type: "BatchNorm" batch_norm_param {{ {case.prototxt} }}'


@pytest.mark.parametrize("name", list(CASES))
def test_each_layout_loads_runs_and_saves(name, tmp_path, caplog):
    case = CASES[name]
    path = tmp_path / "w.caffemodel"
    write_case(case, path)
    model = build_model(layer_net(net_text(case), {"x": X}))
    with caplog.at_level(logging.INFO):
        report = load_caffemodel(model, path, strict=True)
    assert report.batchnorm == {"l": case.layout}
    storages = {storage for _, storage, _ in case.blobs}
    assert report.storage == (f"NVIDIA Caffe raw {storages.pop()} blobs" if storages != {"data"}
                              else "BVLC float data blobs")
    assert f"weights: {report.storage}" in caplog.text
    assert f"BatchNorm layouts (from the blobs): {case.layout} 1" in caplog.text
    assert bool(report.warnings) == case.warns
    if case.warns:
        assert "NVIDIA/caffe#436" in caplog.text and "read as 1" in report.warnings[0]
    module = model.layer_module("l")
    assert (module.layout, module.affine, module.eps) == (case.layout, case.affine, case.eps)

    x = np.random.default_rng(8).standard_normal(X) * 2 + 0.5
    with torch.no_grad():
        got = model.double().eval()(torch.from_numpy(x))["y"].numpy()
    np.testing.assert_allclose(got, reference(case, x), rtol=1e-10, atol=1e-12)

    out = tmp_path / "again.caffemodel"
    save_caffemodel(model.float(), out)  # BVLC storage, the layout it was read in
    (layer,) = [l for l in read_caffemodel(out).layer if l.name == "l"]
    assert len(layer.blobs) == len(case.blobs)
    assert all(len(b.data) == int(np.prod(b.shape.dim)) and not b.HasField("raw_data") for b in layer.blobs)
    for j, (saved, (values, storage, _)) in enumerate(zip(layer.blobs, case.blobs)):
        want = kept(values, storage).astype(np.float32).ravel()
        if j == 2 and case.factor_saved is not None and case.layout == "nvcaffe-0.16":
            want = np.array([case.factor_saved])
        np.testing.assert_array_equal(blob_array(saved).ravel(), want.astype(np.float32))
    again = build_model(layer_net(net_text(case), {"x": X}))
    report = load_caffemodel(again, out)
    # a 3-blob NVCaffe 0.16 layer saved with factor 1 reads the same as BVLC
    nvcaffe_3 = case.layout == "nvcaffe-0.16" and not case.affine and "scale_bias" not in case.prototxt
    assert report.batchnorm == {"l": "bvlc" if nvcaffe_3 else case.layout} and not report.warnings
    with torch.no_grad():
        np.testing.assert_array_equal(again.eval()(torch.from_numpy(x.astype(np.float32)))["y"].numpy(),
                                      model.eval()(torch.from_numpy(x.astype(np.float32)))["y"].numpy())


@pytest.mark.parametrize("name", ["bvlc", "nvcaffe-0.15-cudnn", "nvcaffe-0.16-436-raw",
                                  "nvcaffe-0.16-5-fp16"])
def test_each_layout_exports_to_onnx(name, tmp_path):
    case = CASES[name]
    write_case(case, tmp_path / "w.caffemodel")
    model = build_model(layer_net(net_text(case), {"x": X}))
    load_caffemodel(model, tmp_path / "w.caffemodel", strict=True)
    x = (np.random.default_rng(9).standard_normal(X) * 2).astype(np.float32)
    report = export_onnx(model, tmp_path / "bn.onnx", real_inputs=x, output="y")
    assert max(report.differences.values()) <= 1e-4
    session = ort_session((tmp_path / "bn.onnx").read_bytes())
    (theirs,) = session.run(None, {session.get_inputs()[0].name: x})
    np.testing.assert_allclose(theirs, reference(case, x.astype(np.float64)), rtol=1e-5, atol=1e-5)


def load(prototxt: str, blobs, **kw):
    model = build_model(layer_net(f'type: "BatchNorm" batch_norm_param {{ {prototxt} }}', {"x": X}))
    return model, load_caffemodel(model, weights({"l": blobs}), **kw)


def test_factor_one_with_eps_below_the_clamp_needs_the_flavour():
    s = stats()
    blobs = [blob(s["mean"]), blob(s["var"]), blob([1.0])]
    with pytest.raises(ConverterError, match=r"layer 'l' \(BatchNorm\): 3 BatchNorm blobs with scale "
                                             r"factor 1 and eps 1e-06 < 1e-5.*name the flavour"):
        load("eps: 1e-6", blobs)
    model, _ = load("eps: 1e-6", blobs, batchnorm="bvlc")
    assert model.layer_module("l").eps == float(np.float32(1e-6))
    model, report = load("eps: 1e-6", blobs, batchnorm="nvcaffe-0.16")
    assert (report.batchnorm, model.layer_module("l").eps) == ({"l": "nvcaffe-0.16"}, EPS32)
    model, report = load("", blobs)  # eps 1e-5: both programs agree, read as BVLC
    assert report.batchnorm == {"l": "bvlc"}
    with pytest.raises(ConverterError, match="3 BatchNorm blobs cannot be the nvcaffe-0.15 layout"):
        load("", blobs, batchnorm="nvcaffe-0.15")


@pytest.mark.parametrize("flavor,eps", [("bvlc", float(np.float32(1e-6))), ("nvcaffe-0.16", EPS32)])
def test_converter_onnx_batchnorm_option(flavor, eps, tmp_path, capsys):
    """`converter onnx --batchnorm` settles a file the blobs leave open (factor 1, eps < 1e-5);
    without it the command fails naming the layer. Small variances make the eps visible."""
    g = np.random.default_rng(7)
    mean, var = g.standard_normal(C) * 0.01, g.uniform(0.5, 2, C) * 1e-5
    write_binary(weights({"bn": [blob(mean), blob(var), blob([1.0])]}), tmp_path / "w.caffemodel")
    (tmp_path / "deploy.prototxt").write_text(
        f'input: "data" input_shape {{ dim: 1 {" ".join(f"dim: {d}" for d in X[1:])} }}\n'
        'layer { name: "bn" type: "BatchNorm" bottom: "data" top: "bn" batch_norm_param { eps: 1e-6 } }\n'
        'layer { name: "prob" type: "Softmax" bottom: "bn" top: "prob" }\n')
    args = ["onnx", "--model", str(tmp_path / "deploy.prototxt"), "--weights",
            str(tmp_path / "w.caffemodel"), "--out", str(tmp_path / "bn.onnx")]
    assert main(args) != 0
    err = capsys.readouterr().err
    assert "layer 'bn' (BatchNorm)" in err and "--batchnorm bvlc or nvcaffe-0.16" in err
    assert not (tmp_path / "bn.onnx").exists()
    assert main(args + ["--batchnorm", flavor]) == 0
    x = g.standard_normal(X).astype(np.float32) * 0.01
    (got,) = ort_session((tmp_path / "bn.onnx").read_bytes()).run(None, {"data": x})
    k = (slice(None), None, None)
    m, v = kept(mean, "data"), kept(var, "data")
    y = (x - m[k]) / np.sqrt(v[k] + eps)
    want = np.exp(y - y.max(1, keepdims=True))
    np.testing.assert_allclose(got, want / want.sum(1, keepdims=True), rtol=1e-4, atol=1e-6)


def test_nvcaffe_016_file_with_a_copied_bvlc_factor_needs_the_flavour():
    s = stats()
    blobs = [blob(s["mean"]), blob(s["var"]), blob([999.0])]
    model, report = load("", blobs)
    assert report.batchnorm == {"l": "bvlc"}  # what BVLC and NVCaffe 0.17.4 read
    model, report = load("", blobs, batchnorm="nvcaffe-0.16")
    x = np.random.default_rng(1).standard_normal(X)
    with torch.no_grad():
        got = model.double()(torch.from_numpy(x))["y"].numpy()
    k = (slice(None), None, None)
    mean, var = kept(s["mean"], "data"), kept(s["var"], "data")
    np.testing.assert_allclose(got, (x - mean[k]) / np.sqrt(var[k] + EPS32), rtol=1e-10)


def test_one_channel_fits_both_five_blob_orders():
    net = layer_net('type: "BatchNorm"', {"x": (2, 1, 3, 4)})
    file = weights({"l": [blob([v]) for v in (2.0, 0.5, 1.0, 4.0, 0.0)]})
    with pytest.raises(ConverterError, match="1 channel fit both NVIDIA Caffe orders.*name the flavour"):
        load_caffemodel(build_model(net), file)
    x = np.full((2, 1, 3, 4), 3.0)
    for flavor, want in (("nvcaffe-0.15", 2.0 * (3 - 1.0) / np.sqrt(4 + EPS32) + 0.5),
                         ("nvcaffe-0.16", (3 - 2.0) / np.sqrt(0.5 + EPS32) * 4.0 + 0.0)):
        model = build_model(net)
        load_caffemodel(model, file, batchnorm=flavor)
        with torch.no_grad():
            np.testing.assert_allclose(model.double()(torch.from_numpy(x))["y"].numpy(), want, rtol=1e-10)


def test_five_blobs_in_016_order_with_another_factor_are_not_nvcaffes():
    s = stats()
    blobs = [blob(s["mean"]), blob(s["var"]), blob([3.0]), blob(s["scale"]), blob(s["bias"])]
    with pytest.raises(ConverterError, match="scale factor 3: NVIDIA Caffe writes 0 or 1.*cannot tell"):
        load("", blobs)


def test_nvcaffe_015_small_eps_needs_the_engine():
    s = stats()
    blobs = [blob(s[k]) for k in ("scale", "bias", "mean", "var")] + [blob([0.0])]
    with pytest.raises(ConverterError, match=r"eps 1e-06 < 1e-5 and engine DEFAULT.*engine: CUDNN"):
        load("eps: 1e-6", blobs)
    assert load("eps: 1e-6 engine: CUDNN", blobs)[0].layer_module("l").eps == EPS32
    assert load("eps: 1e-6 engine: CAFFE", blobs)[0].layer_module("l").eps == float(np.float32(1e-6))


@pytest.mark.parametrize("shapes,message", [
    ([(C,), (C,), (C,), (1,)], r"4 BatchNorm blobs of shapes \[\[5\], \[5\], \[5\], \[1\]\] for 5 channels"),
    ([(C + 1,), (C + 1,), (1,)], r"3 BatchNorm blobs of shapes \[\[6\], \[6\], \[1\]\] for 5 channels"),
    ([(C,), (C,), (C,), (C,), (2,)], r"5 BatchNorm blobs .* fit neither NVIDIA Caffe order"),
    ([(C,), (C,), (1,), (C, 2), (C,)], r"5 BatchNorm blobs .* fit neither NVIDIA Caffe order"),
])
def test_blobs_that_fit_no_layout(shapes, message):
    blobs = [blob(np.ones(shape)) for shape in shapes]
    with pytest.raises(ConverterError, match=message):
        load("", blobs)


def test_prototxt_scale_and_bias_but_a_three_blob_file():
    s = stats()
    with pytest.raises(ConverterError, match="incompatible number of blobs.*built-in scale and bias"):
        load("scale_bias: true", [blob(s["mean"]), blob(s["var"]), blob([1.0])])


def test_prototxt_layouts_before_any_file():
    for text, layout, count in (("", "bvlc", 3), ("scale_bias: true", "nvcaffe-0.16", 5),
                                ("scale_filler { value: 1 }", "nvcaffe-0.15", 5)):
        model = build_model(layer_net(f'type: "BatchNorm" batch_norm_param {{ {text} }}', {"x": X}))
        assert model.layer_module("l").layout == layout and len(model.caffe_blobs("l")) == count
    fresh = build_model(layer_net('type: "BatchNorm" batch_norm_param { scale_bias: true }', {"x": X}))
    mean, var, factor, scale, bias = (t.detach().numpy() for t in fresh.caffe_blobs("l"))
    assert factor.tolist() == [1.0] and scale.tolist() == [1.0] * C and bias.tolist() == [0.0] * C


def test_raw_damage_in_a_batchnorm_blob_names_it():
    s = stats()
    bad = blob(s["var"], "FLOAT16")
    bad.raw_data = bad.raw_data[:-2]
    with pytest.raises(Exception, match=r"<caffemodel>: layer 'l' blob 1: its shape \[5\] needs 5 "
                                        r"FLOAT16 values = 10 bytes of raw_data but the file holds 8"):
        load("", [blob(s["mean"], "FLOAT16"), bad, blob([1.0], "FLOAT16")])

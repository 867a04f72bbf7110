"""converter onnx --fp16 --calibrate: float16 weights and arithmetic, float32 input/output (so
`python -m inference` runs the file unchanged), metadata kept, and the self-check: on the CPU
here, and said so when no provider can run the model."""
from __future__ import annotations

import json
import re

import numpy as np
import onnx
import pytest
import torch
from onnx.reference import ReferenceEvaluator
from PIL import Image

from converter import ConverterError, build_model
from converter.__main__ import main
from converter.agreement import predict, session
from converter.calibration import CaffeTransform, CalibrationSet, load_calibration
from converter.half import convert_fp16, export_fp16
from converter.onnx_export import export_onnx

from .util import parse_net


@pytest.mark.slow
def test_fp16_export_runs_in_inference_unchanged(trained_lenet, mnist_test, tmp_path, capsys):
    from inference import Classifier
    from inference.__main__ import main as inference_main
    out = tmp_path / "lenet-fp16.onnx"
    assert main(["onnx", "--job", str(trained_lenet.job), "--out", str(out), "--fp16",
                 "--calibrate", str(trained_lenet.dataset), "--calibration-images", "300"]) == 0
    printed = capsys.readouterr().out
    rate = float(re.search(r"fp16 vs fp32 top-1 agreement ([\d.]+) % \(300/300 images", printed).group(1))
    assert rate >= 99.0 and "on CPUExecutionProvider" in printed

    proto, fp32 = onnx.load(str(out)), onnx.load(str(trained_lenet.onnx))
    kinds = {t.data_type for t in proto.graph.initializer if len(t.dims) > 1}
    assert kinds == {onnx.TensorProto.FLOAT16}
    assert proto.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert proto.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert out.stat().st_size < 0.6 * trained_lenet.onnx.stat().st_size
    meta, meta32 = ({p.key: p.value for p in m.metadata_props} for m in (proto, fp32))
    assert {k: v for k, v in meta.items() if k not in ("precision", "fp16_check")} == meta32
    assert meta["precision"] == "fp16" and "agreement" in meta["fp16_check"]

    images = [Image.fromarray(255 - d) for d in mnist_test.images[:100]]
    ours = Classifier(out, provider="cpu").classify(images, top=10)
    theirs = Classifier(trained_lenet.onnx, provider="cpu").classify(images, top=10)
    for a, b in zip(ours, theirs):
        pa = {p.index: p.probability for p in a}
        pb = {p.index: p.probability for p in b}
        assert max(abs(pa[k] - pb[k]) for k in range(10)) < 5e-3   # float16: ~3 digits
    assert np.mean([a[0].index == b[0].index for a, b in zip(ours, theirs)]) >= 0.99
    png = tmp_path / "digit.png"
    images[0].save(png)
    assert inference_main(["classify", str(out), str(png), "--json"]) == 0
    assert str(mnist_test.labels[0]) in capsys.readouterr().out
    assert inference_main(["bench", str(out), "--batch", "2", "--seconds", "0.2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["rows"][0]["batch"] == 2


def _check_set(trained_lenet, count=120):
    meta = {p.key: p.value for p in onnx.load(str(trained_lenet.onnx)).metadata_props}
    return load_calibration(trained_lenet.dataset, CaffeTransform.from_metadata(meta), count)


def test_fp16_check_says_so_where_no_provider_runs_it(trained_lenet, monkeypatch):
    """A machine whose ONNX Runtime has no float16 kernel for an op: the file is still made,
    the check is reported as not run, with the provider's reason."""
    import converter.half as half

    def refuse(data, provider="CPUExecutionProvider"):
        raise RuntimeError("[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Could not find an "
                           "implementation for Conv(11) node with name 'conv1'\nmore")
    monkeypatch.setattr(half, "session", refuse)
    result = export_fp16(trained_lenet.onnx.read_bytes(), _check_set(trained_lenet))
    assert result.agreement is None
    assert result.note.startswith("fp16 self-check not run")
    assert "CPUExecutionProvider: [ONNXRuntimeError] : 9 : NOT_IMPLEMENTED" in result.note
    assert "more" not in result.note and "check it on the GPU" in result.note
    assert onnx.load_from_string(result.data).graph.initializer[0].data_type == onnx.TensorProto.FLOAT16


def test_fp16_check_refuses_a_model_that_disagrees(trained_lenet, monkeypatch):
    """Break the fp16 model (the first conv's weights negated) and the check refuses it."""
    import converter.half as half
    original = half.convert_fp16

    def broken(model: bytes) -> bytes:
        proto = onnx.load_from_string(original(model))
        conv = next(n for n in proto.graph.node if n.op_type == "Conv")
        weight = next(t for t in proto.graph.initializer if t.name == conv.input[1])
        values = onnx.numpy_helper.to_array(weight)
        weight.CopyFrom(onnx.numpy_helper.from_array(-values, weight.name))
        return proto.SerializeToString()
    monkeypatch.setattr(half, "convert_fp16", broken)
    with pytest.raises(ConverterError) as caught:
        export_fp16(trained_lenet.onnx.read_bytes(), _check_set(trained_lenet),
                    where="lenet-fp16.onnx")
    message = str(caught.value)
    rate = float(re.search(r"fp16 vs fp32 top-1 agreement ([\d.]+) % \((\d+)/120", message).group(1))
    assert rate < 99.0 and "lenet-fp16.onnx" in message and "nothing was written" in message


def test_fp16_export_refuses_values_beyond_float16_naming_the_node(trained_lenet, monkeypatch):
    """Inputs 100,000 times too large push LeNet's conv outputs past
    65504: the range check stops the export naming the node, though ONNX Runtime's CPU
    provider (float32 inside) would have agreed; the agreement check is never reached."""
    import converter.half as half
    good = _check_set(trained_lenet)
    large = CalibrationSet(good.images * 100_000, good.labels, good.source, good.total)
    monkeypatch.setattr(half, "top1_agreement", lambda *a, **k: pytest.fail("not reached"))
    with pytest.raises(ConverterError) as caught:
        export_fp16(trained_lenet.onnx.read_bytes(), large, where="lenet-fp16.onnx")
    message = str(caught.value)
    peaks = [float(v) for v in re.findall(r"node '/model/\w+/\w+' \(\S+\) reaches ([\d.e+]+)",
                                           message)]
    assert len(peaks) == 3 and peaks == sorted(peaks, reverse=True) and peaks[-1] > 65504, message
    assert "65504" in message and "nothing was written" in message
    checked = half.float16_range(trained_lenet.onnx.read_bytes(), good.images)
    assert checked.over == []
    assert np.array_equal(checked.top1, predict(session(trained_lenet.onnx.read_bytes()), good.images))


@pytest.mark.gpu
@pytest.mark.skipif(not any(__import__("pathlib").Path(p).exists()
                            for p in ("/dev/nvidiactl", "/dev/nvidia0", "/dev/dxg")),
                    reason="no CUDA GPU here")
def test_fp16_checked_on_cuda_where_a_gpu_is(trained_lenet, mnist_test):
    """On a GPU machine the self-check runs on CUDA, and inference's CUDA provider runs the file."""
    from inference import Classifier
    result = export_fp16(trained_lenet.onnx.read_bytes(), _check_set(trained_lenet))
    assert result.agreement is not None and result.agreement.rate >= 0.99
    assert result.agreement.provider == "CUDAExecutionProvider"
    path = trained_lenet.job / "fp16-gpu.onnx"
    path.write_bytes(result.data)
    images = [Image.fromarray(255 - d) for d in mnist_test.images[:64]]
    cuda = [r[0].index for r in Classifier(path, provider="cuda").classify(images)]
    cpu = [r[0].index for r in Classifier(trained_lenet.onnx, provider="cpu").classify(images)]
    assert np.mean(np.equal(cuda, cpu)) >= 0.98


@pytest.mark.parametrize("region", ["ACROSS_CHANNELS", "WITHIN_CHANNEL"])
def test_fp16_lrn_stays_inside_float16_for_large_activations(tmp_path, region):
    """A trained GoogLeNet's first LRN sees activations of several hundred: x^2 overflows
    float16 above 256. Evaluated in float16 (ONNX's NumPy reference, no upcasting), the
    export must stay finite and within float16's precision of float32."""
    net = parse_net(f'''name: "lrn" input: "data"
        input_shape {{ dim: 2 dim: 12 dim: 5 dim: 7 }}
        layer {{ name: "norm" type: "LRN" bottom: "data" top: "norm"
                lrn_param {{ local_size: 5 alpha: 0.0001 beta: 0.75 norm_region: {region} }} }}''')
    model = build_model(net).eval()
    export_onnx(model, tmp_path / "lrn.onnx", output="norm")
    half = onnx.load_from_string(convert_fp16((tmp_path / "lrn.onnx").read_bytes()))
    onnx.checker.check_model(half, full_check=True)    # topologically sorted, valid
    assert any(n.op_type == "Mul" for n in half.graph.node)
    x = np.random.default_rng(3).uniform(-1500, 1500, (2, 12, 5, 7)).astype(np.float32)
    got = ReferenceEvaluator(half).run(None, {"data": x})[0]
    want = model(data=torch.from_numpy(x)).blobs["norm"].detach().numpy()
    assert np.isfinite(got).all()
    assert np.abs(got - want).max() <= 4e-3 * np.abs(want).max()

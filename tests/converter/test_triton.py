"""converter onnx --triton REPO_DIR: config.pbtxt parsed with Triton's own ModelConfig schema
(tritonclient) and every field checked against the ONNX model; the labels file; fixed-batch
models; atomic replacement."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from converter import ConverterError
from converter.__main__ import main
from converter.triton import write_triton

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2  # Triton's own schema (the test extra)

ONNX_TO_TRITON = {TensorProto.FLOAT: model_config_pb2.TYPE_FP32,
                  TensorProto.FLOAT16: model_config_pb2.TYPE_FP16,
                  TensorProto.INT64: model_config_pb2.TYPE_INT64}


def parse_config(folder):
    """config.pbtxt through Triton's schema: an unknown field or a bad value fails here."""
    return text_format.Parse((folder / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def dims(value_info):
    return [d.dim_value if d.HasField("dim_value") else -1
            for d in value_info.type.tensor_type.shape.dim]


def check_against_onnx(config, folder, model_path):
    """Every field of `config` against the ONNX file it serves."""
    proto = onnx.load(str(model_path))
    assert (folder / "1" / "model.onnx").read_bytes() == model_path.read_bytes()
    assert config.name == folder.name
    assert config.platform == "onnxruntime_onnx" and config.backend == "onnxruntime"
    assert config.HasField("dynamic_batching")
    batched = config.max_batch_size > 0
    for ours, theirs in ((config.input, proto.graph.input), (config.output, proto.graph.output)):
        assert [t.name for t in ours] == [v.name for v in theirs]
        for tensor, value in zip(ours, theirs):
            assert tensor.data_type == ONNX_TO_TRITON[value.type.tensor_type.elem_type]
            full = dims(value)
            assert list(tensor.dims) == (full[1:] if batched else full)
    meta = {p.key: p.value for p in proto.metadata_props}
    labels = json.loads(meta.get("labels", "[]"))
    labelled = [t for t in config.output if t.label_filename]
    if labels:
        assert [t.name for t in labelled] == [meta["output_name"]]
        lines = (folder / labelled[0].label_filename).read_text().splitlines()
        assert lines == labels and labelled[0].dims[-1] == len(lines)
    else:
        assert not labelled and not (folder / "labels.txt").exists()
    return proto


def test_lenet_repository(trained_lenet, tmp_path, capsys):
    repo, out = tmp_path / "repo", tmp_path / "lenet.onnx"
    assert main(["onnx", "--job", str(trained_lenet.job), "--out", str(out),
                 "--triton", str(repo)]) == 0
    assert "wrote Triton model 'lenet'" in capsys.readouterr().out
    folder = repo / "lenet"
    config = parse_config(folder)
    assert config.max_batch_size == 32
    proto = check_against_onnx(config, folder, out)
    assert list(config.input[0].dims) == [1, 28, 28] and list(config.output[0].dims) == [10]
    assert dims(proto.graph.input[0])[0] == -1          # the batch dimension is dynamic
    assert (folder / "labels.txt").read_text() == "".join(f"{d}\n" for d in range(10))
    assert sorted(p.name for p in repo.iterdir()) == ["lenet"]


def test_named_int8_model_with_batch_size(trained_lenet, tmp_path, capsys):
    repo, out = tmp_path / "repo", tmp_path / "m.onnx"
    assert main(["onnx", "--job", str(trained_lenet.job), "--out", str(out), "--int8",
                 "--calibrate", str(trained_lenet.dataset), "--calibration-images", "100",
                 "--triton", str(repo), "--triton-name", "digits_int8",
                 "--max-batch-size", "8"]) == 0
    config = parse_config(repo / "digits_int8")
    assert config.max_batch_size == 8
    check_against_onnx(config, repo / "digits_int8", out)
    (repo / "digits_int8" / "stale.txt").write_text("from an older export")
    assert main(["onnx", "--job", str(trained_lenet.job), "--out", str(out), "--triton",
                 str(repo), "--triton-name", "digits_int8", "--max-batch-size", "0"]) == 0
    config = parse_config(repo / "digits_int8")        # replaced whole
    assert config.max_batch_size == 0 and list(config.input[0].dims) == [-1, 1, 28, 28]
    check_against_onnx(config, repo / "digits_int8", out)
    assert not (repo / "digits_int8" / "stale.txt").exists()
    assert sorted(p.name for p in repo.iterdir()) == ["digits_int8"]


def fixed_model(path, batch=3, elem=TensorProto.FLOAT16, labels=None):
    """A float16 classifier with a fixed batch of `batch`, 2 x 5 x 7 inputs, 4 classes."""
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal((2, 4)).astype(np.float16), "w")
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
         helper.make_node("Flatten", ["p"], ["f"]), helper.make_node("MatMul", ["f", "w"], ["s"]),
         helper.make_node("Softmax", ["s"], ["probs"], axis=1)], "fixed",
        [helper.make_tensor_value_info("x", elem, [batch, 2, 5, 7])],
        [helper.make_tensor_value_info("probs", elem, [batch, 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    if labels is not None:
        model.metadata_props.add(key="labels", value=json.dumps(labels))
        model.metadata_props.add(key="output_name", value="probs")
    onnx.save(model, path)
    return path


def test_fixed_batch_and_fp16_types(tmp_path):
    path = fixed_model(tmp_path / "fixed.onnx", labels=["a", "b", "c", "d"])
    report = write_triton(path, tmp_path / "repo")
    assert report.max_batch_size == 0 and report.labels == 4
    config = parse_config(tmp_path / "repo" / "fixed")
    assert list(config.input[0].dims) == [3, 2, 5, 7]
    assert config.input[0].data_type == model_config_pb2.TYPE_FP16
    check_against_onnx(config, tmp_path / "repo" / "fixed", path)
    with pytest.raises(ConverterError, match="needs a dynamic first .batch. dimension"):
        write_triton(path, tmp_path / "repo2", max_batch_size=4)
    assert not (tmp_path / "repo2").exists()


def test_refusals_leave_the_repository_alone(tmp_path):
    path = fixed_model(tmp_path / "m.onnx", labels=["a", "b", "c"])   # 3 labels, 4 classes
    repo = tmp_path / "repo"
    (repo / "m").mkdir(parents=True)
    (repo / "m" / "config.pbtxt").write_text("name: \"m\"\n")
    with pytest.raises(ConverterError, match="3 labels but its output 'probs' is not 3 classes"):
        write_triton(path, repo)
    with pytest.raises(ConverterError, match="cannot name a Triton model folder"):
        write_triton(path, repo, name="../up")
    assert [p.name for p in repo.iterdir()] == ["m"]
    assert (repo / "m" / "config.pbtxt").read_text() == "name: \"m\"\n"
    (repo / "f").write_text("a file")
    path = fixed_model(tmp_path / "f.onnx")
    with pytest.raises(ConverterError, match="exists and is not a folder"):
        write_triton(path, repo, name="f")

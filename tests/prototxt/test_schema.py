"""Our caffe.proto against the reference tables (every row), and caffe_pb2.py against caffe.proto."""
from __future__ import annotations

import csv

import numpy as np
import pytest
from google.protobuf import descriptor_pb2

from prototxt import caffe_pb2, io, schema

POOL = caffe_pb2.DESCRIPTOR.pool
# The schema as protoc compiled it: labels, types, defaults and options exactly as declared.
FILE = descriptor_pb2.FileDescriptorProto.FromString(caffe_pb2.DESCRIPTOR.serialized_pb)
FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {FDP.TYPE_DOUBLE: "double", FDP.TYPE_FLOAT: "float", FDP.TYPE_INT64: "int64",
           FDP.TYPE_UINT64: "uint64", FDP.TYPE_INT32: "int32", FDP.TYPE_UINT32: "uint32",
           FDP.TYPE_BOOL: "bool", FDP.TYPE_STRING: "string", FDP.TYPE_BYTES: "bytes"}
LABELS = {FDP.LABEL_OPTIONAL: "optional", FDP.LABEL_REPEATED: "repeated",
          FDP.LABEL_REQUIRED: "required"}


def _declared_fields() -> dict[str, dict[str, descriptor_pb2.FieldDescriptorProto]]:
    """message path ("Outer.Inner") -> field name -> its declaration."""
    out = {}

    def walk(msg, prefix):
        name = prefix + msg.name
        out[name] = {f.name: f for f in msg.field}
        for nested in msg.nested_type:
            walk(nested, name + ".")

    for msg in FILE.message_type:
        walk(msg, "")
    return out


DECLARED = _declared_fields()


# Fields that NVIDIA Caffe 0.15-0.17 added (DIGITS 6.1's Caffe); everything else must be BVLC's.
NVCAFFE_FIELDS = {
    "SolverParameter": {"max_epoch", "epoch_size", "test_epoch_size", "test_interval_epoch",
                        "per_parameter_reduce"},
    "LayerParameter": {"detectnet_groundtruth_param", "detectnet_augmentation_param"},
    "TransformationParameter": {"use_gpu_transform"},
    "BatchNormParameter": {"scale_filler", "bias_filler", "scale_bias", "engine"},
    "BlobProto": {"raw_data_type", "raw_diff_type", "raw_data", "raw_diff"},
    "ConvolutionParameter": {"cudnn_convolution_algo_seeker"},
    "DataParameter": {"threads", "parser_threads", "cache", "shuffle"},
}
NVCAFFE_MESSAGES = {"DetectNetGroundTruthParameter", "DetectNetGroundTruthParameter.ClassMapping",
                    "DetectNetAugmentationParameter"}
# Fields and messages of the fork layers (caffe.proto's "Fork" comments say whose each is).
FORK_FIELDS = {
    "LayerParameter": {"shuffle_channel_param", "relu6_param", "upsample_param", "interp_param"},
    "PoolingParameter": {"torch_pooling", "ceil_mode"},  # torch_pooling: NVCaffe 0.16.5+
}
FORK_MESSAGES = {"ReLU6Parameter", "ShuffleChannelParameter", "UpsampleParameter",
                 "InterpParameter"}
# Field numbers of the additions: the fork's own where free in BVLC's and NVIDIA Caffe 0.17's
# schema, else 10000 + the fork's number.
FORK_NUMBERS = {("LayerParameter", "shuffle_channel_param"): 164,
                ("LayerParameter", "relu6_param"): 100000,
                ("LayerParameter", "upsample_param"): 10149,  # YOLO forks: 149 (NVCaffe's debug)
                ("LayerParameter", "interp_param"): 10143,  # DeepLab: 143 (BVLC's input_param)
                ("PoolingParameter", "torch_pooling"): 40,
                ("PoolingParameter", "ceil_mode"): 10013}  # PR #3057: 13 (BVLC's round_mode)


def _rows(reference_dir, name):
    with open(reference_dir / "caffe" / name, newline="") as f:
        return list(csv.DictReader(f, delimiter="\t"))


def _type_name(field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type in SCALARS:
        return SCALARS[field.type]
    kind = "enum" if field.type == FDP.TYPE_ENUM else "message"
    return f"{kind}:" + field.type_name.removeprefix(".caffe.")


def _default_matches(field: descriptor_pb2.FieldDescriptorProto, text: str) -> bool:
    if not field.HasField("default_value") or text == "":
        return field.HasField("default_value") == (text != "")
    value = field.default_value
    if field.type == FDP.TYPE_FLOAT:
        return np.float32(float(value)) == np.float32(float(text))
    if field.type == FDP.TYPE_DOUBLE:
        return float(value) == float(text)
    if field.type in (FDP.TYPE_INT32, FDP.TYPE_INT64, FDP.TYPE_UINT32, FDP.TYPE_UINT64):
        return int(value) == int(text)
    return value == text  # enum value names, "true"/"false", strings


def test_every_field_row_matches(reference_dir):
    rows = _rows(reference_dir, "caffe-proto-fields.tsv")
    assert len(rows) > 400
    problems = []
    for row in rows:
        where = f"{row['message']}.{row['field']}"
        field = DECLARED.get(row["message"], {}).get(row["field"])
        if field is None:
            problems.append(f"{where}: missing")
            continue
        if field.number != int(row["number"]):
            problems.append(f"{where}: number {field.number} != {row['number']}")
        if LABELS[field.label] != row["label"]:
            problems.append(f"{where}: label {LABELS[field.label]} != {row['label']}")
        if _type_name(field) != row["type"]:
            problems.append(f"{where}: type {_type_name(field)} != {row['type']}")
        if not _default_matches(field, row["default"]):
            problems.append(f"{where}: default {field.default_value!r} != {row['default']!r}")
        packed = field.options.packed
        if packed != (row["options"] == "packed"):
            problems.append(f"{where}: packed={packed}, table says {row['options']!r}")
    assert not problems, "\n".join(problems)


def test_every_enum_row_matches(reference_dir):
    rows = _rows(reference_dir, "caffe-proto-enums.tsv")
    assert len(rows) > 100
    problems = []
    for row in rows:
        enum = POOL.FindEnumTypeByName("caffe." + row["enum"])
        value = enum.values_by_name.get(row["value"])
        if value is None or value.number != int(row["number"]):
            problems.append(f"{row['enum']}.{row['value']}: {value and value.number} != {row['number']}")
    assert not problems, "\n".join(problems)


def test_nothing_beyond_bvlc_but_the_marked_nvcaffe_fields(reference_dir):
    table: dict[str, set[str]] = {}
    for row in _rows(reference_dir, "caffe-proto-fields.tsv"):
        table.setdefault(row["message"], set()).add(row["field"])

    extras = {}
    for name, fields in DECLARED.items():
        if name in NVCAFFE_MESSAGES or name in FORK_MESSAGES:
            continue
        assert name in table, f"message {name} is neither BVLC's nor marked NVCaffe or fork"
        unknown = set(fields) - table[name]
        if unknown:
            extras[name] = unknown
    expected = {m: NVCAFFE_FIELDS.get(m, set()) | FORK_FIELDS.get(m, set())
                for m in set(NVCAFFE_FIELDS) | set(FORK_FIELDS)}
    assert extras == expected


def test_fork_field_numbers(reference_dir):
    """The fork fields keep their numbers and collide with no BVLC field number."""
    bvlc: dict[str, set[int]] = {}
    for row in _rows(reference_dir, "caffe-proto-fields.tsv"):
        bvlc.setdefault(row["message"], set()).add(int(row["number"]))
    for (message, field), number in FORK_NUMBERS.items():
        assert DECLARED[message][field].number == number
        assert number not in bvlc[message], f"{message}.{field} = {number} collides with BVLC"


def test_fork_fields_parse_from_text():
    text = """
    layer { name: "r" type: "ReLU6" bottom: "x" top: "x" relu6_param { negative_slope: 0.1 } }
    layer { name: "s" type: "ShuffleChannel" bottom: "x" top: "s" shuffle_channel_param { group: 3 } }
    layer { name: "u" type: "Upsample" bottom: "s" top: "u" upsample_param { scale: 2 } }
    layer { name: "i" type: "Interp" bottom: "u" top: "i"
      interp_param { zoom_factor: 2 shrink_factor: 3 height: 5 width: 7 pad_beg: -1 pad_end: -2 } }
    layer { name: "p" type: "Pooling" bottom: "i" top: "p"
      pooling_param { kernel_size: 2 torch_pooling: true ceil_mode: false round_mode: FLOOR } }
    """
    net = io.parse_text(text, caffe_pb2.NetParameter())
    assert net.layer[0].relu6_param.negative_slope == pytest.approx(0.1)
    assert net.layer[1].shuffle_channel_param.group == 3
    assert net.layer[2].upsample_param.scale == 2
    interp = net.layer[3].interp_param
    assert (interp.zoom_factor, interp.shrink_factor, interp.height, interp.width,
            interp.pad_beg, interp.pad_end) == (2, 3, 5, 7, -1, -2)
    pool = net.layer[4].pooling_param
    assert pool.torch_pooling and not pool.ceil_mode and pool.round_mode == pool.FLOOR
    defaults = caffe_pb2.LayerParameter()
    assert defaults.pooling_param.ceil_mode and not defaults.pooling_param.torch_pooling
    assert defaults.upsample_param.scale == 1 and defaults.shuffle_channel_param.group == 1
    assert defaults.interp_param.zoom_factor == 1 and defaults.interp_param.shrink_factor == 1


def test_nvcaffe_fields_parse_from_text():
    text = """
    layer { name: "bn" type: "BatchNorm" bottom: "x" top: "x"
      batch_norm_param { scale_filler { type: "constant" value: 1 } bias_filler { value: 0 } engine: CUDNN } }
    layer { name: "data" type: "Data" top: "data"
      data_param { threads: 4 parser_threads: 2 cache: true shuffle: true }
      transform_param { use_gpu_transform: true } }
    """
    net = io.parse_text(text, caffe_pb2.NetParameter())
    assert net.layer[0].batch_norm_param.scale_filler.value == 1
    assert net.layer[1].data_param.threads == 4
    solver = io.parse_text("max_epoch: 3 test_interval_epoch: 0.5 weights: 'a.caffemodel'",
                           caffe_pb2.SolverParameter())
    assert solver.max_epoch == 3 and list(solver.weights) == ["a.caffemodel"]


def test_generated_module_matches_schema():
    pytest.importorskip("grpc_tools", reason="grpcio-tools (test extra) runs protoc")
    fresh = descriptor_pb2.FileDescriptorSet.FromString(schema.descriptor_set_from_proto()).file[0]
    shipped = descriptor_pb2.FileDescriptorProto.FromString(caffe_pb2.DESCRIPTOR.serialized_pb)
    for desc in (fresh, shipped):  # --python_out drops json_name and rounds float defaults
        _normalize(desc.message_type)
    assert shipped == fresh, "caffe_pb2.py is stale: run python -m prototxt.schema --regenerate"


def test_generated_module_has_no_runtime_version_stamp():
    # The stamp would make the module refuse protobuf releases older than the protoc used.
    assert "ValidateProtobufRuntimeVersion" not in schema.MODULE.read_text()


def _normalize(messages) -> None:
    for msg in messages:
        for field in msg.field:
            field.ClearField("json_name")
            if field.type == FDP.TYPE_FLOAT and field.HasField("default_value"):
                field.default_value = repr(float(np.float32(float(field.default_value))))
        _normalize(msg.nested_type)

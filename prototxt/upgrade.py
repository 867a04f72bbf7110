"""Old Caffe formats, upgraded once at read time (as Caffe's upgrade_proto.cpp does).

| old form | becomes | Caffe's name for it |
|---|---|---|
| V1 nets: `layers { type: CONVOLUTION blobs_lr: 1 weight_decay: 1 }` (text or binary) | `layer { type: "Convolution" param { lr_mult: 1 decay_mult: 1 } }` | UpgradeV1Net |
| `scale`, `mean_file`, `crop_size`, `mirror` in data_param / image_data_param / window_data_param | `transform_param` | UpgradeNetDataTransformation |
| `input_dim: N C H W` (4 per input) | `input_shape { dim: N dim: C dim: H dim: W }` | (part of UpgradeNetInput) |
| BatchNorm `param { lr_mult: 0 }` x3 | removed: the statistics are not learned | UpgradeNetBatchNorm |
| solver `solver_type: NESTEROV` (enum) | `type: "Nesterov"` (string) | UpgradeSolverType |

Net-level `input` + `input_shape` are kept as they are: DIGITS writes deploy files that way and
the converter reads them as Input layers. Every upgrade logs one line naming the file.
V0 nets (`layers { layer { ... } }`, Caffe before 2014) are refused with a clear error.
"""
from __future__ import annotations

import logging

from . import caffe_pb2
from .errors import PrototxtError
from .schema import is_repeated

log = logging.getLogger("prototxt.upgrade")

V1_TYPE_NAMES = {
    "NONE": "", "ABSVAL": "AbsVal", "ACCURACY": "Accuracy", "ARGMAX": "ArgMax", "BNLL": "BNLL",
    "CONCAT": "Concat", "CONTRASTIVE_LOSS": "ContrastiveLoss", "CONVOLUTION": "Convolution",
    "DECONVOLUTION": "Deconvolution", "DATA": "Data", "DROPOUT": "Dropout",
    "DUMMY_DATA": "DummyData", "EUCLIDEAN_LOSS": "EuclideanLoss", "ELTWISE": "Eltwise",
    "EXP": "Exp", "FLATTEN": "Flatten", "HDF5_DATA": "HDF5Data", "HDF5_OUTPUT": "HDF5Output",
    "HINGE_LOSS": "HingeLoss", "IM2COL": "Im2col", "IMAGE_DATA": "ImageData",
    "INFOGAIN_LOSS": "InfogainLoss", "INNER_PRODUCT": "InnerProduct", "LRN": "LRN",
    "MEMORY_DATA": "MemoryData", "MULTINOMIAL_LOGISTIC_LOSS": "MultinomialLogisticLoss",
    "MVN": "MVN", "POOLING": "Pooling", "POWER": "Power", "RELU": "ReLU", "SIGMOID": "Sigmoid",
    "SIGMOID_CROSS_ENTROPY_LOSS": "SigmoidCrossEntropyLoss", "SILENCE": "Silence",
    "SOFTMAX": "Softmax", "SOFTMAX_LOSS": "SoftmaxWithLoss", "SPLIT": "Split", "SLICE": "Slice",
    "TANH": "TanH", "WINDOW_DATA": "WindowData", "THRESHOLD": "Threshold",
}

SOLVER_TYPE_NAMES = {"SGD": "SGD", "NESTEROV": "Nesterov", "ADAGRAD": "AdaGrad",
                     "RMSPROP": "RMSProp", "ADADELTA": "AdaDelta", "ADAM": "Adam"}

_DATA_PARAMS = ("data_param", "image_data_param", "window_data_param")
_TRANSFORM_FIELDS = ("scale", "mean_file", "crop_size", "mirror")
# V1 fields copied one to one onto LayerParameter fields of the same name.
_V1_SAME_NAME = [f.name for f in caffe_pb2.V1LayerParameter.DESCRIPTOR.fields
                 if f.name.endswith("_param") or f.name in ("bottom", "top", "name", "include",
                                                             "exclude", "blobs", "loss_weight")]


def upgrade_net(net: caffe_pb2.NetParameter, source: str = "<net>") -> list[str]:
    """Upgrade `net` in place; return one note per upgrade applied (each is also logged)."""
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        log.info("%s: %s", source, text)

    if len(net.layers) and len(net.layer):
        raise PrototxtError("the net has both 'layer' and V1 'layers' entries; use one format", source)
    if any(v1.HasField("layer") for v1 in net.layers):
        raise PrototxtError("V0 network format (layers { layer { ... } }) predates Caffe's 2014 "
                            "format and is not supported; upgrade it with Caffe's upgrade_net_proto_text",
                            source, field="layers.layer")
    moved = _upgrade_data_transformation(list(net.layers) + list(net.layer))
    if moved:
        note(f"moved {moved} deprecated data-layer transform field(s) to transform_param")
    if len(net.layers):
        count = len(net.layers)
        for v1 in net.layers:
            net.layer.add().CopyFrom(_v1_to_layer(v1, source))
        net.ClearField("layers")
        note(f"upgraded {count} V1 layers (layers {{ type: ENUM }}) to layer {{ type: \"Name\" }}")
    if len(net.input_dim):
        _upgrade_input_dim(net, source)
        note("upgraded input_dim to input_shape")
    stripped = _upgrade_batch_norm(net)
    if stripped:
        note(f"removed lr_mult 0 param specs from {stripped} BatchNorm layer(s)")
    return notes


def upgrade_solver(solver: caffe_pb2.SolverParameter, source: str = "<solver>") -> list[str]:
    """Upgrade `solver` in place (solver_type enum -> type string); return the notes."""
    if not solver.HasField("solver_type"):
        return []
    old = caffe_pb2.SolverParameter.SolverType.Name(solver.solver_type)
    new = SOLVER_TYPE_NAMES[old]
    if solver.HasField("type") and solver.type != new:
        raise PrototxtError(f"solver_type: {old} and type: \"{solver.type}\" disagree; remove "
                            "solver_type (deprecated)", source, field="solver_type")
    solver.type = new
    solver.ClearField("solver_type")
    text = f"upgraded solver_type: {old} to type: \"{new}\""
    log.info("%s: %s", source, text)
    return [text]


def _upgrade_data_transformation(layers: list) -> int:
    moved = 0
    for layer in layers:
        for pname in _DATA_PARAMS:
            if not layer.HasField(pname):
                continue
            param = getattr(layer, pname)
            for fname in _TRANSFORM_FIELDS:
                if param.HasField(fname):
                    setattr(layer.transform_param, fname, getattr(param, fname))
                    param.ClearField(fname)
                    moved += 1
    return moved


def _v1_to_layer(v1: caffe_pb2.V1LayerParameter, source: str) -> caffe_pb2.LayerParameter:
    layer = caffe_pb2.LayerParameter()
    for fname in _V1_SAME_NAME:
        value = getattr(v1, fname)
        field = caffe_pb2.V1LayerParameter.DESCRIPTOR.fields_by_name[fname]
        if is_repeated(field):
            if len(value):
                getattr(layer, fname).extend(value)
        elif v1.HasField(fname):
            if field.type == field.TYPE_MESSAGE:
                getattr(layer, fname).CopyFrom(value)
            else:
                setattr(layer, fname, value)
    if v1.HasField("type"):
        enum_name = caffe_pb2.V1LayerParameter.LayerType.Name(v1.type)
        if not V1_TYPE_NAMES[enum_name]:
            raise PrototxtError(f"V1 layer '{v1.name}' has type NONE", source, field=v1.name)
        layer.type = V1_TYPE_NAMES[enum_name]
    n_specs = max(len(v1.param), len(v1.blob_share_mode), len(v1.blobs_lr), len(v1.weight_decay))
    for i in range(n_specs):
        spec = layer.param.add()
        if i < len(v1.param):
            spec.name = v1.param[i]
        if i < len(v1.blob_share_mode):
            spec.share_mode = v1.blob_share_mode[i]
        if i < len(v1.blobs_lr):
            spec.lr_mult = v1.blobs_lr[i]
        if i < len(v1.weight_decay):
            spec.decay_mult = v1.weight_decay[i]
    return layer


def _upgrade_input_dim(net: caffe_pb2.NetParameter, source: str) -> None:
    if len(net.input_shape):
        raise PrototxtError("the net sets both input_dim and input_shape", source, field="input_dim")
    dims = list(net.input_dim)
    if len(dims) != 4 * len(net.input):
        raise PrototxtError(f"input_dim has {len(dims)} values; expected 4 per input "
                            f"({len(net.input)} inputs)", source, field="input_dim")
    for i in range(len(net.input)):
        net.input_shape.add().dim.extend(dims[4 * i: 4 * i + 4])
    net.ClearField("input_dim")


def _upgrade_batch_norm(net: caffe_pb2.NetParameter) -> int:
    count = 0
    for layer in net.layer:
        if layer.type == "BatchNorm" and len(layer.param) == 3 and all(
                p.HasField("lr_mult") and p.lr_mult == 0 for p in layer.param):
            layer.ClearField("param")
            count += 1
    return count

"""Old Caffe formats, upgraded once at read time (as Caffe's upgrade_proto.cpp does).

| old form | becomes | Caffe's name for it |
|---|---|---|
| V0 nets: `layers { layer { name: "conv1" type: "conv" kernelsize: 11 } bottom: "data" }` (text or binary, Caffe before 2014) | V1 `layers { type: CONVOLUTION convolution_param { kernel_size: 11 } }`, then as below; a `"padding"` layer becomes the `pad` of the conv/pool layer it feeds | UpgradeV0Net (UpgradeV0PaddingLayers, UpgradeV0LayerParameter, UpgradeV0LayerType) |
| V1 nets: `layers { type: CONVOLUTION blobs_lr: 1 weight_decay: 1 }` (text or binary) | `layer { type: "Convolution" param { lr_mult: 1 decay_mult: 1 } }` | UpgradeV1Net |
| `scale`, `mean_file`, `crop_size`, `mirror` in data_param / image_data_param / window_data_param | `transform_param` | UpgradeNetDataTransformation |
| `input_dim: N C H W` (4 per input) | `input_shape { dim: N dim: C dim: H dim: W }` | (part of UpgradeNetInput) |
| BatchNorm `param { lr_mult: 0 }` x3 | removed: the statistics are not learned | UpgradeNetBatchNorm |
| solver `solver_type: NESTEROV` (enum) | `type: "Nesterov"` (string) | UpgradeSolverType |

Net-level `input` + `input_shape` are kept as they are: DIGITS writes deploy files that way and
the converter reads them as Input layers. Every upgrade logs one line naming the file.

V0 coverage: every type string of Caffe's UpgradeV0LayerType (`V0_TYPES`) and every
V0LayerParameter field Caffe maps (`V0_FIELDS`, field -> type -> V1 parameter). As in Caffe, a
field set on a layer type it does not apply to (and `new_num`/`new_channels`, which Caffe never
mapped) is dropped with a warning; an unknown type string, a layer without a type, a bottom no
earlier layer produces, and a padding layer feeding anything but one-input conv/pool are errors.
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

# V0 nets (Caffe before 2014): `layers { layer { name: "conv1" type: "conv" num_output: 96
# kernelsize: 11 ... } bottom: "data" top: "conv1" }`. Caffe's UpgradeV0Net first folds each
# "padding" layer into the conv/pool layer it feeds (UpgradeV0PaddingLayers), then maps every V0
# type string and field onto a V1 layer (UpgradeV0LayerParameter); the V1 upgrade follows.

V0_TYPES = {  # V0 type string -> V1 LayerType enum name (UpgradeV0LayerType)
    "accuracy": "ACCURACY", "bnll": "BNLL", "concat": "CONCAT", "conv": "CONVOLUTION",
    "data": "DATA", "dropout": "DROPOUT", "euclidean_loss": "EUCLIDEAN_LOSS",
    "flatten": "FLATTEN", "hdf5_data": "HDF5_DATA", "hdf5_output": "HDF5_OUTPUT",
    "im2col": "IM2COL", "images": "IMAGE_DATA", "infogain_loss": "INFOGAIN_LOSS",
    "innerproduct": "INNER_PRODUCT", "lrn": "LRN",
    "multinomial_logistic_loss": "MULTINOMIAL_LOGISTIC_LOSS", "pool": "POOLING", "relu": "RELU",
    "sigmoid": "SIGMOID", "softmax": "SOFTMAX", "softmax_loss": "SOFTMAX_LOSS", "split": "SPLIT",
    "tanh": "TANH", "window_data": "WINDOW_DATA",
}
V0_PADDING = "padding"  # folded into the next layer's pad; never a layer of its own
_ANY = "*"
# V0LayerParameter field -> {V0 type (or _ANY): "v1_param.field"} (UpgradeV0LayerParameter).
V0_FIELDS: dict[str, dict[str, str]] = {
    "num_output": {"conv": "convolution_param.num_output",
                   "innerproduct": "inner_product_param.num_output"},
    "biasterm": {"conv": "convolution_param.bias_term",
                 "innerproduct": "inner_product_param.bias_term"},
    "weight_filler": {"conv": "convolution_param.weight_filler",
                      "innerproduct": "inner_product_param.weight_filler"},
    "bias_filler": {"conv": "convolution_param.bias_filler",
                    "innerproduct": "inner_product_param.bias_filler"},
    "pad": {"conv": "convolution_param.pad", "pool": "pooling_param.pad"},
    "kernelsize": {"conv": "convolution_param.kernel_size", "pool": "pooling_param.kernel_size"},
    "group": {"conv": "convolution_param.group"},
    "stride": {"conv": "convolution_param.stride", "pool": "pooling_param.stride"},
    "pool": {"pool": "pooling_param.pool"},
    "dropout_ratio": {"dropout": "dropout_param.dropout_ratio"},
    "local_size": {"lrn": "lrn_param.local_size"},
    "alpha": {"lrn": "lrn_param.alpha"},
    "beta": {"lrn": "lrn_param.beta"},
    "k": {"lrn": "lrn_param.k"},
    "source": {"data": "data_param.source", "hdf5_data": "hdf5_data_param.source",
               "images": "image_data_param.source", "window_data": "window_data_param.source",
               "infogain_loss": "infogain_loss_param.source"},
    "scale": {_ANY: "transform_param.scale"},
    "meanfile": {_ANY: "transform_param.mean_file"},
    "cropsize": {_ANY: "transform_param.crop_size"},
    "mirror": {_ANY: "transform_param.mirror"},
    "batchsize": {"data": "data_param.batch_size", "hdf5_data": "hdf5_data_param.batch_size",
                  "images": "image_data_param.batch_size",
                  "window_data": "window_data_param.batch_size"},
    "rand_skip": {"data": "data_param.rand_skip", "images": "image_data_param.rand_skip"},
    "shuffle_images": {"images": "image_data_param.shuffle"},
    "new_height": {"images": "image_data_param.new_height"},
    "new_width": {"images": "image_data_param.new_width"},
    "concat_dim": {"concat": "concat_param.concat_dim"},
    "det_fg_threshold": {"window_data": "window_data_param.fg_threshold"},
    "det_bg_threshold": {"window_data": "window_data_param.bg_threshold"},
    "det_fg_fraction": {"window_data": "window_data_param.fg_fraction"},
    "det_context_pad": {"window_data": "window_data_param.context_pad"},
    "det_crop_mode": {"window_data": "window_data_param.crop_mode"},
    "hdf5_output_param": {"hdf5_output": "hdf5_output_param"},
}
# Copied as they are (repeated), or carried by the layer connection itself.
_V0_COPIED = ("name", "type", "blobs", "blobs_lr", "weight_decay")

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
        count, folded = _upgrade_v0(net, source)
        if folded:
            note(f"folded {folded} V0 padding layer(s) into the pad of the conv/pool layer each feeds")
        note(f"upgraded {count} V0 layers (layers {{ layer {{ type: \"conv\" }} }}) to V1 layers")
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


def _upgrade_v0(net: caffe_pb2.NetParameter, source: str) -> tuple[int, int]:
    """V0 `layers` entries -> V1 entries in place (UpgradeV0Net); returns (layers, paddings folded)."""
    entries = list(net.layers)
    for i, entry in enumerate(entries):
        if not entry.HasField("layer"):
            raise PrototxtError(f"layers entry {i + 1} ('{entry.name}') is V1 while others are V0 "
                                "(layers { layer { ... } }); a net uses one format", source,
                                field=entry.name or None)
    entries, folded = _fold_v0_padding(list(net.input), entries, source)
    upgraded = [_v0_to_v1(entry, source) for entry in entries]
    net.ClearField("layers")
    net.layers.extend(upgraded)
    return len(upgraded), folded


def _fold_v0_padding(inputs: list[str], entries: list, source: str) -> tuple[list, int]:
    """Drop V0 "padding" layers; each conv/pool layer fed by one takes its `pad` and its bottom
    (UpgradeV0PaddingLayers)."""
    producer: dict[str, int | None] = {name: None for name in inputs}  # blob -> last producer
    kept, folded = [], 0
    for i, entry in enumerate(entries):
        v0 = entry.layer
        out = None
        if v0.type == V0_PADDING:
            folded += 1
        else:
            out = caffe_pb2.V1LayerParameter()
            out.CopyFrom(entry)
            kept.append(out)
        for j, blob in enumerate(entry.bottom):
            if blob not in producer:
                raise PrototxtError(f"V0 layer '{v0.name}' takes blob '{blob}', which no net input "
                                    "or earlier layer produces", source, field=v0.name)
            src = producer[blob]
            if src is None or entries[src].layer.type != V0_PADDING:
                continue
            pad = entries[src]
            if out is None or v0.type not in ("conv", "pool"):
                raise PrototxtError(f"V0 padding layer '{pad.layer.name}' feeds layer '{v0.name}' of "
                                    f"type '{v0.type}'; Caffe folds padding only into conv and pool "
                                    "layers", source, field=v0.name)
            if len(entry.bottom) != 1 or len(pad.bottom) != 1 or len(pad.top) != 1:
                raise PrototxtError(f"V0 padding layer '{pad.layer.name}' and layer '{v0.name}' must "
                                    "each have one bottom (and the padding one top) to be folded",
                                    source, field=v0.name)
            out.layer.pad = pad.layer.pad
            out.bottom[j] = pad.bottom[0]
        for blob in entry.top:
            producer[blob] = i
    return kept, folded


def _v0_to_v1(entry: caffe_pb2.V1LayerParameter, source: str) -> caffe_pb2.V1LayerParameter:
    """One V0 layer as a V1 layer (UpgradeV0LayerParameter + UpgradeV0LayerType)."""
    v0 = entry.layer
    v1 = caffe_pb2.V1LayerParameter(bottom=entry.bottom, top=entry.top)
    ignored = [f.name for f, _ in entry.ListFields() if f.name not in ("bottom", "top", "layer")]
    if ignored:
        log.warning("%s: V0 layer '%s': %s beside 'layer { }' ignored, as Caffe does", source,
                    v0.name, ", ".join(ignored))
    if v0.HasField("name"):
        v1.name = v0.name
    kind = v0.type
    if not v0.HasField("type"):
        raise PrototxtError(f"V0 layer '{v0.name}' has no type", source, field=v0.name or None)
    if kind not in V0_TYPES:
        raise PrototxtError(f"V0 layer '{v0.name}' has unknown type '{kind}'; V0 types are "
                            f"{', '.join(sorted(V0_TYPES))} and '{V0_PADDING}'", source, field=v0.name)
    v1.type = caffe_pb2.V1LayerParameter.LayerType.Value(V0_TYPES[kind])
    v1.blobs.extend(v0.blobs)
    v1.blobs_lr.extend(v0.blobs_lr)
    v1.weight_decay.extend(v0.weight_decay)
    for fd, value in v0.ListFields():
        if fd.name in _V0_COPIED:
            continue
        targets = V0_FIELDS.get(fd.name, {})
        path = targets.get(kind, targets.get(_ANY))
        if path is None:
            log.warning("%s: V0 layer '%s' (%s): field '%s' does not apply to this type; dropped, "
                        "as Caffe does", source, v0.name, kind, fd.name)
            continue
        _set_path(v1, path, fd, value)
    return v1


def _set_path(message, path: str, field, value) -> None:
    """Set `message.a.b` (dotted `path`) from the V0 `field`'s value: enums by name, messages
    copied, repeated targets appended."""
    *parents, leaf = path.split(".")
    for name in parents:
        message = getattr(message, name)
    target = message.DESCRIPTOR.fields_by_name[leaf]
    if field.type == field.TYPE_ENUM:
        value = target.enum_type.values_by_name[field.enum_type.values_by_number[value].name].number
    if field.type == field.TYPE_MESSAGE:
        getattr(message, leaf).CopyFrom(value)
    elif is_repeated(target):
        getattr(message, leaf).append(value)
    else:
        setattr(message, leaf, value)

"""DIGITS 6.1's all-in-one classification network -> original, train_val and deploy prototxt.

A rebuild of `save_files_classification` in DIGITS' digits/model/tasks/caffe_train.py (v6.1.1),
with its helpers `cleanedUpClassificationNetwork`, `filterLayersByState`, `_setLayerRule` and
`net_sanity_check`. DIGITS' rules, in order:

1. Cleanup (on a copy): a layer whose type contains "Data" must be Data or HDF5Data; Input
   layers are deleted (DIGITS writes the deploy input); Accuracy layers with top_k > classes are
   deleted; every InnerProduct without num_output gets num_output = classes. DIGITS deletes while
   it enumerates, so the layer right after a deleted one is not examined (kept here).
2. Filtering with the states train (TRAIN, "train"), val (TEST, "val"), deploy (TEST, "deploy"):
   data layers go to their own list, other layers in train or val to train_val; their rules are
   replaced by `include { phase: TEST }` (not in train), `include { phase: TRAIN }` (not in
   val) or nothing (both). Layers in deploy go to deploy with no rules.
3. train_val (no net name): the TRAIN data layer, the TEST one (dropped without a val set), then
   the train_val layers. Users must not set data_param.source/backend; DIGITS sets the absolute
   `<dataset>/train_db`, `<dataset>/val_db` and LMDB. The form's crop must fit min(H, W); without
   it a larger network crop is silently clamped and, like any network crop, copied to val. Mean
   "image" sets mean_file, "pixel" mean_value (per-channel mean of mean.binaryproto), replacing
   what the network had; "none" adds nothing. The form's batch size goes to both layers, else
   the network's stays, 16 when missing. No data layers at all: DIGITS adds its own ("data").
4. Sanity checks by phase masks (TRAIN, TEST when there is a val set; deploy as TEST): every
   bottom must be a top of a layer active in that phase, or a net input.
5. deploy: `input: "data"`, input_shape [1, C, crop, crop] or [1, C, H, W], the deploy layers;
   it must contain a Softmax layer.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from prototxt import caffe_pb2
from prototxt.blobs import blob_array
from prototxt.errors import DigitsError, PrototxtError
from prototxt.io import read_blob, write_text
from prototxt.netstate import layer_included, make_state

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 16  # digits.utils.constants.DEFAULT_BATCH_SIZE
TRAIN_DB, VAL_DB = "train_db", "val_db"
MEAN_CHOICES = ("image", "pixel", "none")
TRAIN, TEST = caffe_pb2.TRAIN, caffe_pb2.TEST
NetParameter = caffe_pb2.NetParameter
LayerParameter = caffe_pb2.LayerParameter


@dataclass
class DatasetFacts:
    """What DIGITS knows about the dataset job (image dims are H x W x C, like DIGITS')."""
    num_classes: int
    height: int
    width: int
    channels: int
    dataset_dir: str
    mean_file: str | None = None  # default <dataset_dir>/mean.binaryproto
    has_val_set: bool = True
    backend: str = "lmdb"

    def __post_init__(self) -> None:
        self.dataset_dir = os.path.abspath(self.dataset_dir)
        if self.mean_file is None:
            self.mean_file = os.path.join(self.dataset_dir, "mean.binaryproto")
        self.mean_file = os.path.abspath(self.mean_file)


class DigitsSplit(NamedTuple):
    original: NetParameter
    train_val: NetParameter
    deploy: NetParameter
    crop_size: int | None  # the crop in effect (form value or the network's, clamped)


class StateLayers(NamedTuple):
    data: list[LayerParameter]
    train_val: list[LayerParameter]
    deploy: list[LayerParameter]


def _require(ok: bool, message: str, layer: str | None = None) -> None:
    """DIGITS' `assert`s, as DigitsError; the layer (if any) is named in the message and field."""
    if not ok:
        raise DigitsError(message + (f" (layer '{layer}')" if layer else ""), field=layer)


def mean_pixel_from_blob(blob: caffe_pb2.BlobProto, channels: int, height: int,
                         width: int, path: str | None = None) -> list[float]:
    """Per-channel mean of a mean image blob, in the blob's (BGR) channel order.

    DIGITS' get_mean_pixel: the data reshaped to (C, H, W), averaged over H, then over W.
    `path` (the mean file) is named in errors.
    """
    data = blob_array(blob, path, dtype=np.float64).ravel()  # any storage (blobs.py)
    if data.size != channels * height * width:
        raise PrototxtError(f"mean blob has {data.size} values, expected {channels}x{height}x"
                            f"{width} = {channels * height * width}", path)
    return [float(v) for v in data.reshape(channels, height, width).mean(1).mean(1)]


def cleaned_up_network(network: NetParameter, num_classes: int) -> NetParameter:
    """DIGITS' cleanedUpClassificationNetwork: a cleaned copy of `network`."""
    net = NetParameter()
    net.CopyFrom(network)
    i = 0
    while i < len(net.layer):
        layer = net.layer[i]
        delete = False
        if "Data" in layer.type:
            _require(layer.type in ("Data", "HDF5Data"),
                     f"Unsupported data layer type {layer.type}", layer.name)
        elif layer.type == "Input":
            delete = True
        elif layer.type == "Accuracy":
            delete = (layer.accuracy_param.HasField("top_k")
                      and layer.accuracy_param.top_k > num_classes)
        elif layer.type == "InnerProduct":
            if not layer.inner_product_param.HasField("num_output"):
                layer.inner_product_param.num_output = num_classes
        if delete:
            del net.layer[i]
        # DIGITS quirk: it runs `del network.layer[i]` inside `for i, layer in enumerate(...)`,
        # so the layer that slides into index i is never examined. Advancing i after a deletion
        # as well reproduces that: e.g. an InnerProduct right after an Input layer keeps no
        # num_output.
        i += 1
    return net


def _with_rule(layer: LayerParameter, phase: int | None) -> LayerParameter:
    """A copy of `layer` whose rules are replaced by `include { phase }` or none (_setLayerRule)."""
    copy = LayerParameter()
    copy.CopyFrom(layer)
    copy.ClearField("include")
    copy.ClearField("exclude")
    if phase is not None:
        copy.include.add(phase=phase)
    return copy


def filter_layers_by_state(network: NetParameter) -> StateLayers:
    """DIGITS' filterLayersByState: data, train_val and deploy layers (copies)."""
    train_state = make_state("TRAIN", stages=["train"])
    val_state = make_state("TEST", stages=["val"])
    deploy_state = make_state("TEST", stages=["deploy"])
    out = StateLayers([], [], [])
    for layer in network.layer:
        in_train = layer_included(layer, train_state)
        in_val = layer_included(layer, val_state)
        phase = TEST if not in_train else TRAIN if not in_val else None
        if "Data" in layer.type:
            out.data.append(_with_rule(layer, phase))  # even one in neither state (as TEST)
            continue
        if in_train or in_val:
            out.train_val.append(_with_rule(layer, phase))
        if layer_included(layer, deploy_state):
            out.deploy.append(_with_rule(layer, None))
    return out


def net_sanity_check(net: NetParameter, phase: int) -> None:
    """DIGITS' net_sanity_check: every bottom of a layer active in `phase` must exist then.

    Activity comes from the rules' phases only (an include rule without a phase counts as
    TRAIN, the field's default), as in DIGITS.
    """
    both = (1 << TRAIN) | (1 << TEST)
    tops, active = set(net.input), []
    for layer in net.layer:
        if len(layer.include):
            mask = 0
            for rule in layer.include:
                mask |= 1 << rule.phase
        else:
            mask = both
            for rule in layer.exclude:
                mask &= ~(1 << rule.phase)
        if mask & (1 << phase):
            active.append(layer)
            tops.update(layer.top)
    for layer in active:
        for bottom in layer.bottom:
            if bottom not in tops:
                raise DigitsError(
                    f"Layer '{layer.name}' references bottom '{bottom}' at the "
                    f"{'TRAIN' if phase == TRAIN else 'TEST'} stage however this blob is not "
                    "included at that stage. Please consider using an include directive to "
                    "limit the scope of this layer.", field=layer.name)


def _check_user_data_layer(layer: LayerParameter) -> None:
    _require(layer.type == "Data", "expecting a Data layer", layer.name)
    if layer.HasField("data_param"):
        _require(not layer.data_param.HasField("source"), "don't set the data_param.source",
                 layer.name)
        _require(not layer.data_param.HasField("backend"), "don't set the data_param.backend",
                 layer.name)


def _default_data_layer(phase: int) -> LayerParameter:
    layer = LayerParameter(name="data", type="Data", top=["data", "label"])
    layer.include.add(phase=phase)
    layer.data_param.batch_size = DEFAULT_BATCH_SIZE
    return layer


def _set_mean(layer: LayerParameter, use_mean: str, mean_file: str,
              mean_pixel: Sequence[float] | None) -> None:
    """DIGITS' set_mean_file / set_mean_value: replace any mean the network had."""
    if use_mean == "none":
        return
    tp = layer.transform_param
    if tp.HasField("mean_file"):
        tp.ClearField("mean_file")
        log.warning("Ignoring mean_file from network (layer '%s')", layer.name)
    if len(tp.mean_value):
        tp.ClearField("mean_value")
        log.warning("Ignoring mean_value from network (layer '%s')", layer.name)
    if use_mean == "image":
        tp.mean_file = mean_file
    else:
        tp.mean_value.extend(mean_pixel)


def _data_layers(data: list[LayerParameter], facts: DatasetFacts,
                 crop_size: int | None) -> tuple[list[LayerParameter], int | None]:
    """The train (and val) data layer for train_val, and the crop in effect."""
    train = val = None
    for layer in data:
        for rule in layer.include:
            if rule.phase == TRAIN:
                _require(train is None, "cannot specify two train data layers", layer.name)
                train = layer
            elif rule.phase == TEST:
                _require(val is None, "cannot specify two test data layers", layer.name)
                val = layer
    _require(train is not None or val is None,
             "cannot specify a test data layer without a train data layer", val and val.name)
    max_crop = min(facts.height, facts.width)
    if crop_size:
        # DIGITS checks this only for a network's own data layers; we check it for its
        # default layers too (Caffe could not crop beyond the image either).
        _require(crop_size <= max_crop, "crop_size is larger than the image size")
    if train is None:  # no data layers in the network (or none with a phase rule)
        train, val = _default_data_layer(TRAIN), _default_data_layer(TEST)
    else:
        _check_user_data_layer(train)
        if not crop_size and train.transform_param.HasField("crop_size"):
            crop_size = min(train.transform_param.crop_size, max_crop)  # silent clamp
        if val is not None and facts.has_val_set:
            _check_user_data_layer(val)
    layers = [train] if val is None or not facts.has_val_set else [train, val]
    if crop_size:  # the form's value or the network's train value, on train and val
        for layer in layers:
            layer.transform_param.crop_size = crop_size
    return layers, crop_size or None


def digits_split(network: NetParameter, facts: DatasetFacts, crop_size: int | None = None,
                 use_mean: str = "image", batch_size: int | None = None,
                 mean_pixel: Sequence[float] | None = None) -> DigitsSplit:
    """The three files DIGITS writes for a classification model job, as messages.

    `crop_size`, `use_mean` and `batch_size` are DIGITS' form fields (None = left blank).
    For `use_mean="pixel"`, `mean_pixel` defaults to the mean of `facts.mean_file`.
    """
    if facts.backend != "lmdb":
        raise PrototxtError(f"dataset backend {facts.backend!r} is not supported (only lmdb)")
    # a net for 0 classes or a 0-pixel image parses but cannot be built or trained
    _require(facts.num_classes >= 1, f"the dataset must have at least 1 class, not "
                                      f"{facts.num_classes} (its labels.txt names the classes)")
    _require(facts.height >= 1 and facts.width >= 1, f"the dataset's images must be at least 1x1, "
                                                     f"not {facts.height}x{facts.width}")
    _require(facts.channels in (1, 3), f"the dataset's images have 1 or 3 channels, not "
                                       f"{facts.channels}")
    _require(crop_size is None or crop_size >= 1, f"crop_size must be positive, not {crop_size}")
    _require(batch_size is None or batch_size >= 1,
             f"batch_size must be positive, not {batch_size}")
    if use_mean not in MEAN_CHOICES:
        raise PrototxtError(f"use_mean must be one of {', '.join(MEAN_CHOICES)}, not "
                            f"{use_mean!r}", field="use_mean")
    if use_mean == "pixel" and mean_pixel is None:
        mean_pixel = mean_pixel_from_blob(read_blob(facts.mean_file), facts.channels,
                                          facts.height, facts.width, facts.mean_file)

    original = NetParameter()
    original.CopyFrom(network)
    layers = filter_layers_by_state(cleaned_up_network(network, facts.num_classes))

    data, crop = _data_layers(layers.data, facts, crop_size)
    for layer, db in zip(data, (TRAIN_DB, VAL_DB)):
        layer.data_param.source = os.path.join(facts.dataset_dir, db)
        layer.data_param.backend = caffe_pb2.DataParameter.LMDB
        _set_mean(layer, use_mean, facts.mean_file, mean_pixel)
        if batch_size:
            layer.data_param.batch_size = batch_size
        elif not layer.data_param.HasField("batch_size"):
            layer.data_param.batch_size = DEFAULT_BATCH_SIZE
    train_val = NetParameter()
    train_val.layer.extend(data + layers.train_val)
    net_sanity_check(train_val, TRAIN)
    if facts.has_val_set:
        net_sanity_check(train_val, TEST)

    deploy = NetParameter(input=["data"])
    side = [crop, crop] if crop else [facts.height, facts.width]
    deploy.input_shape.add(dim=[1, facts.channels, *side])
    deploy.layer.extend(layers.deploy)
    net_sanity_check(deploy, TEST)
    _require(any(layer.type == "Softmax" for layer in deploy.layer),
             "Your deploy network is missing a Softmax layer! Read the documentation for custom "
             "networks and/or look at the standard networks for examples.")
    return DigitsSplit(original, train_val, deploy, crop)


def write_split(split: DigitsSplit, out_dir: Path) -> None:
    """Write original.prototxt, train_val.prototxt and deploy.prototxt into `out_dir`."""
    out_dir = Path(out_dir)
    for name, net in (("original", split.original), ("train_val", split.train_val),
                      ("deploy", split.deploy)):
        write_text(net, out_dir / f"{name}.prototxt")

"""DIGITS' all-in-one network -> train_val/deploy split, against a real DIGITS job and by rule."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from google.protobuf import text_format

from prototxt import caffe_pb2
from prototxt.digits import (DatasetFacts, cleaned_up_network, digits_split,
                             filter_layers_by_state, mean_pixel_from_blob, write_split)
from prototxt.errors import DigitsError

SEED_DATASET = "/opt/DIGITS/digits/jobs/20190317-025154-2525"

TINY = """
name: "tiny"
layer { name: "train-data" type: "Data" top: "data" top: "label" include { stage: "train" }
        data_param { batch_size: 8 } }
layer { name: "val-data" type: "Data" top: "data" top: "label" include { stage: "val" }
        data_param { batch_size: 4 } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
        include { stage: "val" } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss"
        exclude { stage: "deploy" } }
layer { name: "softmax" type: "Softmax" bottom: "ip" top: "softmax" include { stage: "deploy" } }
"""


def net(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


def facts(**kw) -> DatasetFacts:
    """A non-square 24x32 grey dataset with 5 classes unless told otherwise."""
    args = dict(num_classes=5, height=24, width=32, channels=1, dataset_dir="/data/ds")
    args.update(kw)
    return DatasetFacts(**args)


def layer_of(network: caffe_pb2.NetParameter, name: str) -> caffe_pb2.LayerParameter:
    (found,) = [lay for lay in network.layer if lay.name == name]
    return found


def first_difference(got: caffe_pb2.NetParameter, want: caffe_pb2.NetParameter) -> str:
    for i, (a, b) in enumerate(zip(got.layer, want.layer)):
        if a != b:
            return f"layer {i}:\n--- got ---\n{a}--- want ---\n{b}"
    got_rest, want_rest = got.__class__(), want.__class__()
    got_rest.CopyFrom(got), want_rest.CopyFrom(want)
    got_rest.ClearField("layer"), want_rest.ClearField("layer")
    return (f"{len(got.layer)} vs {len(want.layer)} layers; net fields:\n{got_rest}---\n"
            f"{want_rest}")


# -- the real DIGITS job ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def googlenet(seed_job: Path) -> caffe_pb2.NetParameter:
    return net((seed_job / "original.prototxt").read_text())


def test_seed_job_is_reproduced_exactly(seed_job, googlenet):
    f = DatasetFacts(num_classes=10, height=256, width=256, channels=3,
                     dataset_dir=SEED_DATASET, mean_file=f"{SEED_DATASET}/mean.binaryproto")
    split = digits_split(googlenet, f, use_mean="image")
    for name, got in (("train_val", split.train_val), ("deploy", split.deploy)):
        want = net((seed_job / f"{name}.prototxt").read_text())
        assert got == want, f"{name}.prototxt differs, first at {first_difference(got, want)}"
    assert split.original == googlenet and split.original.name == "GoogleNet"
    assert split.crop_size == 224


def test_crop_is_clamped_to_small_images(googlenet):
    split = digits_split(googlenet, facts(num_classes=10, height=28, width=28))
    assert layer_of(split.train_val, "train-data").transform_param.crop_size == 28
    assert layer_of(split.train_val, "val-data").transform_param.crop_size == 28
    assert list(split.deploy.input_shape[0].dim) == [1, 1, 28, 28]
    assert split.crop_size == 28
    assert googlenet.layer[0].transform_param.crop_size == 224  # input untouched


def test_network_crop_is_clamped_to_the_shorter_side_and_copied_to_val():
    n = net(TINY)
    n.layer[0].transform_param.crop_size = 30
    n.layer[1].transform_param.crop_size = 10  # DIGITS overwrites it with the train value
    split = digits_split(n, facts())
    assert [lay.transform_param.crop_size for lay in split.train_val.layer[:2]] == [24, 24]
    assert list(split.deploy.input_shape[0].dim) == [1, 1, 24, 24]


def test_form_crop_is_checked_and_written():
    split = digits_split(net(TINY), facts(), crop_size=24)
    assert [lay.transform_param.crop_size for lay in split.train_val.layer[:2]] == [24, 24]
    assert list(split.deploy.input_shape[0].dim) == [1, 1, 24, 24]
    with pytest.raises(DigitsError, match="crop_size is larger than the image size"):
        digits_split(net(TINY), facts(), crop_size=25)
    with pytest.raises(DigitsError, match="crop_size is larger than the image size"):
        digits_split(net(TINY.split("layer {", 3)[0] + "layer {" + TINY.split("layer {", 3)[3]),
                     facts(), crop_size=25)


def test_no_crop_gives_the_image_shape():
    split = digits_split(net(TINY), facts(channels=3))
    assert list(split.deploy.input_shape[0].dim) == [1, 3, 24, 32]
    assert split.crop_size is None
    assert not split.train_val.layer[0].transform_param.HasField("crop_size")


# -- the whole result on a small network --------------------------------------------------------

def test_tiny_network_split_in_full():
    split = digits_split(net(TINY), facts())
    assert split.train_val == net("""
layer { name: "train-data" type: "Data" top: "data" top: "label" include { phase: TRAIN }
        transform_param { mean_file: "/data/ds/mean.binaryproto" }
        data_param { source: "/data/ds/train_db" batch_size: 8 backend: LMDB } }
layer { name: "val-data" type: "Data" top: "data" top: "label" include { phase: TEST }
        transform_param { mean_file: "/data/ds/mean.binaryproto" }
        data_param { source: "/data/ds/val_db" batch_size: 4 backend: LMDB } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 5 } }
layer { name: "accuracy" type: "Accuracy" bottom: "ip" bottom: "label" top: "accuracy"
        include { phase: TEST } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
""")
    assert split.deploy == net("""
input: "data" input_shape { dim: 1 dim: 1 dim: 24 dim: 32 }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
        inner_product_param { num_output: 5 } }
layer { name: "softmax" type: "Softmax" bottom: "ip" top: "softmax" }
""")


def test_filter_layers_by_state_rewrites_rules():
    n = net(TINY + 'layer { name: "odd" type: "Data" top: "x" include { stage: "deploy" } }'
                   'layer { name: "both" type: "Data" top: "y" }')
    data, train_val, deploy = filter_layers_by_state(n)
    rules = {lay.name: [r.phase for r in lay.include] for lay in data + train_val}
    assert rules["train-data"] == [caffe_pb2.TRAIN] and rules["val-data"] == [caffe_pb2.TEST]
    assert rules["odd"] == [caffe_pb2.TEST]  # in neither train nor val: DIGITS says TEST
    assert rules["both"] == [] and rules["ip"] == [] and rules["loss"] == []
    assert rules["accuracy"] == [caffe_pb2.TEST]
    assert [lay.name for lay in deploy] == ["ip", "softmax"]
    assert not any(len(lay.include) or len(lay.exclude) for lay in deploy)


def test_form_batch_size_applies_to_both():
    split = digits_split(net(TINY), facts(), batch_size=7)
    assert [lay.data_param.batch_size for lay in split.train_val.layer[:2]] == [7, 7]


def test_missing_batch_size_becomes_16():
    n = net(TINY)
    n.layer[1].ClearField("data_param")
    split = digits_split(n, facts())
    assert [lay.data_param.batch_size for lay in split.train_val.layer[:2]] == [8, 16]


# -- mean ---------------------------------------------------------------------------------------

def synthetic_mean_blob(rng, c=3, h=4, w=6) -> tuple[caffe_pb2.BlobProto, np.ndarray]:
    data = rng.uniform(0, 255, size=(c, h, w)).astype(np.float32)
    blob = caffe_pb2.BlobProto(num=1, channels=c, height=h, width=w, data=data.ravel())
    return blob, data.astype(np.float64).mean(axis=(1, 2))


def test_mean_pixel_from_blob(rng):
    blob, want = synthetic_mean_blob(rng)
    got = mean_pixel_from_blob(blob, 3, 4, 6)
    np.testing.assert_allclose(got, want, rtol=1e-12)
    assert got[0] != got[2]  # channel order is the blob's
    with pytest.raises(Exception, match="expected 3x4x5"):
        mean_pixel_from_blob(blob, 3, 4, 5)


def test_pixel_mean_replaces_the_network_mean(rng, tmp_path, caplog):
    blob, want = synthetic_mean_blob(rng)
    (tmp_path / "mean.binaryproto").write_bytes(blob.SerializeToString())
    n = net(TINY)
    n.layer[0].transform_param.mean_file = "elsewhere.binaryproto"
    n.layer[1].transform_param.mean_value.extend([1.0, 2.0, 3.0])
    f = facts(height=4, width=6, channels=3, dataset_dir=str(tmp_path))
    with caplog.at_level(logging.WARNING, logger="prototxt.digits"):
        split = digits_split(n, f, use_mean="pixel")  # mean read from facts.mean_file
    assert "Ignoring mean_file" in caplog.text and "Ignoring mean_value" in caplog.text
    for lay in split.train_val.layer[:2]:
        assert not lay.transform_param.HasField("mean_file")
        np.testing.assert_allclose(lay.transform_param.mean_value, want, rtol=1e-6)
    given = digits_split(n, f, use_mean="pixel", mean_pixel=[10.0, 20.0, 30.0])
    assert list(given.train_val.layer[0].transform_param.mean_value) == [10.0, 20.0, 30.0]


def test_no_mean():
    split = digits_split(net(TINY), facts(), use_mean="none")
    for lay in split.train_val.layer[:2]:
        assert not lay.transform_param.HasField("mean_file")
        assert len(lay.transform_param.mean_value) == 0
    # DIGITS only clears a network's own mean when it sets one: with "none" it stays
    n = net(TINY)
    n.layer[0].transform_param.mean_value.append(127.5)
    kept = digits_split(n, facts(), use_mean="none")
    assert list(kept.train_val.layer[0].transform_param.mean_value) == [127.5]


def test_unknown_mean_choice():
    with pytest.raises(Exception, match="use_mean must be one of"):
        digits_split(net(TINY), facts(), use_mean="file")


# -- val set, default data layers ---------------------------------------------------------------

VAL_ONLY_PROBLEM = TINY + """
layer { name: "feat" type: "ReLU" bottom: "data" top: "feat" include { stage: "train" } }
layer { name: "uses-feat" type: "ReLU" bottom: "feat" top: "feat2" exclude { stage: "deploy" } }
"""


def test_no_val_set_drops_val_layer_and_test_check():
    with pytest.raises(DigitsError, match="at the TEST stage"):
        digits_split(net(VAL_ONLY_PROBLEM), facts())
    split = digits_split(net(VAL_ONLY_PROBLEM), facts(has_val_set=False))
    assert [lay.name for lay in split.train_val.layer][:2] == ["train-data", "ip"]
    assert "val_db" not in text_format.MessageToString(split.train_val)


def test_default_data_layers_when_the_network_has_none():
    n = net(TINY.split("layer {", 3)[0] + "layer {" + TINY.split("layer {", 3)[3])
    assert not any("Data" in lay.type for lay in n.layer)
    split = digits_split(n, facts(), crop_size=20)
    train, val = split.train_val.layer[:2]
    assert train == net("""layer { name: "data" type: "Data" top: "data" top: "label"
        include { phase: TRAIN }
        transform_param { crop_size: 20 mean_file: "/data/ds/mean.binaryproto" }
        data_param { source: "/data/ds/train_db" batch_size: 16 backend: LMDB } }""").layer[0]
    assert (val.name, list(val.top), val.include[0].phase) == ("data", ["data", "label"],
                                                                caffe_pb2.TEST)
    assert val.data_param.source == "/data/ds/val_db" and val.transform_param.crop_size == 20
    no_val = digits_split(n, facts(has_val_set=False), batch_size=3)
    assert [lay.name for lay in no_val.train_val.layer][:2] == ["data", "ip"]
    assert no_val.train_val.layer[0].data_param.batch_size == 3


# -- cleanup ------------------------------------------------------------------------------------

def test_accuracy_with_top_k_above_the_classes_is_removed(googlenet):
    names = [lay.name for lay in digits_split(googlenet, facts(num_classes=3)).train_val.layer]
    assert "loss3/top-1" in names and not any(n.endswith("/top-5") for n in names)
    names = [lay.name for lay in digits_split(googlenet, facts(num_classes=5)).train_val.layer]
    assert "loss3/top-5" in names  # top_k == classes stays


def test_every_unset_inner_product_gets_the_class_count(googlenet):
    split = digits_split(googlenet, facts(num_classes=7))
    for name in ("loss1/classifier", "loss2/classifier", "loss3/classifier"):
        assert layer_of(split.train_val, name).inner_product_param.num_output == 7
    assert layer_of(split.train_val, "loss1/fc").inner_product_param.num_output == 1024


def test_deleting_skips_the_next_layer_like_digits():
    n = net("""
layer { name: "in" type: "Input" top: "data" }
layer { name: "skipped" type: "InnerProduct" bottom: "data" top: "a" }
layer { name: "acc5" type: "Accuracy" bottom: "a" bottom: "label" top: "acc5"
        accuracy_param { top_k: 5 } }
layer { name: "bad-but-skipped" type: "ImageData" top: "x" }
layer { name: "seen" type: "InnerProduct" bottom: "a" top: "b" }
""")
    cleaned = cleaned_up_network(n, num_classes=3)
    assert [lay.name for lay in cleaned.layer] == ["skipped", "bad-but-skipped", "seen"]
    assert not cleaned.layer[0].inner_product_param.HasField("num_output")
    assert cleaned.layer[2].inner_product_param.num_output == 3
    # through the whole split: the skipped InnerProduct keeps no num_output
    n = net(TINY)
    n.layer.insert(2, caffe_pb2.LayerParameter(name="in", type="Input", top=["data"]))
    assert not layer_of(digits_split(n, facts()).train_val, "ip").inner_product_param.HasField(
        "num_output")


# -- refusals -----------------------------------------------------------------------------------

def test_missing_softmax():
    n = net(TINY.replace('type: "Softmax"', 'type: "Sigmoid"'))
    with pytest.raises(DigitsError) as exc:
        digits_split(n, facts())
    assert exc.value.message == (
        "Your deploy network is missing a Softmax layer! Read the documentation for custom "
        "networks and/or look at the standard networks for examples.")


def test_dangling_bottom():
    n = net(TINY + 'layer { name: "dangler" type: "ReLU" bottom: "nowhere" top: "z" '
                   'include { stage: "train" } }')
    with pytest.raises(DigitsError) as exc:
        digits_split(n, facts())
    assert exc.value.message == (
        "Layer 'dangler' references bottom 'nowhere' at the TRAIN stage however this blob is not "
        "included at that stage. Please consider using an include directive to limit the scope "
        "of this layer.")
    assert exc.value.field == "dangler"


def test_deploy_sanity_check():
    n = net(TINY.replace('bottom: "ip" top: "softmax"', 'bottom: "label" top: "softmax"'))
    with pytest.raises(DigitsError, match="Layer 'softmax' references bottom 'label' at the TEST"):
        digits_split(n, facts())


def test_unsupported_data_layer_type():
    n = net(TINY.replace('name: "train-data" type: "Data"', 'name: "train-data" type: "ImageData"'))
    with pytest.raises(DigitsError, match="Unsupported data layer type ImageData") as exc:
        digits_split(n, facts())
    assert exc.value.field == "train-data"


def test_hdf5_data_is_not_an_lmdb_data_layer():
    n = net(TINY.replace('name: "train-data" type: "Data"', 'name: "train-data" type: "HDF5Data"'))
    with pytest.raises(DigitsError, match="expecting a Data layer"):
        digits_split(n, facts())


def test_two_train_data_layers():
    n = net(TINY.replace('include { stage: "val" }\n        data_param { batch_size: 4 }',
                         'include { stage: "train" }\n        data_param { batch_size: 4 }'))
    with pytest.raises(DigitsError, match="cannot specify two train data layers"):
        digits_split(n, facts())
    n = net(TINY.replace('include { stage: "train" }', 'include { stage: "val" }', 1))
    with pytest.raises(DigitsError, match="cannot specify two test data layers"):
        digits_split(n, facts())


def test_test_data_layer_without_train_data_layer():
    n = net(TINY.split("layer {", 2)[0] + "layer {" + TINY.split("layer {", 2)[2])
    with pytest.raises(DigitsError, match="cannot specify a test data layer without a train"):
        digits_split(n, facts())


@pytest.mark.parametrize("field, value", [("source", '"/my/db"'), ("backend", "LMDB")])
def test_user_set_source_or_backend(field, value):
    n = net(TINY.replace("batch_size: 8", f"batch_size: 8 {field}: {value}"))
    with pytest.raises(DigitsError, match=f"don't set the data_param.{field}"):
        digits_split(n, facts())


# -- files --------------------------------------------------------------------------------------

def test_write_split(tmp_path):
    split = digits_split(net(TINY), facts())
    write_split(split, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "deploy.prototxt", "original.prototxt", "train_val.prototxt"]
    assert net((tmp_path / "original.prototxt").read_text()).name == "tiny"
    assert net((tmp_path / "train_val.prototxt").read_text()) == split.train_val
    assert net((tmp_path / "deploy.prototxt").read_text()) == split.deploy

"""Caffe's NetState rules (Net::StateMeetsRule, Net::FilterNet): hand-built layers, GoogLeNet."""
from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import text_format

from prototxt import caffe_pb2
from prototxt.errors import PrototxtError
from prototxt.netstate import filter_net, layer_included, make_state, state_meets_rule


def rule(text: str) -> caffe_pb2.NetStateRule:
    return text_format.Parse(text, caffe_pb2.NetStateRule())


def layer(text: str) -> caffe_pb2.LayerParameter:
    return text_format.Parse(f'name: "l" type: "ReLU" {text}', caffe_pb2.LayerParameter())


TRAIN = make_state("TRAIN", stages=["train"])
VAL = make_state("TEST", stages=["val"])
DEPLOY = make_state("TEST", stages=["deploy"])


def test_make_state_equals_parsed_state():
    assert make_state("TRAIN", stages=["train"]) == text_format.Parse(
        'phase: TRAIN stage: "train"', caffe_pb2.NetState())
    assert make_state("test", level=2, stages=["a", "b"]) == text_format.Parse(
        'phase: TEST level: 2 stage: "a" stage: "b"', caffe_pb2.NetState())
    assert make_state(caffe_pb2.TEST).phase == caffe_pb2.TEST
    with pytest.raises(PrototxtError, match="unknown phase"):
        make_state("VAL")


def test_netstate_phase_defaults_to_test():
    assert caffe_pb2.NetState().phase == caffe_pb2.TEST


def test_empty_rule_is_met_by_any_state():
    assert state_meets_rule(TRAIN, rule(""))
    assert state_meets_rule(caffe_pb2.NetState(), rule(""))


def test_phase():
    assert state_meets_rule(TRAIN, rule("phase: TRAIN"))
    assert not state_meets_rule(TRAIN, rule("phase: TEST"))
    assert state_meets_rule(VAL, rule("phase: TEST"))
    # an unset state phase is TEST (the schema default)
    assert state_meets_rule(caffe_pb2.NetState(), rule("phase: TEST"))
    assert not state_meets_rule(caffe_pb2.NetState(), rule("phase: TRAIN"))


@pytest.mark.parametrize("level, met", [(-1, False), (0, False), (1, True), (2, True),
                                        (3, True), (4, False)])
def test_min_and_max_level_at_and_beyond_the_bounds(level, met):
    r = rule("min_level: 1 max_level: 3")
    assert state_meets_rule(make_state("TEST", level=level), r) is met


def test_min_level_alone_and_max_level_alone():
    assert state_meets_rule(make_state("TEST", level=5), rule("min_level: 5"))
    assert not state_meets_rule(make_state("TEST", level=4), rule("min_level: 5"))
    assert state_meets_rule(make_state("TEST", level=-2), rule("max_level: -2"))
    assert not state_meets_rule(make_state("TEST", level=-1), rule("max_level: -2"))
    # unset bounds do not restrict: max_level 0 is a bound only when set
    assert state_meets_rule(make_state("TEST", level=7), rule("phase: TEST"))


def test_stages_all_required():
    r = rule('stage: "a" stage: "b"')
    assert state_meets_rule(make_state("TRAIN", stages=["b", "a", "c"]), r)
    assert not state_meets_rule(make_state("TRAIN", stages=["a"]), r)
    assert not state_meets_rule(make_state("TRAIN"), r)


def test_not_stage_none_allowed():
    r = rule('not_stage: "deploy" not_stage: "x"')
    assert state_meets_rule(TRAIN, r)
    assert not state_meets_rule(DEPLOY, r)
    assert not state_meets_rule(make_state("TEST", stages=["val", "x"]), r)


def test_all_clauses_of_one_rule_are_anded():
    r = rule('phase: TEST min_level: 1 stage: "val" not_stage: "deploy"')
    assert state_meets_rule(make_state("TEST", level=1, stages=["val"]), r)
    assert not state_meets_rule(make_state("TRAIN", level=1, stages=["val"]), r)
    assert not state_meets_rule(make_state("TEST", level=0, stages=["val"]), r)
    assert not state_meets_rule(make_state("TEST", level=1, stages=["val", "deploy"]), r)


def test_no_rules_means_included():
    assert layer_included(layer(""), TRAIN)
    assert layer_included(layer(""), DEPLOY)


def test_include_rules_are_ored():
    lay = layer('include { stage: "train" } include { phase: TEST stage: "deploy" }')
    assert layer_included(lay, TRAIN)
    assert layer_included(lay, DEPLOY)
    assert not layer_included(lay, VAL)


def test_exclude_rules():
    lay = layer('exclude { stage: "deploy" } exclude { phase: TRAIN min_level: 0 max_level: -1 }')
    assert layer_included(lay, TRAIN)
    assert layer_included(lay, VAL)
    assert not layer_included(lay, DEPLOY)
    assert not layer_included(layer("exclude { phase: TRAIN }"), TRAIN)


def test_include_and_exclude_together_is_an_error():
    lay = layer('include { phase: TRAIN } exclude { stage: "deploy" }')
    with pytest.raises(PrototxtError, match="Specify either include rules or exclude rules; "
                                            "not both.") as exc:
        layer_included(lay, TRAIN)
    assert exc.value.field == "l"


def test_filter_net_keeps_net_fields_and_does_not_touch_the_input():
    net = text_format.Parse(
        'name: "n" input: "data" input_shape { dim: 1 dim: 2 dim: 3 dim: 5 } force_backward: true'
        ' layer { name: "a" type: "ReLU" include { phase: TRAIN } }'
        ' layer { name: "b" type: "ReLU" }'
        ' layer { name: "c" type: "ReLU" exclude { phase: TRAIN } }', caffe_pb2.NetParameter())
    before = net.SerializeToString()
    out = filter_net(net, make_state("TRAIN"))
    assert [lay.name for lay in out.layer] == ["a", "b"]
    assert out.name == "n" and list(out.input) == ["data"] and out.force_backward
    assert list(out.input_shape[0].dim) == [1, 2, 3, 5]
    assert list(out.layer[0].include) == [rule("phase: TRAIN")]  # rules are kept
    assert net.SerializeToString() == before
    assert [lay.name for lay in filter_net(net, make_state("TEST")).layer] == ["b", "c"]


@pytest.fixture(scope="module")
def googlenet(seed_job: Path) -> caffe_pb2.NetParameter:
    return text_format.Parse((seed_job / "original.prototxt").read_text(),
                             caffe_pb2.NetParameter())


def names(net: caffe_pb2.NetParameter) -> set[str]:
    return {lay.name for lay in net.layer}


def test_googlenet_in_the_three_digits_states(googlenet):
    everything = names(googlenet)
    train, val, deploy = (names(filter_net(googlenet, s)) for s in (TRAIN, VAL, DEPLOY))
    aux = {n for n in everything if n.startswith(("loss1/", "loss2/"))}
    accuracy = {f"loss{i}/top-{k}" for i in (1, 2, 3) for k in (1, 5)}
    losses = {"loss1/loss", "loss2/loss", "loss3/loss"}
    common = everything - aux - accuracy - losses - {"train-data", "val-data", "softmax"}
    assert "pool5/drop_7x7_s1" in common and "loss3/classifier" in common
    assert train == common | (aux - accuracy) | losses | {"train-data"}
    assert val == common | aux | accuracy | losses | {"val-data"}  # accuracy only here
    assert deploy == common | {"softmax"}  # no data, no aux branches, no losses
    assert not aux & deploy
    assert filter_net(googlenet, DEPLOY).name == "GoogleNet"

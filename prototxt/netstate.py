"""Caffe's NetState rules: which layers a net keeps in a given phase, level and stage.

This is Caffe's `Net::FilterNet` and `Net::StateMeetsRule` (src/caffe/net.cpp), rule for rule:

- A `NetState` is (phase, level, stages). Its phase defaults to TEST; a Caffe Solver gives its
  train net `phase: TRAIN` and its test nets `phase: TEST`.
- A `NetStateRule` is met when: its phase, if set, equals the state's; the state's level is
  >= `min_level` and <= `max_level` where those are set; **all** its `stage`s are among the
  state's stages; and **none** of its `not_stage`s is.
- A layer may have `include` rules or `exclude` rules, not both ("Specify either include rules
  or exclude rules; not both."). With no include rules it is kept unless some exclude rule is
  met; with include rules it is kept when at least one is met (rules are OR-ed, the conditions
  inside one rule AND-ed).
"""
from __future__ import annotations

from collections.abc import Iterable

from prototxt import caffe_pb2
from prototxt.errors import PrototxtError

NetState = caffe_pb2.NetState
NetStateRule = caffe_pb2.NetStateRule
LayerParameter = caffe_pb2.LayerParameter
NetParameter = caffe_pb2.NetParameter


def make_state(phase: str | int = "TRAIN", level: int = 0, stages: Iterable[str] = ()) -> NetState:
    """A NetState, e.g. `make_state("TEST", stages=["val"])`.

    `phase` is "TRAIN"/"TEST" (any case) or the enum value. `level` is only written when it is
    not the schema default 0, so the result equals the same state parsed from text.
    """
    if isinstance(phase, str):
        try:
            phase = caffe_pb2.Phase.Value(phase.upper())
        except ValueError:
            raise PrototxtError(f"unknown phase {phase!r}; expected TRAIN or TEST",
                                field="phase") from None
    state = NetState(phase=phase)
    if level:
        state.level = level
    state.stage.extend(stages)
    return state


def state_meets_rule(state: NetState, rule: NetStateRule) -> bool:
    """True when `state` meets `rule` (Caffe's Net::StateMeetsRule)."""
    if rule.HasField("phase") and rule.phase != state.phase:
        return False
    if rule.HasField("min_level") and state.level < rule.min_level:
        return False
    if rule.HasField("max_level") and state.level > rule.max_level:
        return False
    if any(stage not in state.stage for stage in rule.stage):
        return False
    if any(stage in state.stage for stage in rule.not_stage):
        return False
    return True


def layer_included(layer: LayerParameter, state: NetState) -> bool:
    """True when Caffe keeps `layer` in a net of the given state (the test in Net::FilterNet)."""
    if len(layer.include) and len(layer.exclude):
        raise PrototxtError(
            f"layer '{layer.name}': Specify either include rules or exclude rules; not both.",
            field=layer.name)
    if not len(layer.include):
        return not any(state_meets_rule(state, rule) for rule in layer.exclude)
    return any(state_meets_rule(state, rule) for rule in layer.include)


def filter_net(net: NetParameter, state: NetState) -> NetParameter:
    """A copy of `net` with only the layers included in `state` (Caffe's Net::FilterNet).

    Net-level fields (name, inputs, input shapes, ...) are kept; the layers keep their rules.
    """
    filtered = NetParameter()
    filtered.CopyFrom(net)
    filtered.ClearField("layer")
    for layer in net.layer:
        if layer_included(layer, state):
            filtered.layer.add().CopyFrom(layer)
    return filtered

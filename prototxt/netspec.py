"""A small NetSpec-like builder: write a Caffe `NetParameter` in Python, one layer per call.

    net = Net("LeNet")
    net.layer("conv1", "Convolution", bottom="scaled",
              param=[dict(lr_mult=1), dict(lr_mult=2)],
              convolution_param=dict(num_output=20, kernel_size=[5],
                                     weight_filler=dict(type="xavier")))
    net.layer("relu1", "ReLU", bottom="ip1", top="ip1")   # in place
    net.proto                                               # the caffe_pb2.NetParameter

Keyword arguments map onto `LayerParameter` fields through the message descriptors: a nested
message takes a dict, a repeated field takes a list (of dicts for messages; a repeated scalar
also takes one value, `stage="val"`), an enum takes its name (`pool="MAX"`) or number, and
`None` leaves a field unset. Protobuf records which fields are
set, so write a value that equals its default (`decay_mult=1`) when the file should contain it.
A misspelt or mistyped field raises `NetSpecError` naming the net, the layer and the field path.
"""
from __future__ import annotations

import difflib
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from prototxt import caffe_pb2
from prototxt.errors import PrototxtError
from prototxt.schema import is_repeated

__all__ = ["Net", "NetSpecError", "fill"]


class NetSpecError(PrototxtError):
    """A builder call gave a field that the schema does not have, or a value it cannot hold."""


class _FieldError(Exception):
    """Raised inside `fill`; `Net.layer` turns it into a NetSpecError with the layer's name."""

    def __init__(self, path: str, problem: str):
        self.path, self.problem = path, problem
        super().__init__(f"{path}: {problem}")


def _scalar(field: FieldDescriptor, value: Any, path: str) -> Any:
    """The value to store for one scalar: enum names become their numbers."""
    if field.type == field.TYPE_ENUM and isinstance(value, str):
        names = field.enum_type.values_by_name
        if value not in names:
            raise _FieldError(path, f"{value!r} is not a {field.enum_type.name}; "
                                    f"use one of {', '.join(names)}")
        return names[value].number
    return value


def fill(message: Message, values: Mapping[str, Any], path: str = "") -> Message:
    """Set the fields of `message` from `values` (see the module docstring) and return it."""
    if not isinstance(values, Mapping):
        raise _FieldError(path or message.DESCRIPTOR.name,
                          f"expected a dict for {message.DESCRIPTOR.name}, got {values!r}")
    fields = message.DESCRIPTOR.fields_by_name
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        field = fields.get(key)
        if field is None:
            near = difflib.get_close_matches(key, list(fields), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise _FieldError(where, f"{message.DESCRIPTOR.name} has no field {key!r}{hint}")
        if value is None:
            continue
        is_message = field.type == field.TYPE_MESSAGE
        try:
            if is_repeated(field):
                if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
                    if is_message:
                        raise _FieldError(where, f"is repeated; give a list of dicts, "
                                                 f"not {value!r}")
                    value = [value]
                container = getattr(message, key)
                for i, item in enumerate(value):
                    if is_message:
                        fill(container.add(), item, f"{where}[{i}]")
                    else:
                        container.append(_scalar(field, item, f"{where}[{i}]"))
            elif is_message:
                sub = getattr(message, key)
                sub.SetInParent()  # an empty dict still marks the message as present
                fill(sub, value, where)
            else:
                setattr(message, key, _scalar(field, value, where))
        except (TypeError, ValueError) as exc:
            raise _FieldError(where, str(exc)) from exc
    return message


class Net:
    """A `caffe_pb2.NetParameter` under construction; `proto` is the message itself."""

    def __init__(self, name: str, **fields: Any) -> None:
        self.proto = caffe_pb2.NetParameter(name=name)
        try:
            fill(self.proto, fields)
        except _FieldError as exc:
            raise NetSpecError(f"net field {exc.path}: {exc.problem}", path=f"<net {name}>",
                               field=exc.path) from None

    def layer(self, name: str, type: str, bottom: str | Sequence[str] = (),
              top: str | Sequence[str] | None = None, **params: Any) -> str:
        """Append a layer and return its first top (or "" when it has none).

        `bottom` and `top` take one blob name or a list; `top` defaults to the layer's name.
        The other keywords are LayerParameter fields, e.g. `convolution_param=dict(...)`,
        `param=[dict(lr_mult=1)]`, `include=[dict(stage="val")]`, `loss_weight=[0.3]`.
        """
        bottoms = [bottom] if isinstance(bottom, str) else list(bottom)
        tops = [name] if top is None else [top] if isinstance(top, str) else list(top)
        message = self.proto.layer.add(name=name, type=type, bottom=bottoms, top=tops)
        try:
            fill(message, params)
        except _FieldError as exc:
            del self.proto.layer[-1]
            raise NetSpecError(f"layer {name!r} ({type}): {exc.path}: {exc.problem}",
                               path=f"<net {self.proto.name}>", field=exc.path) from None
        return tops[0] if tops else ""

"""A protobuf wire-format walker that finds where a binary Caffe file breaks.

protobuf's parser only says "Error parsing message"; this walks the bytes along the schema and
returns the byte offset and field path of the first thing that is wrong (a varint or a
length-delimited field running past the end, an invalid wire type), so that a truncated
.caffemodel or .binaryproto gets an error a person can act on.
"""
from __future__ import annotations

from typing import NamedTuple

from google.protobuf.descriptor import Descriptor, FieldDescriptor


class WireFault(NamedTuple):
    offset: int
    field: str
    reason: str


class _Fault(Exception):
    def __init__(self, fault: WireFault):
        self.fault = fault


def _varint(buf: bytes, pos: int, end: int, field: str) -> tuple[int, int]:
    start, value, shift = pos, 0, 0
    while True:
        if pos >= end:
            raise _Fault(WireFault(start, field, "the data ends inside a varint (file truncated?)"))
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise _Fault(WireFault(start, field, "varint longer than 10 bytes"))


def _walk(buf: bytes, pos: int, end: int, desc: Descriptor | None, path: str) -> None:
    while pos < end:
        tag_at = pos
        key, pos = _varint(buf, pos, end, path or "<top level>")
        number, wire_type = key >> 3, key & 7
        field = desc.fields_by_number.get(number) if desc is not None else None
        name = f"{path}.{field.name}" if field else f"{path}.<field {number}>"
        name = name.lstrip(".")
        if number == 0:
            raise _Fault(WireFault(tag_at, name, "field number 0 is invalid (not a protobuf of this type?)"))
        if wire_type == 0:
            _, pos = _varint(buf, pos, end, name)
        elif wire_type in (1, 5):
            size = 8 if wire_type == 1 else 4
            if pos + size > end:
                raise _Fault(WireFault(tag_at, name, f"needs {size} bytes but {end - pos} remain (file truncated?)"))
            pos += size
        elif wire_type == 2:
            length, pos = _varint(buf, pos, end, name)
            if pos + length > end:
                raise _Fault(WireFault(tag_at, name, f"declares {length} bytes but only {end - pos} remain "
                                                     "(file truncated?)"))
            if field is not None and field.type == FieldDescriptor.TYPE_MESSAGE:
                _walk(buf, pos, pos + length, field.message_type, name)
            pos += length
        else:
            raise _Fault(WireFault(tag_at, name, f"invalid wire type {wire_type} (not a protobuf of this type?)"))


def find_fault(data: bytes, desc: Descriptor) -> WireFault | None:
    """The first wire-format fault in `data` read as message `desc`, or None if it is well formed."""
    try:
        _walk(data, 0, len(data), desc, "")
    except _Fault as fault:
        return fault.fault
    return None

"""DIGITS' standard networks (LeNet, AlexNet, GoogLeNet), built in Python and shipped as files.

`build_network(name)` builds the NetParameter with `prototxt.netspec`; `network_path(name)` is
the shipped .prototxt generated from it (`python -m prototxt.networks.build`). Both equal the
all-in-one files of DIGITS 6.1.1 (tests/prototxt/test_networks.py compares them).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from prototxt import caffe_pb2
from prototxt.errors import PrototxtError
from prototxt.networks.alexnet import alexnet
from prototxt.networks.googlenet import googlenet
from prototxt.networks.lenet import lenet

__all__ = ["STANDARD_NETWORKS", "build_network", "network_path"]

HERE = Path(__file__).resolve().parent
STANDARD_NETWORKS = ("lenet", "alexnet", "googlenet")
_BUILDERS: dict[str, Callable[[], caffe_pb2.NetParameter]] = {
    "lenet": lenet, "alexnet": alexnet, "googlenet": googlenet}


def _check(name: str) -> str:
    if name not in _BUILDERS:
        raise PrototxtError(f"no standard network {name!r}; choose one of "
                            f"{', '.join(STANDARD_NETWORKS)}", path=HERE)
    return name


def network_path(name: str) -> Path:
    """The shipped all-in-one .prototxt of standard network `name` (e.g. "googlenet")."""
    return HERE / f"{_check(name)}.prototxt"


def build_network(name: str) -> caffe_pb2.NetParameter:
    """Build standard network `name` in Python (a fresh message on every call)."""
    return _BUILDERS[_check(name)]()

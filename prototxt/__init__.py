"""Caffe file formats: our schema, text/binary I/O, upgrades, net states, DIGITS network files.

    from prototxt import read_net, read_solver, read_blob, blob_array, filter_net, make_state,
        digits_split
"""
from prototxt import caffe_pb2
from prototxt.blobs import BlobError, blob_array, blob_storage, describe_storage
from prototxt.digits import DatasetFacts, DigitsSplit, digits_split, write_split
from prototxt.errors import DigitsError, PrototxtError
from prototxt.io import (atomic_folder, atomic_write, blob_shape, parse_binary, parse_text, read_binary, read_blob,
                         read_caffemodel, read_net, read_solver, read_solverstate, read_text,
                         write_binary, write_text)
from prototxt.netstate import filter_net, layer_included, make_state, state_meets_rule
from prototxt.networks import STANDARD_NETWORKS, build_network, network_path
from prototxt.upgrade import upgrade_net, upgrade_solver

__all__ = [
    "caffe_pb2", "BlobError", "blob_array", "blob_storage", "describe_storage",
    "DatasetFacts", "DigitsSplit", "digits_split", "write_split", "DigitsError",
    "PrototxtError", "atomic_folder", "atomic_write", "blob_shape", "parse_binary", "parse_text", "read_binary",
    "read_blob", "read_caffemodel", "read_net", "read_solver", "read_solverstate", "read_text",
    "write_binary", "write_text", "filter_net", "layer_included", "make_state",
    "state_meets_rule", "STANDARD_NETWORKS", "build_network", "network_path", "upgrade_net",
    "upgrade_solver",
]

"""Fuzzing the Caffe file readers (issue 14, tests to keep): seeded mutations of a text net
(current and V1), a solver, a caffemodel, a mean .binaryproto and a .solverstate. Every read
either succeeds or raises PrototxtError (with the file named); nothing else may escape, and a
case may not take long. Bounded to a few seconds; the seed and case number are in the failure."""
from __future__ import annotations

import time

import numpy as np
import pytest

from prototxt import caffe_pb2, io
from prototxt.errors import PrototxtError
from prototxt.networks import network_path

pytestmark = pytest.mark.slow

SEED = 20240314
BUDGET_S = 10.0         # for the whole file, on a slow machine
SLOW_CASE_S = 2.0

V1_NET = b"""name: "old"
input: "data"
input_dim: 1 input_dim: 1 input_dim: 8 input_dim: 8
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
  blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
  convolution_param { num_output: 3 kernel_size: 3 weight_filler { type: "xavier" } } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "pool" type: POOLING bottom: "conv" top: "pool" pooling_param { pool: MAX kernel_size: 2 stride: 2 } }
layers { name: "ip" type: INNER_PRODUCT bottom: "pool" top: "ip" inner_product_param { num_output: 10 } }
layers { name: "prob" type: SOFTMAX bottom: "ip" top: "prob" }
"""

SOLVER = b"""net: "train_val.prototxt"
test_iter: 10
test_interval: 100
base_lr: 0.01
momentum: 0.9
weight_decay: 0.0005
lr_policy: "step"
gamma: 0.1
stepsize: 1000
display: 10
max_iter: 3000
snapshot: 1000
snapshot_prefix: "snapshot"
solver_mode: GPU
solver_type: NESTEROV
"""


def _caffemodel(rng) -> bytes:
    net = caffe_pb2.NetParameter(name="tiny")
    layer = net.layer.add(name="conv1", type="Convolution", bottom=["data"], top=["conv1"])
    for shape in ((4, 3, 3, 3), (4,)):
        blob = layer.blobs.add()
        blob.shape.dim.extend(shape)
        blob.data.extend(rng.standard_normal(int(np.prod(shape))).astype(np.float32).tolist())
    half = net.layer.add(name="half", type="InnerProduct")
    raw = half.blobs.add()
    raw.shape.dim.extend([2, 2])
    raw.raw_data_type = caffe_pb2.FLOAT16
    raw.raw_data = np.arange(4, dtype=np.float16).tobytes()
    return net.SerializeToString()


def _mean(rng) -> bytes:
    blob = caffe_pb2.BlobProto()
    blob.shape.dim.extend([1, 3, 5, 4])
    blob.data.extend(rng.uniform(0, 255, 60).astype(np.float32).tolist())
    return blob.SerializeToString()


def _solverstate(rng) -> bytes:
    state = caffe_pb2.SolverState(iter=1200, learned_net="snapshot_iter_1200.caffemodel",
                                  current_step=1)
    for shape in ((4, 3), (4,)):
        blob = state.history.add()
        blob.shape.dim.extend(shape)
        blob.data.extend(rng.standard_normal(int(np.prod(shape))).astype(np.float32).tolist())
    return state.SerializeToString()


def mutate(data: bytes, rng: np.random.Generator, text: bool) -> bytes:
    """One to three random edits: flips, inserts (bytes, invalid UTF-8, deep nesting, long
    tokens, big varints), deletions, duplications, truncation."""
    data = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 9))
        at = int(rng.integers(0, len(data) + 1))
        if kind == 0 and data:                              # flip bits
            for i in rng.integers(0, len(data), int(rng.integers(1, 9))):
                data[int(i)] ^= 1 << int(rng.integers(0, 8))
        elif kind == 1:                                     # random bytes
            data[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == 2:                                     # delete a span
            data[at:at + int(rng.integers(1, 256))] = b""
        elif kind == 3 and data:                            # duplicate a span
            start = int(rng.integers(0, len(data)))
            data[at:at] = data[start:start + int(rng.integers(1, 512))]
        elif kind == 4:                                     # truncate
            del data[at:]
        elif kind == 5:                                     # invalid UTF-8 (after 64 KB, too)
            data[at:at] = rng.choice([b"\xff", b"\xe9", b"\xc3\x28", b"\xed\xa0\x80", b"\x00"])
            if rng.random() < 0.2:
                data[:0] = b"# pad\n" * 12000
        elif kind == 6 and text:                            # deep nesting
            depth = int(rng.choice([100, 1000, 20000]))
            data[at:at] = b"layer { " * depth + b"}" * int(rng.integers(0, depth + 1))
        elif kind == 6:                                     # a huge or endless varint
            data[at:at] = b"\x0a" + b"\xff" * int(rng.integers(1, 12)) + b"\x7f"
        elif kind == 7:                                     # a long token
            data[at:at] = b"a" * int(rng.choice([1000, 200_000])) + rng.choice([b"", b"{", b":"])
        else:                                               # a number where it hurts
            data[at:at] = rng.choice([b" 99999999999999999999", b" -1", b" nan", b" 1e999",
                                      b" 4000000000", b" -2147483649"])
    return bytes(data)


READERS = {
    "net.prototxt": (lambda p: io.read_net(p), True),
    "v1.prototxt": (lambda p: io.read_net(p), True),
    "solver.prototxt": (lambda p: io.read_solver(p), True),
    "model.caffemodel": (lambda p: io.read_caffemodel(p), False),
    "net_as_binary.caffemodel": (lambda p: io.read_net(p), False),
    "mean.binaryproto": (lambda p: io.read_blob(p), False),
    "state.solverstate": (lambda p: io.read_solverstate(p), False),
}


def test_readers_raise_only_prototxt_errors(tmp_path):
    rng = np.random.default_rng(SEED)
    seeds = {"net.prototxt": network_path("lenet").read_bytes(), "v1.prototxt": V1_NET,
             "solver.prototxt": SOLVER, "model.caffemodel": _caffemodel(rng),
             "net_as_binary.caffemodel": _caffemodel(rng), "mean.binaryproto": _mean(rng),
             "state.solverstate": _solverstate(rng)}
    for name, data in seeds.items():                        # the seeds themselves read
        (tmp_path / name).write_bytes(data)
        READERS[name][0](tmp_path / name)
    deadline = time.monotonic() + BUDGET_S
    cases = errors = 0
    for case in range(1500):
        if time.monotonic() > deadline:
            break
        name = list(seeds)[case % len(seeds)]
        read, text = READERS[name]
        path = tmp_path / name
        path.write_bytes(mutate(seeds[name], rng, text))
        start = time.monotonic()
        try:
            read(path)
        except PrototxtError as exc:
            errors += 1
            assert str(exc).startswith(str(path)), f"case {case} ({name}): {exc}"
            assert len(str(exc)) < 5000, f"case {case} ({name}): a {len(str(exc))}-character message"
        except Exception as exc:  # noqa: BLE001 - the point of the test
            pytest.fail(f"case {case} ({name}, seed {SEED}): {type(exc).__name__}: "
                        f"{str(exc)[:300]}")
        assert time.monotonic() - start < SLOW_CASE_S, f"case {case} ({name}) took too long"
        cases += 1
    assert cases >= 100 and errors >= cases // 4

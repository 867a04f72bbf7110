"""Snapshots as Caffe writes them: `<prefix>_iter_N.caffemodel` (the train net's blobs) and
`<prefix>_iter_N.solverstate` (Caffe's SolverState: iter, learned_net, history blobs in Caffe's
order, current_step). Both are protobuf, written atomically; nothing is pickled. History blobs
are read in any storage (BVLC data, NVIDIA Caffe raw_data: prototxt/blobs.py).

The prefix resolves against the solver's folder (DIGITS' "snapshot" lands in the job folder).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from converter.caffemodel import array_blob, load_caffemodel, save_caffemodel
from converter.net import CaffeNet
from prototxt import blob_array, caffe_pb2, read_solverstate, write_binary
from prototxt.errors import PrototxtError

from .updates import to_caffe_order

SNAPSHOT_NAME = re.compile(r"_iter_(\d+)\.(caffemodel|solverstate)$")


def snapshot_prefix(solver: caffe_pb2.SolverParameter, folder: Path, solver_path: Path) -> Path:
    # Caffe's default prefix is the solver file's name without extension
    prefix = solver.snapshot_prefix or solver_path.stem
    path = Path(prefix)
    return path if path.is_absolute() else folder / path


def snapshot_paths(prefix: Path, iteration: int) -> tuple[Path, Path]:
    base = f"{prefix.name}_iter_{iteration}"
    return prefix.parent / f"{base}.caffemodel", prefix.parent / f"{base}.solverstate"


def save_snapshot(model: CaffeNet, histories: list[list[torch.Tensor]], iteration: int,
                  current_step: int, prefix: Path) -> tuple[Path, Path]:
    """Write the weights, then the state naming them (a crash between leaves no state that
    points at a missing model)."""
    model_path, state_path = snapshot_paths(prefix, iteration)
    save_caffemodel(model, model_path)
    state = caffe_pb2.SolverState(iter=iteration, current_step=current_step,
                                  learned_net=model_path.name)
    for tensor in to_caffe_order(histories):
        state.history.append(array_blob(tensor.detach().cpu().numpy()))
    write_binary(state, state_path)
    return model_path, state_path


@dataclass
class Restored:
    iteration: int
    current_step: int
    history: list[np.ndarray]
    learned_net: Path


def read_snapshot_state(path: str | Path) -> Restored:
    """A .solverstate and the .caffemodel it names (relative names: next to the state file)."""
    path = Path(path)
    state = read_solverstate(path)
    if not state.HasField("learned_net"):
        raise PrototxtError("the solver state names no learned_net (.caffemodel)", path)
    learned = Path(state.learned_net)
    if not learned.is_absolute():
        beside = path.parent / learned.name
        learned = beside if beside.is_file() or not learned.is_file() else learned
    if not learned.is_file():
        raise PrototxtError(f"the solver state's weights {state.learned_net!r} do not exist "
                            f"(looked for {learned})", path)
    for name in ("iter", "current_step"):
        if getattr(state, name) < 0:
            raise PrototxtError(f"the solver state's {name} is {getattr(state, name)}; it cannot "
                                "be negative (a damaged or hand-made file)", path, field=name)
    return Restored(int(state.iter), int(state.current_step),
                    [blob_array(b, path, index=i) for i, b in enumerate(state.history)], learned)


def load_snapshot_weights(model: CaffeNet, path: str | Path) -> list[str]:
    """A resume's weights: strict where --weights is lenient. Every learnable layer of the train
    net must be in the file (a caffemodel cut at a layer boundary still parses, and the missing
    layers would silently keep fresh fillers); layers only the file has are reported."""
    report = load_caffemodel(model, path)
    if report.missing:
        raise PrototxtError(
            f"cannot resume: the snapshot's weights lack {len(report.missing)} learnable "
            f"layer(s) of the train net: {', '.join(report.missing)} (the file is truncated, or "
            f"it was written for another net); resume from another snapshot, or start afresh "
            f"from these weights with --weights (layers not in the file keep their fillers)",
            path)
    return [f"{path}: {report.summary()}"]


def load_weights(model: CaffeNet, paths: list[str | Path]) -> list[str]:
    """Caffe's --weights A,B: copy blobs by layer name from each file in turn (layers the model
    lacks are ignored, as in CopyTrainedLayersFrom). Returns one summary line per file."""
    lines = []
    for path in paths:
        report = load_caffemodel(model, path)
        lines.append(f"{path}: {report.summary()}")
    return lines


def latest_snapshot(prefix: Path) -> Path | None:
    """The newest `<prefix>_iter_N.solverstate` whose caffemodel exists (for --resume auto)."""
    best = None
    for state in prefix.parent.glob(f"{prefix.name}_iter_*.solverstate"):
        m = SNAPSHOT_NAME.search(state.name)
        if m and state.with_suffix(".caffemodel").is_file():
            n = int(m.group(1))
            if best is None or n > best[0]:
                best = (n, state)
    return best[1] if best else None

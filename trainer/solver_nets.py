"""Which nets a solver file trains and tests (Caffe's Solver::InitTrainNet / InitTestNets).

Exactly one of train_net_param, train_net, net_param, net gives the train net; it runs in the
TRAIN phase with the solver's train_state (level, stages). Test nets: each test_net_param, then
each test_net file, then - when `net`/`net_param` is given - as many instances of that net as
test_iter has entries left over, each with its test_state (or a plain TEST state). Every test net
needs a test_iter. File paths resolve against the solver's folder: Caffe used the working
directory, and DIGITS ran Caffe inside the job folder, so both agree for DIGITS jobs.

`--dataset DIR` (`point_at_dataset`) rewrites the Data layers of each phase-filtered net: sources
become DIR/train_db (TRAIN) or DIR/val_db (TEST), mean files DIR/mean.binaryproto.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from prototxt import caffe_pb2, filter_net, make_state, read_net
from prototxt.errors import PrototxtError

from .lr_policies import SolverConfigError

NetParameter = caffe_pb2.NetParameter
DATA_LAYERS = ("Data",)  # the layers this trainer feeds from a database
FILLED_LAYERS = ("DummyData",)  # refilled by their fillers at every forward (trainer.solver)
# any other data layer (Input, ImageData, MemoryData) is refused with a clear error


@dataclass
class PhaseNet:
    """One net filtered for its NetState, ready for converter.build_model."""
    net: NetParameter
    source: str          # the file it came from (for error messages)
    phase: int
    stages: tuple[str, ...]
    level: int
    test_iter: int = 0   # test nets only


def _state(state: caffe_pb2.NetState, phase: int) -> tuple[int, tuple[str, ...], int]:
    return phase, tuple(state.stage), int(state.level)


def _read(path: str, folder: Path) -> tuple[NetParameter, str]:
    full = Path(path) if Path(path).is_absolute() else folder / path
    if not full.is_file():
        raise PrototxtError(f"the solver names net file {path!r}, which does not exist "
                            f"(looked for {full})", folder / "solver.prototxt")
    return read_net(full), str(full)


def _filtered(net: NetParameter, source: str, phase: int, stages, level) -> NetParameter:
    try:
        return filter_net(net, make_state(phase, level, stages))
    except PrototxtError as exc:
        raise PrototxtError(exc.message, source) from None


def train_net(solver: caffe_pb2.SolverParameter, folder: Path) -> PhaseNet:
    given = [f for f in ("train_net_param", "train_net", "net_param", "net") if solver.HasField(f)]
    if len(given) != 1:
        raise SolverConfigError(
            "a solver needs exactly one of train_net_param, train_net, net_param, net; "
            + (f"it gives {', '.join(given)}" if given else "it gives none"))
    field = given[0]
    if field.endswith("_param"):
        net, source = NetParameter(), f"<solver {field}>"
        net.CopyFrom(getattr(solver, field))
    else:
        net, source = _read(getattr(solver, field), folder)
    phase, stages, level = _state(solver.train_state, caffe_pb2.TRAIN)
    return PhaseNet(_filtered(net, source, phase, stages, level), source, phase, stages, level)


def test_nets(solver: caffe_pb2.SolverParameter, folder: Path) -> list[PhaseNet]:
    specific: list[tuple[NetParameter, str]] = []
    for i, param in enumerate(solver.test_net_param):
        net = NetParameter()
        net.CopyFrom(param)
        specific.append((net, f"<solver test_net_param #{i}>"))
    specific += [_read(path, folder) for path in solver.test_net]
    generic = 0
    if solver.HasField("net") or solver.HasField("net_param"):
        generic = len(solver.test_iter) - len(specific)
    if len(solver.test_iter) < len(specific) + max(generic, 0):
        raise SolverConfigError(f"test_iter must be given for each test net: "
                                f"{len(specific)} test net(s), {len(solver.test_iter)} test_iter")
    nets = list(specific)
    if generic > 0:
        if solver.HasField("net_param"):
            base = (solver.net_param, "<solver net_param>")
        else:
            base = _read(solver.net, folder)
        nets += [base] * generic
    if len(solver.test_state) not in (0, len(nets)):
        raise SolverConfigError(f"test_state must be unspecified or given once per test net "
                                f"({len(nets)}); it is given {len(solver.test_state)} times")
    out = []
    for i, (net, source) in enumerate(nets):
        state = solver.test_state[i] if len(solver.test_state) else caffe_pb2.NetState()
        phase, stages, level = _state(state, caffe_pb2.TEST)
        out.append(PhaseNet(_filtered(net, source, phase, stages, level), source, phase, stages,
                            level, int(solver.test_iter[i])))
    return out


def point_at_dataset(phase_net: PhaseNet, dataset: Path) -> None:
    """Rewrite the Data layers' LMDB sources and mean files to the dataset folder (in place)."""
    db = dataset / ("train_db" if phase_net.phase == caffe_pb2.TRAIN else "val_db")
    for layer in phase_net.net.layer:
        if layer.type not in DATA_LAYERS:
            continue
        layer.data_param.source = str(db)
        if layer.transform_param.HasField("mean_file"):
            layer.transform_param.mean_file = str(dataset / "mean.binaryproto")

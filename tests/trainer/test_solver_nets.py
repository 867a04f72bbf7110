"""Which nets a solver trains and tests, where their files are, and --dataset."""
from __future__ import annotations

from pathlib import Path

import pytest

from prototxt import caffe_pb2, parse_text
from prototxt.errors import PrototxtError
from trainer.lr_policies import SolverConfigError
from trainer.solver_nets import point_at_dataset, train_net
from trainer import solver_nets

from . import tiny


def solver(text: str) -> caffe_pb2.SolverParameter:
    return parse_text(text, caffe_pb2.SolverParameter())


@pytest.fixture
def job(tmp_path) -> Path:
    net = f'name: "n"\n{tiny.data_layers(Path("/nowhere"), 4, 5)}\n{tiny.LINEAR}'
    (tmp_path / "train_val.prototxt").write_text(net)
    return tmp_path


def test_net_resolves_against_the_solver_folder_and_filters_phases(job):
    s = solver('net: "train_val.prototxt" test_iter: 3')
    train = train_net(s, job)
    assert train.phase == caffe_pb2.TRAIN and train.source == str(job / "train_val.prototxt")
    assert [l.name for l in train.net.layer] == ["train-data", "ip", "loss"]
    (test,) = solver_nets.test_nets(s, job)
    assert [l.name for l in test.net.layer] == ["test-data", "ip", "loss", "accuracy"]
    assert test.test_iter == 3


def test_generic_net_instances_with_test_states(job):
    s = solver('net: "train_val.prototxt" test_iter: 3 test_iter: 7 '
               'test_state { stage: "a" } test_state { level: 2 }')
    nets = solver_nets.test_nets(s, job)
    assert [(n.stages, n.level, n.test_iter) for n in nets] == [(("a",), 0, 3), ((), 2, 7)]


def test_train_state_stages_select_layers(job):
    text = (job / "train_val.prototxt").read_text().replace(
        'name: "ip" type: "InnerProduct"', 'name: "ip" type: "InnerProduct" include { stage: "x" }')
    (job / "staged.prototxt").write_text(text)
    with_stage = train_net(solver('net: "staged.prototxt" train_state { stage: "x" }'), job)
    without = train_net(solver('net: "staged.prototxt"'), job)
    assert "ip" in [l.name for l in with_stage.net.layer]
    assert "ip" not in [l.name for l in without.net.layer]


def test_exactly_one_train_net(job):
    with pytest.raises(SolverConfigError, match="it gives none"):
        train_net(solver("base_lr: 0.1"), job)
    with pytest.raises(SolverConfigError, match="train_net, net"):
        train_net(solver('net: "a" train_net: "b"'), job)


def test_missing_net_file_names_the_path(job):
    with pytest.raises(PrototxtError, match="missing.prototxt.*does not exist"):
        train_net(solver('net: "missing.prototxt"'), job)


def test_test_iter_needed_per_test_net(job):
    with pytest.raises(SolverConfigError, match="test_iter must be given for each test net"):
        solver_nets.test_nets(solver('train_net: "train_val.prototxt" test_net: "train_val.prototxt"'), job)


def test_test_state_count(job):
    with pytest.raises(SolverConfigError, match="test_state"):
        solver_nets.test_nets(solver('net: "train_val.prototxt" test_iter: 1 test_state {} test_state {}'), job)


def test_point_at_dataset_rewrites_sources_and_mean(job, tmp_path):
    text = (job / "train_val.prototxt").read_text().replace(
        "scale: 0.01", 'scale: 0.01 mean_file: "/opt/DIGITS/jobs/x/mean.binaryproto"')
    (job / "mean.prototxt").write_text(text)
    s = solver('net: "mean.prototxt" test_iter: 1')
    train, (test,) = train_net(s, job), solver_nets.test_nets(s, job)
    for net in (train, test):
        point_at_dataset(net, tmp_path / "ds")
    assert train.net.layer[0].data_param.source == str(tmp_path / "ds" / "train_db")
    assert test.net.layer[0].data_param.source == str(tmp_path / "ds" / "val_db")
    assert train.net.layer[0].transform_param.mean_file == str(tmp_path / "ds" / "mean.binaryproto")

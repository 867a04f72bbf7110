"""DummyData layers in trained nets: refilled by their fillers at every forward pass (Caffe's
DummyDataLayer::Forward), beside Data layers or alone (a benchmark net), reproducibly."""
from __future__ import annotations

import pytest
import torch

from prototxt.errors import PrototxtError
from trainer.solver import Options, Solver

from . import tiny

QUIET = dict(log_file=None, echo=False, progress=False)

# the LMDB's images plus noise drawn by a DummyData layer at every pass
NOISY = '''
layer { name: "noise" type: "DummyData" top: "noise"
  dummy_data_param { shape { dim: 4 dim: 1 dim: 6 dim: 10 } data_filler { type: "gaussian" std: 0.3 } } }
layer { name: "noisy" type: "Eltwise" bottom: "data" bottom: "noise" top: "noisy" }
layer { name: "ip" type: "InnerProduct" bottom: "noisy" top: "ip"
  inner_product_param { num_output: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }
'''


def benchmark_net(filler: str) -> str:
    """A net fed by DummyData only (`caffe time` / Intel's benchmark nets), both phases."""
    return f'''name: "bench"
layer {{ name: "data" type: "DummyData" top: "data" top: "label"
  dummy_data_param {{ shape {{ dim: 5 dim: 2 dim: 3 dim: 3 }} shape {{ dim: 5 }}
                     data_filler {{ {filler} }} data_filler {{ type: "constant" value: 1 }} }} }}
layer {{ name: "ip" type: "InnerProduct" bottom: "data" top: "ip"
  inner_product_param {{ num_output: 3 weight_filler {{ type: "gaussian" std: 0.1 }} }} }}
layer {{ name: "loss" type: "SoftmaxWithLoss" bottom: "ip" bottom: "label" top: "loss" }}
layer {{ name: "acc" type: "Accuracy" bottom: "ip" bottom: "label" top: "acc" include {{ phase: TEST }} }}
'''


def write_bench(folder, filler: str, **fields):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "net.prototxt").write_text(benchmark_net(filler))
    solver = dict(net="net.prototxt", base_lr=0.1, lr_policy="fixed", max_iter=6, display=0,
                  test_iter=2, test_interval=3, snapshot=0, random_seed=3)
    solver.update(fields)
    (folder / "solver.prototxt").write_text("\n".join(
        f'{k}: "{v}"' if isinstance(v, str) else f"{k}: {v}" for k, v in solver.items()))
    return folder / "solver.prototxt"


@pytest.fixture
def dataset(tmp_path, rng):
    tiny.make_dataset(tmp_path / "data", rng, n_train=22, n_val=14)
    return tmp_path / "data"


def test_dummy_data_beside_data_layers_resumes_exactly(tmp_path, dataset):
    common = dict(body=NOISY, val_batch=4, max_iter=10, test_iter=2, test_interval=3, snapshot=0)
    whole = Solver(tiny.write_job(tmp_path / "whole", dataset, **common), Options(**QUIET)).solve()
    path = tiny.write_job(tmp_path / "part", dataset, **common)
    Solver(path, Options(**QUIET, max_iter=4)).solve()
    rest = Solver(path, Options(**QUIET, resume=tmp_path / "part" / "snapshot_iter_4.solverstate")).solve()
    assert [rest.train_losses[i] for i in range(4, 10)] == [whole.train_losses[i] for i in range(4, 10)]
    assert rest.tests == [t for t in whole.tests if t[0] >= 4]  # the test net's draws too


def test_refilled_at_every_pass_as_caffe_does(tmp_path):
    """lr 0 keeps the weights: losses change only because the gaussian blob is redrawn; a
    constant filler gives the same blob every time."""
    drawn = Solver(write_bench(tmp_path / "g", 'type: "gaussian"', base_lr=0.0), Options(**QUIET))
    losses = drawn.solve().train_losses
    assert len(set(losses.values())) == len(losses) == 6
    fixed = Solver(write_bench(tmp_path / "c", 'type: "constant" value: 0.5', base_lr=0.0),
                   Options(**QUIET)).solve().train_losses
    assert len(set(fixed.values())) == 1
    again = Solver(write_bench(tmp_path / "g2", 'type: "gaussian"', base_lr=0.0), Options(**QUIET))
    assert again.solve().train_losses == losses  # seeded by random_seed


def test_dummy_data_only_net_trains_and_tests(tmp_path):
    solver = Solver(write_bench(tmp_path / "b", 'type: "gaussian"'), Options(**QUIET))
    result = solver.solve()
    assert solver.batch_size == 5 and solver.epoch(6) == 6  # no dataset: an epoch is a batch
    assert [i for i, _ in result.tests] == [0, 3, 6]
    assert all(0 <= values["acc"] <= 1 for _, values in result.tests)
    assert result.train_losses[5] < result.train_losses[0]  # label 1 always: learnable
    assert all(torch.isfinite(p).all() for p in solver.train.model.parameters())


def test_other_input_layers_are_refused(tmp_path, dataset):
    body = 'layer { name: "extra" type: "Input" top: "extra" input_param { shape { dim: 4 } } }\n' + tiny.LINEAR
    with pytest.raises(PrototxtError, match=r"layer 'extra' \(Input\): training reads Data layers "
                                            r"\(LMDB\) and DummyData layers only"):
        Solver(tiny.write_job(tmp_path / "j", dataset, body=body), Options(**QUIET))

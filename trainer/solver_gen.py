"""DIGITS 6.1's model form -> solver.prototxt (caffe_train.py, save_files_classification).

With N_train/N_val the train/val entry counts, B/Bv the train/val batch sizes and
iter_size the batch accumulation (1 if unset):

| field | DIGITS' rule |
|---|---|
| max_iter | ceil(N_train / (B * iter_size)) * epochs |
| snapshot | s = snapshot_interval * train_iter: 1 if 0 < s <= 1; int(s) if 1 < s < max_iter; else 0 |
| test_iter | ceil(N_val / Bv) (only with a val set and val_interval > 0) |
| test_interval | v = val_interval * train_iter: 1 if 0 < v <= 1; int(v) if 1 < v < max_iter; else max_iter |
| display | max(1, min(floor(max_iter / (epochs * 8)), ceil(5000 / (B * iter_size)))) |
| momentum | 0.9, except AdaGrad and RMSProp (none) |
| weight_decay | base_lr / 100 |
| lr policy | parameters given in % of training, scale = max_iter / 100: step: stepsize = ceil(step * scale); multistep: stepvalue_i = ceil(v_i * scale); exp: gamma = gamma^(1/scale); inv: gamma = gamma / scale; sigmoid: gamma = -gamma / scale, stepsize = ceil(step * scale); poly: power |

`solver_type` is written as DIGITS wrote it (the deprecated enum; our reader upgrades it to
`type`), `net: "train_val.prototxt"`, `snapshot_prefix: "snapshot"`.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from prototxt import caffe_pb2

SOLVER_TYPES = ("SGD", "NESTEROV", "ADAGRAD", "RMSPROP", "ADADELTA", "ADAM")
POLICIES = ("fixed", "step", "multistep", "exp", "inv", "poly", "sigmoid")
# DIGITS' form defaults for each policy's parameters (digits/model/forms.py).
POLICY_DEFAULTS = {
    "step": {"step": 33.0, "gamma": 0.1},
    "multistep": {"values": (50.0, 85.0), "gamma": 0.5},
    "exp": {"gamma": 0.95},
    "inv": {"gamma": 0.1, "power": 0.5},
    "poly": {"power": 3.0},
    "sigmoid": {"step": 50.0, "gamma": 0.1},
}


@dataclass
class ModelForm:
    """DIGITS' "New Image Classification Model" form (None = left blank)."""
    epochs: int = 30
    batch_size: int | None = None
    batch_accumulation: int | None = None
    base_lr: float = 0.01
    policy: str = "step"
    step: float | None = None        # % of training (step, sigmoid)
    step_values: tuple[float, ...] | None = None  # % of training (multistep)
    gamma: float | None = None
    power: float | None = None
    solver_type: str = "SGD"
    rms_decay: float = 0.99
    random_seed: int | None = None
    snapshot_interval: float = 1.0   # epochs
    val_interval: float = 1.0        # epochs
    gpu: bool = False                # solver_mode GPU (DIGITS: CUDA present and GPUs chosen)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"learning-rate policy {self.policy!r} is not one of {', '.join(POLICIES)}")
        self.solver_type = self.solver_type.upper()
        if self.solver_type not in SOLVER_TYPES:
            raise ValueError(f"solver type {self.solver_type!r} is not one of {', '.join(SOLVER_TYPES)}")
        if self.epochs < 1:
            raise ValueError(f"epochs must be at least 1, not {self.epochs}")

    def policy_param(self, name: str):
        value = {"step": self.step, "values": self.step_values, "gamma": self.gamma,
                 "power": self.power}[name]
        return POLICY_DEFAULTS[self.policy][name] if value is None else value


def _interval(x: float, max_iter: int, otherwise: int) -> int:
    if 0 < x <= 1:
        return 1
    if 1 < x < max_iter:
        return int(x)
    return otherwise


def make_solver(form: ModelForm, n_train: int, n_val: int, train_batch: int,
                val_batch: int | None) -> caffe_pb2.SolverParameter:
    """The solver DIGITS writes for these counts and batch sizes (from the train_val net)."""
    iter_size = form.batch_accumulation or 1
    train_iter = math.ceil(n_train / (train_batch * iter_size))
    max_iter = train_iter * form.epochs
    solver = caffe_pb2.SolverParameter()
    if n_val > 0 and form.val_interval > 0 and val_batch:
        solver.test_iter.append(math.ceil(n_val / val_batch))
        solver.test_interval = _interval(form.val_interval * train_iter, max_iter, max_iter)
    solver.base_lr = form.base_lr
    solver.display = max(1, min(math.floor(max_iter / (form.epochs * 8)),
                                math.ceil(5000 / (train_batch * iter_size))))
    solver.max_iter = max_iter
    _set_policy(solver, form, max_iter / 100.0)
    if form.solver_type not in ("ADAGRAD", "RMSPROP"):
        solver.momentum = 0.9
    solver.weight_decay = solver.base_lr / 100.0  # from the float32-stored base_lr, as DIGITS
    solver.snapshot = _interval(form.snapshot_interval * train_iter, max_iter, 0)
    solver.snapshot_prefix = "snapshot"
    solver.solver_mode = caffe_pb2.SolverParameter.GPU if form.gpu else caffe_pb2.SolverParameter.CPU
    if form.random_seed is not None:
        solver.random_seed = form.random_seed
    solver.net = "train_val.prototxt"
    solver.solver_type = caffe_pb2.SolverParameter.SolverType.Value(form.solver_type)
    if form.batch_accumulation:
        solver.iter_size = form.batch_accumulation
    if form.solver_type == "RMSPROP":
        solver.rms_decay = form.rms_decay
    return solver


def _set_policy(solver: caffe_pb2.SolverParameter, form: ModelForm, scale: float) -> None:
    policy = form.policy
    solver.lr_policy = policy
    if policy == "step":
        solver.stepsize = math.ceil(form.policy_param("step") * scale)
        solver.gamma = form.policy_param("gamma")
    elif policy == "multistep":
        solver.stepvalue.extend(math.ceil(v * scale) for v in form.policy_param("values"))
        solver.gamma = form.policy_param("gamma")
    elif policy == "exp":
        solver.gamma = math.pow(form.policy_param("gamma"), 1.0 / scale)
    elif policy == "inv":
        solver.gamma = form.policy_param("gamma") / scale
        solver.power = form.policy_param("power")
    elif policy == "poly":
        solver.power = form.policy_param("power")
    elif policy == "sigmoid":
        solver.gamma = -form.policy_param("gamma") / scale
        solver.stepsize = math.ceil(form.policy_param("step") * scale)

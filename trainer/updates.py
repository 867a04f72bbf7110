"""Caffe's parameter update, step by step, on torch tensors (Caffe's formulas, not torch.optim's).

One Caffe iteration (`SGDSolver::ApplyUpdate`, after `iter_size` forward/backward passes have
summed the gradients) does, in this order:

1. rate = learning_rate(solver, iter)                      (trainer.lr_policies, 0-based iter)
2. clip_gradients: one L2 norm over *all* learnable params; if norm > clip_gradients, every
   gradient is scaled by clip_gradients / norm (clip_gradients < 0, the default, turns it off).
   Note that clipping sees the *summed* gradients, before the iter_size division.
3. per parameter, in the net's learnable-param order:
   a. normalize:  g *= 1 / iter_size                         (only when iter_size > 1)
   b. regularize: L2  g += local_decay * w
                  L1  g += local_decay * sign(w)            local_decay = weight_decay * decay_mult
   c. compute_update_value: g -> the update u, keeping the solver type's history (below)
                                                             local_rate = rate * lr_mult
   d. apply_update: w -= u                                   (Caffe's Net::Update: data -= diff)
4. iter += 1 (the caller's).

The update rules (`SolverParameter.type`; m = momentum, δ = delta, ρ = rms_decay,
β1 = momentum, β2 = momentum2, lr = local_rate, t = iter + 1):

========  =====  ======================================================================
type      hist.  update u (history updated in place)
========  =====  ======================================================================
SGD       1      v = m·v + lr·g;  u = v
Nesterov  1      v' = m·v + lr·g;  u = (1+m)·v' − m·v;  v = v'
AdaGrad   1      h = h + g²;  u = lr·g / (√h + δ)                    (needs m = 0)
RMSProp   1      h = ρ·h + (1−ρ)·g²;  u = lr·g / (√h + δ)            (needs m = 0, 0 ≤ ρ < 1)
AdaDelta  2      h1 = m·h1 + (1−m)·g²;  d = g·√((h2 + δ)/(h1 + δ));
                 h2 = m·h2 + (1−m)·d²;  u = lr·d                     (lr applied last)
Adam      2      m1 = β1·m1 + (1−β1)·g;  v = β2·v + (1−β2)·g²;
                 u = lr·(√(1−β2^t) / (1−β1^t))·m1 / (√v + δ)
========  =====  ======================================================================

Where PyTorch's optimizers differ (all of them put weight decay into the gradient, as Caffe's
L2 does, except AdamW):

- SGD: torch keeps b = m·b + g and steps lr·b; Caffe keeps the rate inside, v = m·v + lr·g. They
  agree while lr is constant and differ from the first iteration after any lr change (every
  iteration for exp/inv/poly/sigmoid): torch rescales the whole momentum at once, Caffe lets the
  old momentum decay. torch's first step also sets b = g, which with v = 0 is the same thing.
- Nesterov: torch's `nesterov=True` steps lr·(g + m·b); equal to Caffe's for constant lr only.
- AdaGrad, RMSProp, AdaDelta: torch's Adagrad (lr_decay 0, initial_accumulator_value 0),
  RMSprop (alpha = ρ, no momentum, not centered) and Adadelta (rho = m, eps = δ) are the same
  formulas.
- Adam: torch adds eps after bias-correcting √v, lr/(1−β1^t)·m1/(√v/√(1−β2^t) + eps); Caffe adds
  δ to the uncorrected √v. Equal only when δ = 0. Caffe's decay is L2 in the gradient (not AdamW).

History blobs and the `.solverstate`. Caffe keeps one history blob per learnable parameter (all
of them, lr_mult 0 included: their history simply stays put), and AdaDelta and Adam append a
second set after the first. `SolverState.history` stores them in that order:

    [first set for params 0..N-1, then second set for params 0..N-1]

SGD/Nesterov: the momentum v; AdaGrad: Σg²; RMSProp: the mean square; AdaDelta: h1 (mean g²), then
h2 (mean update²); Adam: m1 (first moment), then v (second moment). `to_caffe_order` and
`from_caffe_order` convert between that flat list and our per-parameter lists.

Precision: Caffe computes in `Dtype` (float32). Scalars are rounded to float32 where Caffe
holds them in a Dtype (local_rate, local_decay, 1/iter_size, 1 − m, Adam's lr·correction); the
tensor arithmetic runs in the tensors' own dtype (float32 in training; float64 tensors give a
float64 replay). Errors are SolverConfigError (trainer.lr_policies).

Speed: the steps above, written per parameter, cost 5 to 14 small tensor ops each, nearly all
kernel launches on a GPU (GoogLeNet's 128 tensors: 640 ops per update for SGD, 1,408 for Adam;
benchmarks/updates.py). `caffe_apply_update` runs step 3 as `fused_update`: the same element-wise
ops with the same scalars, but as `torch._foreach_*` ops over groups of params sharing (lr_mult,
decay_mult, device, dtype), so each group costs a handful of launches (GoogLeNet: 7 _foreach ops
for SGD, 21 for Adam; on the CPU, where _foreach loops over the ordinary kernels, it saves the
Python and dispatch overhead, chunk by cache-sized chunk). Every type has its fused form
(`fused_rule`, beside its per-parameter rule); the results are bit-identical to the
per-parameter loop (`caffe_apply_update_reference`).
"""
from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, replace
from typing import Callable, NamedTuple, Sequence

import numpy as np
import torch

from prototxt import caffe_pb2
from trainer.lr_policies import SolverConfigError, learning_rate

__all__ = [
    "UPDATE_RULES", "UpdateRule", "update_rule", "get_rule", "supported_types", "check_solver",
    "history_count", "init_history", "to_caffe_order", "from_caffe_order", "local_rate",
    "local_decay", "ClipResult", "clip_gradients", "normalize", "regularize",
    "compute_update_value", "apply_update", "StepResult", "caffe_apply_update",
    "caffe_apply_update_reference", "fused_rule", "fused_update", "CPU_CHUNK",
    "REGULARIZATION_TYPES",
]

Tensor = torch.Tensor
RuleFn = Callable[[Tensor, Sequence[Tensor], float, caffe_pb2.SolverParameter, int], Tensor]
FusedFn = Callable[[list[Tensor], list[list[Tensor]], float, caffe_pb2.SolverParameter, int],
                   list[Tensor]]
CheckFn = Callable[[caffe_pb2.SolverParameter], None]

REGULARIZATION_TYPES = ("L2", "L1")


def _f32(x: float) -> float:
    """x rounded to float32 (a Caffe Dtype), as a Python float."""
    return float(np.float32(x))


def _one_minus(x: float) -> float:
    """Caffe's `Dtype(1) - x` in float32."""
    return float(np.float32(1) - np.float32(x))


# ---------------------------------------------------------------- registry

@dataclass(frozen=True)
class UpdateRule:
    """One Caffe solver type: its update function, how many history sets it keeps, the checks
    its C++ constructor makes, and the same update over lists of tensors (`fused_rule`)."""
    name: str
    history: int
    compute: RuleFn
    check: CheckFn | None = None
    fused: FusedFn | None = None


UPDATE_RULES: dict[str, UpdateRule] = {}
"""Registry: Caffe's solver `type` string (case-sensitive, as Caffe's solver factory) -> rule."""


def update_rule(name: str, history: int,
                check: CheckFn | None = None) -> Callable[[RuleFn], RuleFn]:
    """Register `fn(grad, history, local_rate, solver, iteration) -> update` under `name`."""
    def register(fn: RuleFn) -> RuleFn:
        if name in UPDATE_RULES:
            raise ValueError(f"solver type {name!r} is registered twice")
        UPDATE_RULES[name] = UpdateRule(name, history, fn, check)
        return fn
    return register


def fused_rule(name: str) -> Callable[[FusedFn], FusedFn]:
    """Register `fn(grads, history_sets, local_rate, solver, iteration) -> updates` as the
    `torch._foreach_*` form of the registered type `name` (`fused_update`): the same
    element-wise ops on the same operands with the same scalars, on lists of tensors. Each
    history set is a list parallel to `grads`; the updates may alias a history tensor (the
    caller only reads them); `grads` must not be modified."""
    def register(fn: FusedFn) -> FusedFn:
        UPDATE_RULES[name] = replace(UPDATE_RULES[name], fused=fn)
        return fn
    return register


def supported_types() -> list[str]:
    return sorted(UPDATE_RULES)


def get_rule(solver_type: str) -> UpdateRule:
    """The rule for a solver type; SolverConfigError naming the supported types otherwise."""
    rule = UPDATE_RULES.get(solver_type)
    if rule is None:
        close = [t for t in UPDATE_RULES if t.lower() == solver_type.lower()] or \
            difflib.get_close_matches(solver_type, UPDATE_RULES, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SolverConfigError(f"unknown solver type {solver_type!r}{hint}; supported types: "
                                f"{', '.join(supported_types())}")
    return rule


def history_count(solver_type: str) -> int:
    """How many history tensors the type keeps per learnable parameter (1 or 2)."""
    return get_rule(solver_type).history


def check_solver(solver: caffe_pb2.SolverParameter) -> UpdateRule:
    """Check the update-related fields once, before training, as Caffe's constructors do:
    the type exists, its own constraints hold (AdaGrad/RMSProp: momentum 0; RMSProp:
    0 <= rms_decay < 1), regularization_type is L2 or L1, iter_size >= 1."""
    rule = get_rule(solver.type)
    if rule.check is not None:
        rule.check(solver)
    _check_regularization_type(solver.regularization_type)
    _check_iter_size(solver.iter_size)
    return rule


def init_history(solver_type: str, param: Tensor) -> list[Tensor]:
    """Fresh (zero) history tensors for one parameter, as Caffe's PreSolve makes them."""
    return [torch.zeros_like(param, memory_format=torch.contiguous_format).detach()
            for _ in range(history_count(solver_type))]


def to_caffe_order(histories: Sequence[Sequence[Tensor]]) -> list[Tensor]:
    """Per-parameter history lists -> Caffe's flat `SolverState.history` order (all first
    sets, then all second sets)."""
    if not histories:
        return []
    sets = len(histories[0])
    if any(len(h) != sets for h in histories):
        raise ValueError("every parameter must keep the same number of history tensors")
    return [h[k] for k in range(sets) for h in histories]


def from_caffe_order(blobs: Sequence[Tensor], num_params: int,
                     solver_type: str) -> list[list[Tensor]]:
    """Caffe's flat history list -> per-parameter lists; checks the count like Caffe's restore
    ("Incorrect length of history blobs")."""
    sets = history_count(solver_type)
    if len(blobs) != sets * num_params:
        raise SolverConfigError(
            f"the solver state holds {len(blobs)} history blobs, but solver type "
            f"{solver_type!r} with {num_params} learnable parameters needs {sets * num_params} "
            f"({sets} per parameter); was it written by another solver type or network?")
    return [[blobs[k * num_params + i] for k in range(sets)] for i in range(num_params)]


# ---------------------------------------------------------------- shared steps

def local_rate(rate: float, lr_mult: float) -> float:
    """Caffe's `Dtype local_rate = rate * lr_mult` (float32)."""
    return _f32(np.float32(rate) * np.float32(lr_mult))


def local_decay(weight_decay: float, decay_mult: float) -> float:
    """Caffe's `Dtype local_decay = weight_decay * decay_mult` (float32)."""
    return _f32(np.float32(weight_decay) * np.float32(decay_mult))


class ClipResult(NamedTuple):
    """The gradients after clipping; `norm` is the global L2 norm (None when clipping is off),
    `scale` the factor applied (1.0 when not clipped). Caffe logs "Gradient clipping: scaling
    down gradients (L2 norm {norm} > {clip}) by scale factor {scale}" when `clipped`."""
    grads: list[Tensor]
    norm: float | None
    scale: float
    clipped: bool


@torch.no_grad()
def clip_gradients(grads: Sequence[Tensor], clip: float) -> ClipResult:
    """Caffe's ClipGradients: if the L2 norm over all gradients exceeds `clip`, scale them all
    by clip / norm. `clip < 0` (the schema's default -1) turns clipping off.

    The inputs are not modified. Unlike torch.nn.utils.clip_grad_norm_ (which scales by
    clip / (norm + 1e-6) whenever the factor is below 1), Caffe scales by exactly clip / norm and
    only when norm > clip. The sum of squares is accumulated in float64 (Caffe: float).
    """
    grads = list(grads)
    if clip < 0:
        return ClipResult(grads, None, 1.0, False)
    if grads:
        sumsq = torch.stack([torch.linalg.vector_norm(g, dtype=torch.float64).square()
                             .to(grads[0].device) for g in grads]).sum()
        norm = _f32(math.sqrt(float(sumsq)))
    else:
        norm = 0.0
    if not norm > clip:
        return ClipResult(grads, norm, 1.0, False)
    scale = _f32(np.float32(clip) / np.float32(norm))
    return ClipResult([g * scale for g in grads], norm, scale, True)


def _check_iter_size(iter_size: int) -> None:
    if iter_size < 1:
        raise SolverConfigError(f"iter_size must be at least 1, the solver has {iter_size}")


@torch.no_grad()
def normalize(grad: Tensor, iter_size: int) -> Tensor:
    """Caffe's Normalize: the gradient summed over `iter_size` passes times 1/iter_size.

    Caffe multiplies by the float32 reciprocal (`Dtype(1) / iter_size`) rather than dividing, and
    we do the same. iter_size 1 returns `grad` itself.
    """
    _check_iter_size(iter_size)
    if iter_size == 1:
        return grad
    return grad * _f32(np.float32(1) / np.float32(iter_size))


def _check_regularization_type(regularization_type: str) -> None:
    if regularization_type not in REGULARIZATION_TYPES:
        raise SolverConfigError(f"unknown regularization_type {regularization_type!r}; "
                                f"supported: {', '.join(REGULARIZATION_TYPES)}")


@torch.no_grad()
def regularize(grad: Tensor, param: Tensor, decay: float,
               regularization_type: str = "L2") -> Tensor:
    """Caffe's Regularize with `decay` = local_decay(weight_decay, decay_mult):
    L2: g + decay·w;  L1: g + decay·sign(w) (sign(0) = 0).

    decay 0 returns `grad` itself. An unknown type is refused even when decay is 0 (Caffe only
    noticed it when some parameter had a nonzero decay). torch.optim's weight_decay is the L2
    form (AdamW's decoupled decay is not what Caffe does).
    """
    _check_regularization_type(regularization_type)
    if decay == 0:
        return grad
    w = param.detach()
    if regularization_type == "L2":
        return grad.add(w, alpha=decay)
    return grad.add(torch.sign(w), alpha=decay)


@torch.no_grad()
def compute_update_value(solver_type: str, grad: Tensor, history: Sequence[Tensor],
                         local_rate: float, solver: caffe_pb2.SolverParameter,
                         iteration: int) -> Tensor:
    """The update Caffe writes into the diff (and then subtracts from the weights).

    `grad` is the normalized, regularized gradient; `history` the parameter's history tensors
    (`history_count(solver_type)` of them), updated in place; `local_rate` = rate · lr_mult;
    `iteration` Caffe's 0-based iter_ (Adam uses t = iteration + 1). `grad` is not modified;
    the returned tensor is new.
    """
    rule = get_rule(solver_type)
    if len(history) != rule.history:
        raise ValueError(f"solver type {solver_type!r} keeps {rule.history} history tensor(s) "
                         f"per parameter, got {len(history)}")
    return rule.compute(grad, history, local_rate, solver, iteration)


@torch.no_grad()
def apply_update(param: Tensor, update: Tensor) -> None:
    """Caffe's Net::Update: w -= u, in place."""
    param.sub_(update)


# ---------------------------------------------------------------- the update rules

def _check_no_momentum(name: str) -> CheckFn:
    def check(solver: caffe_pb2.SolverParameter) -> None:
        if solver.momentum != 0:
            raise SolverConfigError(f"momentum cannot be used with solver type {name!r} (the "
                                    f"solver has momentum {solver.momentum:g}); remove it")
    return check


def _check_rmsprop(solver: caffe_pb2.SolverParameter) -> None:
    _check_no_momentum("RMSProp")(solver)
    if not 0 <= solver.rms_decay < 1:
        raise SolverConfigError(f"rms_decay should lie between 0 and 1 (0 included), the "
                                f"solver has {solver.rms_decay:g}")


@update_rule("SGD", history=1)
def sgd(grad: Tensor, history: Sequence[Tensor], lr: float,
        solver: caffe_pb2.SolverParameter, iteration: int) -> Tensor:
    """v = m·v + lr·g; u = v. (torch.optim.SGD: b = m·b + g; u = lr·b; see the module notes.)"""
    v, = history
    v.mul_(solver.momentum).add_(grad, alpha=lr)
    return v.clone()


@fused_rule("SGD")
def _sgd_fused(g, history, lr, solver, iteration):
    v, = history
    torch._foreach_mul_(v, solver.momentum)
    torch._foreach_add_(v, g, alpha=lr)
    return v                                            # w −= v: the loop's w −= clone(v)


@update_rule("Nesterov", history=1)
def nesterov(grad: Tensor, history: Sequence[Tensor], lr: float,
             solver: caffe_pb2.SolverParameter, iteration: int) -> Tensor:
    """v' = m·v + lr·g; u = (1+m)·v' − m·v; v = v'. (Caffe steps back by the old momentum and
    over by the new one; torch's nesterov=True equals this only while lr is constant.)"""
    v, = history
    m = solver.momentum
    old = v.clone()
    v.mul_(m).add_(grad, alpha=lr)
    return v.mul(_f32(np.float32(1) + np.float32(m))).sub_(old, alpha=m)


@fused_rule("Nesterov")
def _nesterov_fused(g, history, lr, solver, iteration):
    v, = history
    m = solver.momentum
    new = torch._foreach_mul(v, m)
    torch._foreach_add_(new, g, alpha=lr)
    u = torch._foreach_mul(new, _f32(np.float32(1) + np.float32(m)))
    torch._foreach_sub_(u, v, alpha=m)
    torch._foreach_copy_(v, new)
    return u


@update_rule("AdaGrad", history=1, check=_check_no_momentum("AdaGrad"))
def adagrad(grad: Tensor, history: Sequence[Tensor], lr: float,
            solver: caffe_pb2.SolverParameter, iteration: int) -> Tensor:
    """h = h + g²; u = lr·g / (√h + δ). (torch.optim.Adagrad with its defaults: the same.)"""
    h, = history
    h.add_(grad * grad)
    return _over_root(grad, h, solver.delta, lr)


def _over_root(x: Tensor, h: Tensor, delta: float, scale: float) -> Tensor:
    """scale·x / (√h + δ), as AdaGrad's, RMSProp's and Adam's C++ compute it (a new tensor)."""
    return (x / h.sqrt().add_(delta)).mul_(scale)


@fused_rule("AdaGrad")
def _adagrad_fused(g, history, lr, solver, iteration):
    h, = history
    torch._foreach_add_(h, torch._foreach_mul(g, g))
    return _fused_over_root(g, h, solver.delta, lr)


def _fused_over_root(x: list[Tensor], h: list[Tensor], delta: float,
                     scale: float) -> list[Tensor]:
    """`_over_root` over lists (new tensors)."""
    root = torch._foreach_sqrt(h)
    torch._foreach_add_(root, delta)
    u = torch._foreach_div(x, root)
    torch._foreach_mul_(u, scale)
    return u


@update_rule("RMSProp", history=1, check=_check_rmsprop)
def rmsprop(grad: Tensor, history: Sequence[Tensor], lr: float,
            solver: caffe_pb2.SolverParameter, iteration: int) -> Tensor:
    """h = ρ·h + (1−ρ)·g²; u = lr·g / (√h + δ), ρ = rms_decay. (torch.optim.RMSprop with
    alpha = ρ, eps = δ, no momentum, not centered: the same.)"""
    h, = history
    rho = solver.rms_decay
    h.mul_(rho).add_(grad * grad, alpha=_one_minus(rho))
    return _over_root(grad, h, solver.delta, lr)


@fused_rule("RMSProp")
def _rmsprop_fused(g, history, lr, solver, iteration):
    h, = history
    rho = solver.rms_decay
    torch._foreach_mul_(h, rho)
    torch._foreach_add_(h, torch._foreach_mul(g, g), alpha=_one_minus(rho))
    return _fused_over_root(g, h, solver.delta, lr)


@update_rule("AdaDelta", history=2)
def adadelta(grad: Tensor, history: Sequence[Tensor], lr: float,
             solver: caffe_pb2.SolverParameter, iteration: int) -> Tensor:
    """h1 = m·h1 + (1−m)·g²; d = g·√((h2 + δ)/(h1 + δ)); h2 = m·h2 + (1−m)·d²; u = lr·d.

    The update history h2 is accumulated *before* the rate is applied (Caffe applies
    local_rate last). torch.optim.Adadelta (rho = m, eps = δ) is the same formula.
    """
    h1, h2 = history
    m = solver.momentum
    delta = solver.delta
    h1.mul_(m).add_(grad * grad, alpha=_one_minus(m))
    d = grad * ((h2 + delta) / (h1 + delta)).sqrt_()
    h2.mul_(m).add_(d * d, alpha=_one_minus(m))
    return d.mul_(lr)


@fused_rule("AdaDelta")
def _adadelta_fused(g, history, lr, solver, iteration):
    h1, h2 = history
    m = solver.momentum
    delta = solver.delta
    torch._foreach_mul_(h1, m)
    torch._foreach_add_(h1, torch._foreach_mul(g, g), alpha=_one_minus(m))
    ratio = torch._foreach_div(torch._foreach_add(h2, delta), torch._foreach_add(h1, delta))
    torch._foreach_sqrt_(ratio)
    d = torch._foreach_mul(g, ratio)
    torch._foreach_mul_(h2, m)
    torch._foreach_add_(h2, torch._foreach_mul(d, d), alpha=_one_minus(m))
    torch._foreach_mul_(d, lr)
    return d


@update_rule("Adam", history=2)
def adam(grad: Tensor, history: Sequence[Tensor], lr: float,
         solver: caffe_pb2.SolverParameter, iteration: int) -> Tensor:
    """m1 = β1·m1 + (1−β1)·g; v = β2·v + (1−β2)·g²;
    u = lr·√(1−β2^t)/(1−β1^t) · m1/(√v + δ), t = iteration + 1, β1 = momentum, β2 = momentum2.

    δ sits on the uncorrected √v; torch.optim.Adam adds eps after the bias correction, so the
    two agree only for δ = 0. The correction is computed in double and stored as float, as in
    Caffe (`const Dtype correction = std::sqrt(1 - pow(β2, t)) / (1 - pow(β1, t))`).
    """
    m1, v = history
    b1, b2 = solver.momentum, solver.momentum2
    m1.mul_(b1).add_(grad, alpha=_one_minus(b1))
    v.mul_(b2).add_(grad * grad, alpha=_one_minus(b2))
    return _over_root(m1, v, solver.delta, _adam_step(lr, solver, iteration))


def _adam_step(lr: float, solver: caffe_pb2.SolverParameter, iteration: int) -> float:
    """lr·√(1−β2^t)/(1−β1^t): the correction in double, stored as float, times lr in float."""
    t = iteration + 1
    correction = _f32(math.sqrt(1.0 - solver.momentum2 ** t) / (1.0 - solver.momentum ** t))
    return _f32(np.float32(lr) * np.float32(correction))


@fused_rule("Adam")
def _adam_fused(g, history, lr, solver, iteration):
    m1, v = history
    b1, b2 = solver.momentum, solver.momentum2
    torch._foreach_mul_(m1, b1)
    torch._foreach_add_(m1, g, alpha=_one_minus(b1))
    torch._foreach_mul_(v, b2)
    torch._foreach_add_(v, torch._foreach_mul(g, g), alpha=_one_minus(b2))
    return _fused_over_root(m1, v, solver.delta, _adam_step(lr, solver, iteration))


# ---------------------------------------------------------------- one whole update

class StepResult(NamedTuple):
    """What one `caffe_apply_update` did: the rate (for "Iteration N, lr = X"), the solver's
    new current_step (save it in the .solverstate) and the clipping outcome."""
    rate: float
    current_step: int
    clip: ClipResult


def _can_fuse(solver: caffe_pb2.SolverParameter, params: Sequence[Tensor],
              histories: Sequence[Sequence[Tensor]]) -> bool:
    """Whether `fused_update` gives exactly what the per-parameter loop gives: a type with a
    fused form, its number of history tensors for every parameter, and no parameter listed
    twice (the loop would update it twice in sequence, the grouped ops interleave the two).
    Anything else takes the loop, which also raises its errors (unknown type, wrong history
    count) in the same place as before."""
    rule = UPDATE_RULES.get(solver.type)
    if rule is None or rule.fused is None or not params:
        return False
    if any(len(h) != rule.history for h in histories):
        return False
    return len({p.data_ptr() for p in params}) == len(params)


@torch.no_grad()
def fused_update(solver: caffe_pb2.SolverParameter, params: Sequence[Tensor],
                 grads: Sequence[Tensor], histories: Sequence[Sequence[Tensor]],
                 lr_mults: Sequence[float], decay_mults: Sequence[float], rate: float,
                 iteration: int) -> None:
    """Step 3 of the module notes (normalize, regularize, the type's update, w −= u) for all
    params at once, bit for bit what the per-parameter loop computes.

    The params are grouped by (lr_mult, decay_mult, device, dtype), in first-appearance order;
    within a group local_rate lr and local_decay λ are the same float32 scalars as in the loop,
    and each step is one `torch._foreach_*` op over the group's lists (on the CPU, over runs of
    at most `CPU_CHUNK` values at a time). With G = grads, W = params, s = float32(1/iter_size):

        G' = G · s                          normalize (iter_size > 1; new tensors)
        G' = G' + λ·W   |   G' + λ·sign(W)  regularize L2 | L1 (λ ≠ 0; new tensors or in place
                                            on the normalized copies)
        U = the type's fused rule (G', histories, lr)     e.g. SGD: V = m·V; V += lr·G'; U = V
        W −= U

    The rules (`fused_rule`, beside each type's per-parameter rule) are the loop's own
    element-wise ops on the same operands with the same scalars, one parameter at a time (on
    the CPU `_foreach_*` runs the ordinary kernel per tensor; on CUDA its fused kernels compute
    in the same opmath type), so the rounding is the same. Groups and chunks are independent
    (no parameter appears twice, see `_can_fuse`), so their order does not matter. `grads` are
    not modified: the first op that would write them writes new tensors (or, with iter_size 1
    and λ = 0, they are only read).
    """
    _check_iter_size(solver.iter_size)
    _check_regularization_type(solver.regularization_type)
    rule = UPDATE_RULES[solver.type]
    scale = _f32(np.float32(1) / np.float32(solver.iter_size)) if solver.iter_size > 1 else None
    l1 = solver.regularization_type == "L1"
    groups: dict[tuple, tuple[list[Tensor], list[Tensor], list[list[Tensor]]]] = {}
    for param, grad, history, lr_mult, decay_mult in zip(params, grads, histories, lr_mults,
                                                         decay_mults):
        key = (lr_mult, decay_mult, param.device, param.dtype)
        group = groups.get(key)
        if group is None:
            group = groups[key] = ([], [], [[] for _ in range(rule.history)])
        group[0].append(param)
        group[1].append(grad)
        for k, tensor in enumerate(history):
            group[2][k].append(tensor)
    for (lr_mult, decay_mult, device, _), (ws, gs, hs) in groups.items():
        lr = local_rate(rate, lr_mult)
        decay = local_decay(solver.weight_decay, decay_mult)
        for lo, hi in _chunks(ws, CPU_CHUNK if device.type == "cpu" else None):
            w, g = ws[lo:hi], gs[lo:hi]
            if scale is not None:
                g = torch._foreach_mul(g, scale)
            if decay != 0:
                reg = torch._foreach_sign(w) if l1 else w
                if scale is not None:
                    torch._foreach_add_(g, reg, alpha=decay)
                else:
                    g = torch._foreach_add(g, reg, alpha=decay)
            torch._foreach_sub_(w, rule.fused(g, [h[lo:hi] for h in hs], lr, solver, iteration))


CPU_CHUNK = 1 << 16
"""On the CPU, `fused_update` takes a group's tensors a run of at most this many values at a
time (a tensor larger than that alone): there `_foreach_*` runs the ordinary kernel tensor by
tensor, so what it saves is Python and dispatch overhead, and all the steps over a chunk that
stays in the cache beat one step at a time over a whole group (GoogLeNet's weights are 54 MB:
whole groups made the fused SGD update slower than the loop on a 2-core EPYC, chunks of 2^16
values made it faster). CUDA groups go whole: there each `_foreach_*` op is a few kernel
launches. Chunking changes no result: every op is element-wise, one tensor at a time."""


def _chunks(tensors: Sequence[Tensor], limit: int | None) -> list[tuple[int, int]]:
    """[lo, hi) runs of consecutive tensors holding at most `limit` values (None: one run)."""
    if limit is None:
        return [(0, len(tensors))]
    runs, lo, size = [], 0, 0
    for i, t in enumerate(tensors):
        n = t.numel()
        if i > lo and size + n > limit:
            runs.append((lo, i))
            lo, size = i, 0
        size += n
    runs.append((lo, len(tensors)))
    return runs


@torch.no_grad()
def caffe_apply_update(solver: caffe_pb2.SolverParameter, params: Sequence[Tensor],
                       grads: Sequence[Tensor], histories: Sequence[Sequence[Tensor]],
                       lr_mults: Sequence[float], decay_mults: Sequence[float],
                       iteration: int, current_step: int = 0, *,
                       fused: bool = True) -> StepResult:
    """Caffe's SGDSolver::ApplyUpdate for all learnable params, in Caffe's order (module notes).

    `grads` are the gradients summed over the iter_size passes (not modified); `params` are
    updated in place, `histories` too. The caller increments the iteration afterwards.

    Step 3 runs as `fused_update`: a few `torch._foreach_*` ops per (lr_mult, decay_mult,
    device, dtype) group instead of 5 to 14 small ops per parameter, with bit-identical results.
    `fused=False` forces the per-parameter loop (the reference the tests compare against), as
    do a parameter listed twice and a type without a fused form.
    """
    n = len(params)
    if not (len(grads) == len(histories) == len(lr_mults) == len(decay_mults) == n):
        raise ValueError("params, grads, histories, lr_mults and decay_mults must have one "
                         "entry per learnable parameter")
    rate, current_step = learning_rate(solver, iteration, current_step)
    clip = clip_gradients(grads, solver.clip_gradients)
    if fused and _can_fuse(solver, params, histories):
        fused_update(solver, params, clip.grads, histories, lr_mults, decay_mults, rate,
                     iteration)
        return StepResult(rate, current_step, clip)
    for param, grad, history, lr_mult, decay_mult in zip(params, clip.grads, histories,
                                                         lr_mults, decay_mults):
        grad = normalize(grad, solver.iter_size)
        grad = regularize(grad, param, local_decay(solver.weight_decay, decay_mult),
                          solver.regularization_type)
        update = compute_update_value(solver.type, grad, history, local_rate(rate, lr_mult),
                                      solver, iteration)
        apply_update(param, update)
    return StepResult(rate, current_step, clip)


def caffe_apply_update_reference(solver: caffe_pb2.SolverParameter, params: Sequence[Tensor],
                                 grads: Sequence[Tensor], histories: Sequence[Sequence[Tensor]],
                                 lr_mults: Sequence[float], decay_mults: Sequence[float],
                                 iteration: int, current_step: int = 0) -> StepResult:
    """`caffe_apply_update` through the per-parameter loop, whatever the solver type."""
    return caffe_apply_update(solver, params, grads, histories, lr_mults, decay_mults,
                              iteration, current_step, fused=False)

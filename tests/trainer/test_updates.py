"""Caffe's update rules and the shared steps, against hand-computed steps (plain Python floats
from the formulas) and against torch.optim where the two agree or, by design, disagree."""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from prototxt import caffe_pb2
from trainer import updates
from trainer.lr_policies import SolverConfigError
from trainer.updates import (apply_update, caffe_apply_update, check_solver, clip_gradients,
                             compute_update_value, from_caffe_order, history_count,
                             init_history, local_decay, local_rate, normalize, regularize,
                             to_caffe_order)


def solver(**fields) -> caffe_pb2.SolverParameter:
    return caffe_pb2.SolverParameter(**fields)


def t32(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)


def close(actual: torch.Tensor, expected, rtol: float = 2e-6, atol: float = 1e-9) -> None:
    expected = torch.as_tensor(expected, dtype=actual.dtype)
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol)


def run_steps(kind: str, s: caffe_pb2.SolverParameter, grads, rates, param=None):
    """Feed `grads` through `kind` with the given rates; returns the updates and the history."""
    history = init_history(kind, grads[0] if param is None else param)
    out = []
    for it, (g, lr) in enumerate(zip(grads, rates)):
        out.append(compute_update_value(kind, g, history, lr, s, it))
    return out, history


# ---------------------------------------------------------------- registry

def test_registry_types_and_history_counts():
    assert {name: history_count(name) for name in updates.UPDATE_RULES} == {
        "SGD": 1, "Nesterov": 1, "AdaGrad": 1, "RMSProp": 1, "AdaDelta": 2, "Adam": 2}
    for name in updates.UPDATE_RULES:
        assert f"\n{name} " in updates.__doc__


def test_unknown_type_names_it_and_the_supported_ones():
    with pytest.raises(SolverConfigError) as err:
        compute_update_value("LBFGS", t32(1.0), [t32(0.0)], 0.1, solver(), 0)
    msg = str(err.value)
    assert "'LBFGS'" in msg and all(n in msg for n in updates.UPDATE_RULES)
    with pytest.raises(SolverConfigError, match="did you mean 'SGD'"):
        history_count("sgd")


def test_wrong_number_of_history_tensors():
    with pytest.raises(ValueError, match="keeps 2"):
        compute_update_value("Adam", t32(1.0), [t32(0.0)], 0.1, solver(), 0)


def test_check_solver_repeats_caffes_constructor_checks():
    assert check_solver(solver(type="SGD", momentum=0.9)).history == 1
    with pytest.raises(SolverConfigError, match="momentum cannot be used with solver type "
                                                "'AdaGrad'"):
        check_solver(solver(type="AdaGrad", momentum=0.9))
    with pytest.raises(SolverConfigError, match="'RMSProp'"):
        check_solver(solver(type="RMSProp", momentum=0.9))
    with pytest.raises(SolverConfigError, match="rms_decay"):
        check_solver(solver(type="RMSProp", rms_decay=1.0))
    with pytest.raises(SolverConfigError, match="regularization_type 'L3'"):
        check_solver(solver(type="SGD", regularization_type="L3"))
    with pytest.raises(SolverConfigError, match="iter_size"):
        check_solver(solver(type="SGD", iter_size=0))


def test_defaults_come_from_the_schema():
    s = solver()
    assert (s.type, s.regularization_type, s.iter_size, s.clip_gradients) == ("SGD", "L2", 1, -1)
    assert s.delta == float(np.float32(1e-8))
    assert s.momentum2 == float(np.float32(0.999))
    assert s.rms_decay == float(np.float32(0.99))


def test_history_order_in_the_solverstate():
    # Caffe: all first-set blobs (params 0..N-1), then all second-set blobs.
    a0, a1, b0, b1 = (torch.full((1,), float(i)) for i in range(4))
    per_param = [[a0, b0], [a1, b1]]
    flat = to_caffe_order(per_param)
    assert [float(x) for x in flat] == [0.0, 1.0, 2.0, 3.0]
    back = from_caffe_order(flat, 2, "Adam")
    assert all(x is y for p, q in zip(back, per_param) for x, y in zip(p, q))
    assert len(from_caffe_order([a0, a1], 2, "SGD")) == 2
    with pytest.raises(SolverConfigError, match="holds 2 history blobs"):
        from_caffe_order([a0, a1], 2, "AdaDelta")


def test_init_history_is_zeros_of_the_param_shape():
    p = torch.nn.Parameter(torch.ones(3, 2))
    hist = init_history("AdaDelta", p)
    assert len(hist) == 2
    for h in hist:
        assert h.shape == (3, 2) and not h.requires_grad and float(h.abs().sum()) == 0.0


# ---------------------------------------------------------------- shared steps

def test_local_rate_and_decay_are_float32_products():
    assert local_rate(0.01, 2) == float(np.float32(0.01) * np.float32(2))
    assert local_decay(0.0005, 0.0) == 0.0
    assert local_decay(float(np.float32(0.0001)), 1) == float(np.float32(0.0001))


def test_clip_gradients_global_norm():
    g1, g2 = t32(3.0, 4.0), t32(12.0)                     # global norm 13
    res = clip_gradients([g1, g2], 6.5)
    assert res.clipped and res.norm == 13.0 and res.scale == 0.5
    close(res.grads[0], [1.5, 2.0])
    close(res.grads[1], [6.0])
    close(g1, [3.0, 4.0])                                  # inputs untouched


def test_clip_gradients_below_threshold_and_off():
    g1, g2 = t32(3.0, 4.0), t32(12.0)
    res = clip_gradients([g1, g2], 13.0)                   # norm == clip: Caffe needs norm > clip
    assert not res.clipped and res.scale == 1.0 and res.grads[0] is g1
    res = clip_gradients([g1, g2], -1.0)                   # the schema's default: off
    assert not res.clipped and res.norm is None and res.grads[1] is g2
    res = clip_gradients([g1, g2], 0.0)                    # 0 clips everything to zero
    assert res.clipped and float(res.grads[0].abs().sum()) == 0.0


def test_normalize_iter_size():
    g = t32(3.0, -1.5)
    assert normalize(g, 1) is g
    close(normalize(g, 2), [1.5, -0.75])
    close(normalize(g, 3), [1.0, -0.5])
    assert normalize(g, 3).dtype == torch.float32
    with pytest.raises(SolverConfigError, match="iter_size"):
        normalize(g, 0)


def test_regularize_l2_and_l1():
    w = t32(2.0, -3.0, 0.0)
    g = t32(1.0, 1.0, 1.0)
    close(regularize(g, w, 0.1, "L2"), [1.2, 0.7, 1.0])    # g + 0.1·w
    close(regularize(g, w, 0.1, "L1"), [1.1, 0.9, 1.0])    # g + 0.1·sign(w), sign(0) = 0
    assert regularize(g, w, 0.0, "L2") is g
    close(g, [1.0, 1.0, 1.0])                              # input untouched
    with pytest.raises(SolverConfigError, match="'L3'"):
        regularize(g, w, 0.1, "L3")


def test_regularize_does_not_build_a_graph_on_a_parameter():
    p = torch.nn.Parameter(t32(2.0))
    out = regularize(t32(1.0), p, 0.5)
    assert not out.requires_grad
    close(out, [2.0])


def test_apply_update_subtracts_in_place():
    p = torch.nn.Parameter(t32(1.0, 2.0))
    apply_update(p, t32(0.25, -0.5))
    close(p.data, [0.75, 2.5])


# ---------------------------------------------------------------- each rule, by hand

def test_sgd_by_hand_across_an_lr_change():
    s = solver(momentum=0.9)
    grads = [t32(1.0, -2.0), t32(0.5, 0.5), t32(0.0, 1.0)]
    out, (v,) = run_steps("SGD", s, grads, [0.1, 0.1, 0.01])
    close(out[0], [0.1, -0.2])                  # v = 0.1·g
    close(out[1], [0.14, -0.13])                # 0.9·[0.1, -0.2] + 0.1·[0.5, 0.5]
    close(out[2], [0.126, -0.107])              # 0.9·[0.14, -0.13] + 0.01·[0, 1]
    close(v, [0.126, -0.107])
    assert out[2] is not v                      # the update is not the history itself


def test_nesterov_by_hand():
    s = solver(momentum=0.9)
    grads = [t32(1.0, -2.0), t32(0.5, 0.5)]
    out, (v,) = run_steps("Nesterov", s, grads, [0.1, 0.1])
    close(out[0], [0.19, -0.38])                # 1.9·[0.1, -0.2] − 0.9·0
    close(out[1], [0.176, -0.067])              # 1.9·[0.14, -0.13] − 0.9·[0.1, -0.2]
    close(v, [0.14, -0.13])


def test_adagrad_by_hand():
    s = solver(delta=1.0)
    out, (h,) = run_steps("AdaGrad", s, [t32(3.0, -4.0), t32(4.0, 3.0)], [0.1, 0.1])
    close(out[0], [0.1 * 3 / (3 + 1), 0.1 * -4 / (4 + 1)])      # h = [9, 16]
    close(out[1], [0.1 * 4 / (5 + 1), 0.1 * 3 / (5 + 1)])       # h = [25, 25]
    close(h, [25.0, 25.0])


def test_rmsprop_by_hand():
    s = solver(delta=1.0, rms_decay=0.5)
    out, (h,) = run_steps("RMSProp", s, [t32(2.0, -4.0), t32(2.0, 0.0)], [0.1, 0.1])
    # h = 0.5·0 + 0.5·[4, 16] = [2, 8]
    close(out[0], [0.1 * 2 / (math.sqrt(2) + 1), 0.1 * -4 / (math.sqrt(8) + 1)])
    # h = 0.5·[2, 8] + 0.5·[4, 0] = [3, 4]
    close(out[1], [0.1 * 2 / (math.sqrt(3) + 1), 0.0])
    close(h, [3.0, 4.0])


def test_adadelta_by_hand_rate_applied_last():
    s = solver(delta=1.0, momentum=0.5)
    out, (h1, h2) = run_steps("AdaDelta", s, [t32(2.0, 0.0), t32(1.0, 3.0)], [0.5, 0.5])
    # step 1: h1 = [2, 0]; d = 2·√(1/3), 0; h2 = 0.5·d² = [2/3, 0]
    d1 = 2 * math.sqrt(1 / 3)
    close(out[0], [0.5 * d1, 0.0])
    # step 2: h1 = [0.5·2 + 0.5·1, 0.5·9] = [1.5, 4.5]
    d2 = [1 * math.sqrt((2 / 3 + 1) / (1.5 + 1)), 3 * math.sqrt((0 + 1) / (4.5 + 1))]
    close(out[1], [0.5 * d2[0], 0.5 * d2[1]])
    close(h1, [1.5, 4.5])
    # h2 uses d before the rate: 0.5·(2/3) + 0.5·d2²
    close(h2, [0.5 * (2 / 3) + 0.5 * d2[0] ** 2, 0.5 * d2[1] ** 2])


def test_adam_by_hand_delta_on_the_uncorrected_root():
    s = solver(momentum=0.5, momentum2=0.75, delta=0.5)
    out, (m, v) = run_steps("Adam", s, [t32(2.0), t32(4.0)], [0.1, 0.1])
    # t = 1: m = 1, v = 1, correction √(1 − 0.75)/(1 − 0.5) = 1
    close(out[0], [0.1 * 1.0 * 1 / (1 + 0.5)])
    # t = 2: m = 0.5·1 + 0.5·4 = 2.5, v = 0.75·1 + 0.25·16 = 4.75
    corr = math.sqrt(1 - 0.75 ** 2) / (1 - 0.5 ** 2)
    close(out[1], [0.1 * corr * 2.5 / (math.sqrt(4.75) + 0.5)])
    close(m, [2.5])
    close(v, [4.75])


def test_adam_uses_the_iteration_it_is_given():
    s = solver(momentum=0.5, momentum2=0.75, delta=0.5)
    hist = init_history("Adam", t32(0.0))
    u = compute_update_value("Adam", t32(2.0), hist, 0.1, s, 1)     # t = 2 on a fresh history
    corr = math.sqrt(1 - 0.75 ** 2) / (1 - 0.5 ** 2)
    close(u, [0.1 * corr * 1.0 / (1.0 + 0.5)])


@pytest.mark.parametrize("kind, fields", [
    ("SGD", dict(momentum=0.9)), ("Nesterov", dict(momentum=0.9)), ("AdaGrad", {}),
    ("RMSProp", {}), ("AdaDelta", dict(momentum=0.95)), ("Adam", dict(momentum=0.9)),
])
def test_float32_in_float32_out(kind, fields):
    s = solver(**fields)
    gen = torch.Generator().manual_seed(5)
    grads = [torch.randn(3, 5, generator=gen) for _ in range(3)]
    out, history = run_steps(kind, s, grads, [0.01] * 3)
    assert all(u.dtype == torch.float32 and u.shape == (3, 5) for u in out)
    assert all(h.dtype == torch.float32 for h in history)
    assert all(torch.isfinite(u).all() for u in out)


# ---------------------------------------------------------------- against torch.optim

def _torch_updates(opt_cls, grads, rates, **kw):
    p = torch.nn.Parameter(torch.zeros_like(grads[0]))
    opt = opt_cls([p], lr=rates[0], **kw)
    out = []
    for g, lr in zip(grads, rates):
        for group in opt.param_groups:
            group["lr"] = lr
        before = p.detach().clone()
        p.grad = g.clone()
        opt.step()
        out.append(before - p.detach())
    return out


def _grads(dtype=torch.float64, n=6):
    gen = torch.Generator().manual_seed(20190317)
    return [torch.randn(4, 3, generator=gen, dtype=dtype) for _ in range(n)]


@pytest.mark.parametrize("kind, fields, opt_cls, kw", [
    ("Nesterov", dict(momentum=0.9), torch.optim.SGD, dict(momentum=0.9, nesterov=True)),
    ("AdaGrad", dict(delta=1e-3), torch.optim.Adagrad, dict(eps=1e-3)),
    ("RMSProp", dict(rms_decay=0.9, delta=1e-3), torch.optim.RMSprop, dict(alpha=0.9, eps=1e-3)),
    ("AdaDelta", dict(momentum=0.9, delta=1e-4), torch.optim.Adadelta, dict(rho=0.9, eps=1e-4)),
    ("Adam", dict(momentum=0.9, momentum2=0.99, delta=0.0), torch.optim.Adam,
     dict(betas=(0.9, 0.99), eps=0.0)),
])
def test_same_as_torch_where_the_formulas_agree(kind, fields, opt_cls, kw):
    # Fields are float32 in the schema; give torch the same float32 values.
    s = solver(**fields)
    kw = {k: (tuple(float(np.float32(x)) for x in v) if isinstance(v, tuple) else
              float(np.float32(v)) if isinstance(v, float) else v) for k, v in kw.items()}
    grads, rates = _grads(), [0.01] * 6
    ours, _ = run_steps(kind, s, grads, rates)
    theirs = _torch_updates(opt_cls, grads, rates, **kw)
    # float64 tensors; the only differences left are Caffe's float32 scalars (e.g. Adam's
    # lr·correction is a Dtype), a few 1e-8 relative.
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=2e-7, atol=1e-15)


def test_adam_differs_from_torch_by_where_delta_goes():
    s = solver(momentum=0.9, momentum2=0.99, delta=0.1)
    grads = _grads()
    ours, _ = run_steps("Adam", s, grads, [0.01] * 6)
    theirs = _torch_updates(torch.optim.Adam, grads, [0.01] * 6,
                            betas=(s.momentum, s.momentum2), eps=s.delta)
    assert not torch.allclose(ours[1], theirs[1], rtol=1e-3)


def test_sgd_equals_torch_while_lr_is_constant_and_not_after_a_change():
    s = solver(momentum=0.9)
    grads = _grads(torch.float32)
    rates = [0.01] * 5 + [0.001]
    ours, _ = run_steps("SGD", s, grads, rates)
    theirs = _torch_updates(torch.optim.SGD, grads, rates, momentum=s.momentum)
    for a, b in zip(ours[:5], theirs[:5]):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-8)
    # Right after the lr step, torch rescales its whole momentum by 0.001 at once; Caffe's
    # momentum (which holds the old rate) decays: 0.9·v + 0.001·g.
    assert not torch.allclose(ours[5], theirs[5], rtol=1e-2)
    assert float(ours[5].abs().sum()) > 3 * float(theirs[5].abs().sum())


def test_l2_regularize_equals_torch_weight_decay():
    s = solver(momentum=0.9)
    grads = _grads()
    p_ours = torch.linspace(-1, 1, 12, dtype=torch.float64).reshape(4, 3)
    p_torch = torch.nn.Parameter(p_ours.clone())
    opt = torch.optim.SGD([p_torch], lr=0.01, momentum=s.momentum, weight_decay=0.05)
    hist = init_history("SGD", p_ours)
    for it, g in enumerate(grads):
        u = compute_update_value("SGD", regularize(g, p_ours, 0.05), hist, 0.01, s, it)
        apply_update(p_ours, u)
        p_torch.grad = g.clone()
        opt.step()
    torch.testing.assert_close(p_ours, p_torch.detach(), rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- a whole Caffe update

def _replay(s, params, summed_grads, lr_mults, decay_mults, iters):
    """Caffe's ApplyUpdate for SGD written out with Python floats, element by element."""
    params = [list(p) for p in params]
    hist = [[0.0] * len(p) for p in params]
    rates = []
    for it in range(iters):
        rate = s.base_lr * s.gamma ** (it // s.stepsize)
        rates.append(rate)
        grads = [list(g) for g in summed_grads[it]]
        norm = math.sqrt(sum(x * x for g in grads for x in g))
        if s.clip_gradients >= 0 and norm > s.clip_gradients:
            grads = [[x * s.clip_gradients / norm for x in g] for g in grads]
        for i, (p, g) in enumerate(zip(params, grads)):
            for j in range(len(p)):
                x = g[j] / s.iter_size + s.weight_decay * decay_mults[i] * p[j]
                hist[i][j] = s.momentum * hist[i][j] + rate * lr_mults[i] * x
                p[j] -= hist[i][j]
    return params, hist, rates


def test_caffe_apply_update_follows_a_hand_replay():
    s = solver(type="SGD", base_lr=0.1, lr_policy="step", gamma=0.1, stepsize=2, momentum=0.9,
               weight_decay=0.01, iter_size=2, clip_gradients=5.0)
    start = [[0.5, -1.0], [2.0]]
    summed = [[[1.0, 2.0], [-2.0]],
              [[3.0, 4.0], [12.0]],            # norm 13 > 5: clipped
              [[-1.0, 0.5], [0.25]],           # lr steps down here
              [[0.0, 1.0], [-1.0]]]
    lr_mults, decay_mults = [1.0, 2.0], [1.0, 0.0]
    params = [torch.tensor(p, dtype=torch.float64) for p in start]
    histories = [init_history("SGD", p) for p in params]
    steps = []
    for it in range(4):
        grads = [torch.tensor(g, dtype=torch.float64) for g in summed[it]]
        steps.append(caffe_apply_update(s, params, grads, histories, lr_mults, decay_mults, it))
    want_params, want_hist, want_rates = _replay(s, start, summed, lr_mults, decay_mults, 4)
    for got, want in zip(params, want_params):
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-6,
                                   atol=1e-9)
    for (got,), want in zip(histories, want_hist):
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), rtol=1e-6,
                                   atol=1e-9)
    assert [st.rate for st in steps] == pytest.approx(want_rates, rel=1e-6)
    assert [st.current_step for st in steps] == [0, 0, 1, 1]
    assert [st.clip.clipped for st in steps] == [False, True, False, False]
    assert steps[1].clip.norm == 13.0


def test_caffe_apply_update_checks_lengths():
    s = solver(type="SGD", base_lr=0.1, lr_policy="fixed")
    with pytest.raises(ValueError, match="one entry per learnable parameter"):
        caffe_apply_update(s, [t32(1.0)], [], [[t32(0.0)]], [1.0], [1.0], 0)


# ---------------------------------------------------------------- the fused path

# Non-square shapes (a conv weight, its bias, an fc weight, ...) and their (lr_mult, decay_mult):
# several groups, lr_mult 0 and decay_mult 0 among them, a group whose members are not adjacent.
FUSED_SHAPES = [(7, 3, 5, 2), (7,), (11, 13), (11,), (4, 3), (5, 1, 3, 3), (5,), (2, 9)]
FUSED_MULTS = [(1.0, 1.0), (2.0, 0.0), (1.0, 1.0), (2.0, 0.0), (0.0, 1.0), (1.0, 2.0),
               (0.0, 0.0), (0.5, 1.0)]


def _fused_case(dtype, device="cpu", seed=20240611, iters=5):
    """Start params (some exact zeros, so L1's sign(0) = 0 counts) and per-iteration summed
    gradients, from seeded torch and numpy generators."""
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    params = []
    for shape in FUSED_SHAPES:
        p = torch.randn(shape, generator=gen, dtype=torch.float64)
        p.view(-1)[torch.from_numpy(rng.random(p.numel()) < 0.1)] = 0.0
        params.append(p.to(device=device, dtype=dtype))
    grads = [[(torch.randn(shape, generator=gen, dtype=torch.float64) *
               float(rng.uniform(0.1, 3.0))).to(device=device, dtype=dtype)
              for shape in FUSED_SHAPES] for _ in range(iters)]
    return params, grads


def _run_update(s, params, grads, fused, iters=5):
    params = [p.clone() for p in params]
    histories = [init_history(s.type, p) for p in params]
    lr_mults, decay_mults = zip(*FUSED_MULTS)
    steps = []
    for it in range(iters):
        g = [x.clone() for x in grads[it]]
        steps.append(caffe_apply_update(s, params, g, histories, lr_mults, decay_mults, it,
                                        fused=fused))
        for a, b in zip(g, grads[it]):                  # the caller's gradients are untouched
            assert torch.equal(a, b)
    return params, histories, steps


ALL_TYPES = updates.supported_types()
NO_MOMENTUM = ("AdaGrad", "RMSProp")                    # check_solver refuses momentum for them


def _fused_solver(kind, momentum, iter_size, reg, clip):
    # step policy with stepsize 2: the rate changes between iterations 1 and 2 and 3 and 4;
    # AdaDelta's delta is the one of Caffe's example
    if kind in NO_MOMENTUM:
        momentum = 0.0
    return solver(type=kind, base_lr=0.05, lr_policy="step", gamma=0.3, stepsize=2,
                  momentum=momentum, weight_decay=0.004, regularization_type=reg,
                  iter_size=iter_size, clip_gradients=clip, rms_decay=0.98,
                  delta=1e-6 if kind == "AdaDelta" else 1e-8)


def _assert_same_update(fused, ref, dtype):
    """Parameters and every history set bit for bit, all of `dtype`."""
    (p_fus, h_fus, _), (p_ref, h_ref, _) = fused, ref
    assert [len(h) for h in h_fus] == [len(h) for h in h_ref]
    for a, b in zip(p_fus + sum(h_fus, []), p_ref + sum(h_ref, [])):
        assert a.dtype == dtype and torch.equal(a, b)


@pytest.mark.parametrize("chunk", [updates.CPU_CHUNK, 20])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("clip", [-1.0, 8.0])
@pytest.mark.parametrize("reg", ["L2", "L1"])
@pytest.mark.parametrize("iter_size", [1, 3])
@pytest.mark.parametrize("kind, momentum", [(kind, m) for kind in ALL_TYPES for m in (0.0, 0.9)
                                            if not (m and kind in NO_MOMENTUM)])
def test_fused_update_equals_the_per_parameter_loop_exactly(kind, momentum, iter_size, reg,
                                                             clip, dtype, chunk, monkeypatch):
    # chunk 20: the CPU groups split into runs (of tensors larger than 20 values, alone, and
    # of small ones together)
    monkeypatch.setattr(updates, "CPU_CHUNK", chunk)
    s = _fused_solver(kind, momentum, iter_size, reg, clip)
    check_solver(s)
    start, grads = _fused_case(dtype)
    ref = _run_update(s, start, grads, fused=False)
    fused = _run_update(s, start, grads, fused=True)
    _assert_same_update(fused, ref, dtype)
    p_fus, st_fus, st_ref = fused[0], fused[2], ref[2]
    assert [st.rate for st in st_fus] == [st.rate for st in st_ref]
    assert len({st.rate for st in st_fus}) == 3                         # the rate did change
    assert [st.clip.clipped for st in st_fus] == [st.clip.clipped for st in st_ref]
    # the update did something: params with lr_mult 0 stay, the others move
    for p, p0, (lr_mult, _) in zip(p_fus, start, FUSED_MULTS):
        assert torch.equal(p, p0) == (lr_mult == 0.0)


def test_cpu_chunks_are_runs_of_consecutive_tensors():
    ts = [torch.zeros(n) for n in (5, 7, 30, 2, 3, 4, 50, 1)]
    assert updates._chunks(ts, None) == [(0, 8)]
    assert updates._chunks(ts, 12) == [(0, 2), (2, 3), (3, 6), (6, 7), (7, 8)]
    assert updates._chunks(ts, 1000) == [(0, 8)]
    assert updates._chunks([], 12) == [(0, 0)]


def test_fused_path_is_taken_for_every_type_unless_told_or_missing(monkeypatch):
    calls = []
    real = updates.fused_update
    monkeypatch.setattr(updates, "fused_update", lambda *a: calls.append(a[0].type) or real(*a))
    start, grads = _fused_case(torch.float32, iters=1)
    for kind in ALL_TYPES:
        _run_update(solver(type=kind, base_lr=0.01, lr_policy="fixed"), start, grads, True, 1)
    _run_update(solver(type="SGD", base_lr=0.01, lr_policy="fixed"), start, grads, False, 1)
    assert calls == ALL_TYPES
    # a type registered without a fused form takes the loop
    monkeypatch.setitem(updates.UPDATE_RULES, "Adam",
                        dataclasses.replace(updates.UPDATE_RULES["Adam"], fused=None))
    _run_update(solver(type="Adam", base_lr=0.01, lr_policy="fixed"), start, grads, True, 1)
    assert calls == ALL_TYPES


def test_a_parameter_listed_twice_takes_the_loop():
    # The loop updates a shared tensor twice in sequence; grouped ops would interleave.
    s = solver(type="SGD", base_lr=0.1, lr_policy="fixed", momentum=0.9, weight_decay=0.1)
    results = []
    for fused in (True, False):
        w = t32(1.0, -2.0, 0.5)
        hist = [init_history("SGD", w), init_history("SGD", w)]
        for it in range(3):
            caffe_apply_update(s, [w, w], [t32(0.5, 0.25, -1.0), t32(1.0, 0.0, 2.0)], hist,
                               [1.0, 2.0], [1.0, 0.0], it, fused=fused)
        results.append((w, hist[0][0], hist[1][0]))
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_fused_update_refuses_what_the_loop_refuses():
    w, g = t32(1.0, 2.0), t32(0.5, 0.5)
    for fused in (True, False):
        with pytest.raises(SolverConfigError, match="'L3'"):
            caffe_apply_update(solver(type="SGD", lr_policy="fixed", regularization_type="L3"),
                               [w], [g], [[t32(0.0, 0.0)]], [1.0], [0.0], 0, fused=fused)
        with pytest.raises(ValueError, match="keeps 1"):
            caffe_apply_update(solver(type="Nesterov", lr_policy="fixed"), [w], [g], [[]],
                               [1.0], [1.0], 0, fused=fused)
        with pytest.raises(ValueError, match="keeps 2"):
            caffe_apply_update(solver(type="Adam", lr_policy="fixed"), [w], [g],
                               [[t32(0.0, 0.0)]], [1.0], [1.0], 0, fused=fused)


def test_reference_function_is_the_loop():
    s = _fused_solver("Nesterov", 0.9, 3, "L2", -1.0)
    start, grads = _fused_case(torch.float32, iters=2)
    params = [p.clone() for p in start]
    histories = [init_history("Nesterov", p) for p in params]
    lr_mults, decay_mults = zip(*FUSED_MULTS)
    for it in range(2):
        updates.caffe_apply_update_reference(s, params, grads[it], histories, lr_mults,
                                             decay_mults, it)
    want, want_hist, _ = _run_update(s, start, grads, fused=False, iters=2)
    assert all(torch.equal(a, b) for a, b in zip(params, want))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(histories, want_hist))


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("kind", ALL_TYPES)
@pytest.mark.parametrize("reg", ["L2", "L1"])
def test_fused_update_equals_the_loop_on_cuda(kind, reg, dtype):
    # CUDA's _foreach kernels are not the ordinary ones; they compute in the same opmath type.
    s = _fused_solver(kind, 0.9, 3, reg, 8.0)
    start, grads = _fused_case(dtype, device="cuda")
    ref = _run_update(s, start, grads, fused=False)
    _assert_same_update(_run_update(s, start, grads, fused=True), ref, dtype)

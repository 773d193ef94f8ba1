"""Tests of teacher-forced fitting: objective vs a plain loop, masks, adaptive alpha, fitting, errors."""

import numpy as np
import pytest
import torch

from neuroalrnn.model import ALRNN
from neuroalrnn.schema import from_arrays
from neuroalrnn.fit.observation import IdentityObservation, LinearObservation, ObservedALRNN
from neuroalrnn.fit.teacher_forcing import (TeacherForcingObjective, fit_teacher_forcing, jacobian_norm_bound,
                                            teacher_forcing_alpha)


def _module(M=6, P=2, N=2, K=0, seed=0, dtype=torch.float64):
    model = ALRNN(M, P, n_inputs=K, seed=seed, dtype=dtype)
    with torch.no_grad():
        model.W.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed))
        model.h.normal_(0, 0.3, generator=torch.Generator().manual_seed(seed + 1))
    return ObservedALRNN(model, IdentityObservation(N, M, P, seed=seed, dtype=dtype), np.zeros(N), np.ones(N))


def _plain_loss(module, x, mask, s, tau, alpha):
    """The objective written as the reference tutorial's per-step loop (independent of alrnn_scan)."""
    model, L = module.model, module.observation.L
    B, T, N = x.shape
    x = torch.where(mask[..., None], x, torch.zeros(()))
    z = torch.cat([x[:, 0], x[:, 0] @ L.T], dim=1)
    num, den = 0.0, 0.0
    for k in range(T - 1):
        if k > 0 and k % tau == 0:
            a = (alpha * mask[:, k].to(x.dtype))[:, None]
            z = torch.cat([(1 - a) * z[:, :N] + a * x[:, k], z[:, N:]], dim=1)
        z = model.step(z, None if s is None else s[:, k + 1])
        w = mask[:, k + 1].to(x.dtype)
        num = num + (((z[:, :N] - x[:, k + 1]) ** 2).mean(1) * w).sum()
        den = den + w.sum()
    return num / den


def _graph_names(t):
    """The names of every autograd node behind ``t``."""
    names, todo = set(), [t.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and type(node).__name__ not in names:
            names.add(type(node).__name__)
            todo.extend(n for n, _ in node.next_functions)
    return names


@pytest.mark.parametrize("backend", ["numba", "loop"])  # numba: the compiled step of _fused_tf
@pytest.mark.parametrize("forcing,tau,alpha,ragged", [("sparse", 4, 1.0, True), ("sparse", 3, 0.6, True),
                                                      ("generalized", 1, 0.3, True), ("generalized", 1, 0.3, False)])
def test_objective_matches_plain_loop_with_grads(rng, forcing, tau, alpha, ragged, backend):
    module = _module(K=2)
    B, T = 5, 23
    x = torch.as_tensor(rng.normal(size=(B, T, 2)))
    s = torch.as_tensor(rng.normal(size=(B, T, 2)))
    lengths = np.array([23, 17, 10, 23, 5]) if ragged else np.full(B, T)
    mask = torch.as_tensor(np.arange(T)[None] < lengths[:, None])
    x = torch.where(mask[..., None], x, torch.full((), float("nan"), dtype=x.dtype))  # NaN padding
    obj = TeacherForcingObjective(forcing, tau=tau, alpha=alpha, backend=backend)
    params = [module.model.A, module.model.W, module.model.h, module.model.C, module.observation.L]
    got = obj(module, {"x": x, "mask": mask, "inputs": s})
    assert ("_FusedTeacherForcingMSEBackward" in _graph_names(got)) == (backend == "numba")
    g_got = torch.autograd.grad(got, params)
    want = _plain_loss(module, x, mask, s, tau, alpha)
    g_want = torch.autograd.grad(want, params)
    assert float(got.detach()) == pytest.approx(float(want.detach()), rel=1e-10)
    for a, b in zip(g_got, g_want):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("alpha,cut", [(1.0, True), (0.6, False)])
def test_sparse_forcing_cuts_gradient_into_replaced_entries(rng, alpha, cut):
    # W = 0: the observed units evolve on their own, so after a full (alpha = 1) forcing at
    # step tau the predictions no longer depend on the first observation; partial forcing keeps it
    from neuroalrnn.model.recurrence import alrnn_scan

    module = _module()
    model = module.model
    with torch.no_grad():
        model.W.zero_()
    T, tau = 13, 4
    x = torch.as_tensor(rng.normal(size=(3, T, 2))).requires_grad_(True)
    mask = torch.ones(3, T, dtype=torch.bool)
    obj = TeacherForcingObjective("sparse", tau=tau, alpha=alpha)
    steps = obj.step_alpha(module, mask)
    assert steps[0].nonzero().flatten().tolist() == [4, 8]
    z1 = module.observation.init_state(x[:, 0])
    states = alrnn_scan(z1, model.drive(None, 3, T - 1).contiguous(), model.A, model.W, model.n_relu,
                        x[:, :-1], steps)
    (g,) = torch.autograd.grad(states[:, tau:, :2].sum(), [x])
    assert (g[:, 0].abs().sum() == 0) == cut
    assert g[:, tau].abs().sum() > 0  # the forced data carry the gradient instead


def test_ragged_padding_does_not_change_loss(rng):
    module = _module()
    obj = TeacherForcingObjective("sparse", tau=4)
    x_short = torch.as_tensor(rng.normal(size=(1, 15, 2)))
    padded = torch.as_tensor(rng.normal(size=(1, 30, 2))) * 100
    padded[:, :15] = x_short
    mask = torch.zeros(1, 30, dtype=torch.bool)
    mask[:, :15] = True
    a = obj(module, {"x": x_short, "mask": torch.ones(1, 15, dtype=torch.bool)})
    b = obj(module, {"x": padded, "mask": mask})
    assert float(a.detach()) == pytest.approx(float(b.detach()), rel=1e-12)


def test_jacobian_norm_bound_and_alpha_rule(rng):
    module = _module(M=5, P=2, N=2)
    model = module.model
    states = torch.as_tensor(rng.normal(size=(3, 7, 5)))
    got = jacobian_norm_bound(model, states)
    want = []
    for seq in states:
        norms = [torch.linalg.matrix_norm(torch.autograd.functional.jacobian(model.step, z[None])[0, :, 0], ord=2)
                 for z in seq]
        want.append(torch.exp(torch.log(torch.stack(norms)).mean()))
    torch.testing.assert_close(got, torch.stack(want).to(got.dtype))
    assert teacher_forcing_alpha(0.5) == 0.0 and teacher_forcing_alpha(4.0) == 0.75


def test_adaptive_alpha_follows_the_reference_schedule(rng):
    # Hess et al. (2023)'s code: alpha starts at 1; every 5th batch, before its step, alpha* from the
    # Jacobians at the forcing signals [x; 0] of steps 2..T; raised at once, else alpha <- 0.999 alpha + 0.001 alpha*
    module = _module(M=5, P=2, N=2)
    model = module.model
    with torch.no_grad():
        model.W.mul_(5.0)  # expanding: alpha* > 0
    x = torch.as_tensor(rng.normal(size=(4, 20, 2)))
    batch = {"x": x, "mask": torch.ones(4, 20, dtype=torch.bool)}
    obj = TeacherForcingObjective("generalized", alpha="adaptive")
    assert (obj.alpha_start, obj.adapt_every, obj.alpha_decay) == (1.0, 5, 0.999)
    signals = torch.cat([x[:, 1:], torch.zeros(4, 19, 3, dtype=x.dtype)], dim=2)
    G = max(torch.exp(torch.stack([torch.log(torch.linalg.matrix_norm(
        torch.autograd.functional.jacobian(model.step, z[None])[0, :, 0], ord=2)) for z in seq]).mean())
        for seq in signals)
    star = 1 - 1 / float(G)
    assert 0.3 < star < 1
    module.train()
    module.alpha.fill_(0.0)
    for call in range(1, 6):
        loss = obj(module, batch)
        assert float(module.alpha) == (0.0 if call < 5 else pytest.approx(star))  # raised at once, at call 5
    # ... and used in that same call
    fixed = TeacherForcingObjective("generalized", alpha=star)(module, batch)
    assert float(loss.detach()) == pytest.approx(float(fixed.detach()), rel=1e-12)
    module.alpha.fill_(1.0)
    for _ in range(5):
        obj(module, batch)
    assert float(module.alpha) == pytest.approx(0.999 + 0.001 * star)  # lowered slowly


def test_adaptive_alpha_fast_schedule(rng):
    # this package's earlier schedule, kept as an option: from the predicted states after each call
    module = _module(M=5, P=2, N=2)
    model = module.model
    obj = TeacherForcingObjective("generalized", alpha="adaptive", alpha_schedule="fast", alpha_decay=0.9)
    assert (obj.alpha_start, obj.adapt_every) == (0.0, 1)
    batch = {"x": torch.as_tensor(rng.normal(size=(4, 20, 2))), "mask": torch.ones(4, 20, dtype=torch.bool)}
    module.train()
    with torch.no_grad():
        model.W.mul_(5.0)  # expanding: G > 1
    obj(module, batch)
    high = float(module.alpha)
    assert high > 0.3
    with torch.no_grad():
        model.W.mul_(0.0)
        model.A.fill_(0.5)  # contracting: alpha* = 0
    obj(module, batch)
    assert float(module.alpha) == pytest.approx(0.9 * high)
    with pytest.raises(ValueError, match="alpha_schedule"):
        TeacherForcingObjective("generalized", alpha="adaptive", alpha_schedule="slow")
    with pytest.raises(ValueError, match="alpha_decay"):
        TeacherForcingObjective("generalized", alpha="adaptive", alpha_decay=1.0)


def _oscillator_data(n_trials=24, T=60, seed=0):
    rng = np.random.default_rng(seed)
    theta, r = 0.25, 0.995
    R = r * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    x = np.empty((n_trials, T, 2))
    x[:, 0] = rng.normal(size=(n_trials, 2))
    for t in range(1, T):
        x[:, t] = x[:, t - 1] @ R.T
    lengths = rng.integers(40, T + 1, size=n_trials)
    for i, L in enumerate(lengths):
        x[i, L:] = np.nan
    return x, R


def test_fit_recovers_linear_dynamics_and_resumes(tmp_path):
    x, R = _oscillator_data()
    kw = dict(val=0.25, forcing="sparse", tau=8, n_steps=150, batch_size=8, lr=1e-2, lr_decay=0.999,
              eval_every=50, metrics=("n_step", "d_h"), n_ahead=10, seed=3)
    model = ALRNN(4, 1, seed=0)
    fitted = fit_teacher_forcing(model, x, **kw)
    hist = fitted.train_result_.history
    assert {"n_step", "d_h", "val_loss"} <= set(hist.columns)
    # the truth's 10-step error is 0; the fit gets close in the data's units
    from neuroalrnn.analysis.dsr import n_step_prediction_error
    err = n_step_prediction_error(fitted, x[:6], n=10)
    assert err < 0.05 * np.nanvar(x)
    assert hist["n_step"].min() == pytest.approx(fitted.train_result_.best_metric)
    # killed after 100 steps and resumed -> same parameters as the uninterrupted run
    ck = tmp_path / "tf.ckpt"
    part = fit_teacher_forcing(ALRNN(4, 1, seed=0), x, checkpoint=ck, **{**kw, "n_steps": 100})
    resumed = fit_teacher_forcing(ALRNN(4, 1, seed=0), x, checkpoint=ck, **kw)
    for (name, a), b in zip(fitted.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, msg=name)


def test_fit_generalized_adaptive_and_linear_observation():
    x, _ = _oscillator_data(n_trials=12)
    fitted = fit_teacher_forcing(ALRNN(4, 1, seed=1), x, forcing="generalized", n_steps=30, eval_every=15,
                                 metrics=("n_step",), n_ahead=5, noise_std=0.05)
    assert 0.0 <= float(fitted.alpha) <= 1.0
    assert np.isfinite(fitted.train_result_.history["n_step"]).all()
    # linear readout with more channels (6) than latent units (4)
    many = np.concatenate([x, x @ np.array([[1.0, 0.5], [-0.3, 2.0]]), x[..., :1] - x[..., 1:], x[..., :1]], axis=2)
    fitted = fit_teacher_forcing(ALRNN(4, 2, seed=1), many, observation="linear", tau=5, n_steps=60,
                                 eval_every=30, metrics=("n_step",), n_ahead=5, lr=5e-3)
    hist = fitted.train_result_.history
    assert hist["val_loss"].iloc[-1] < hist["val_loss"].iloc[0]
    assert fitted.free_run(many[0, 0], 7).shape == (7, 6)
    obs = LinearObservation(6, 4, seed=0, dtype=torch.float64)
    z = torch.randn(3, 4, dtype=torch.float64)
    torch.testing.assert_close(obs.init_state(obs.readout(z)), z)


def test_inputs_enter_through_C(rng):
    # x_t = 0.5 x_{t-1} + s_t: only reachable through C
    T, n = 40, 16
    s = rng.normal(size=(n, T, 1))
    x = np.zeros((n, T, 1))
    for t in range(1, T):
        x[:, t] = 0.5 * x[:, t - 1] + s[:, t]
    ds = from_arrays(activity=x, inputs=s)
    fitted = fit_teacher_forcing(ALRNN(2, 0, n_inputs=1, seed=0), ds, tau=4, n_steps=200, lr=5e-2,
                                 lr_decay=1.0, eval_every=100, metrics=("n_step",), n_ahead=3, zscore=False)
    assert float(fitted.model.C[0, 0].detach()) == pytest.approx(1.0, abs=0.05)
    from neuroalrnn.analysis.dsr import n_step_prediction_error
    assert n_step_prediction_error(fitted, ds, n=3) < 0.01 * x.var()
    # a free run is driven by the inputs of the steps after x0: s_2..s_T for T - 1 steps
    run = fitted.free_run(x[:, 0], T - 1, s[:, 1:])
    assert np.mean((run - x[:, 1:]) ** 2) < 0.01 * x.var()
    with pytest.raises(ValueError, match=r"inputs: expected shape .*\(16, 39, 1\)"):
        fitted.free_run(x[:, 0], T - 1, s)  # the whole trial's inputs: one step too many


def test_bad_input(rng):
    x = rng.normal(size=(6, 30, 3))
    with pytest.raises(ValueError, match=r"N = 3 .*M = 4, P = 2"):
        fit_teacher_forcing(ALRNN(4, 2), x)
    with pytest.raises(ValueError, match="n_obs = 4"):
        fit_teacher_forcing(ALRNN(8, 2), x, n_obs=4)
    with pytest.raises(ValueError, match="tau"):
        fit_teacher_forcing(ALRNN(8, 2), x, tau=0)
    with pytest.raises(ValueError, match="n_steps"):
        fit_teacher_forcing(ALRNN(8, 2), x, n_steps=0)
    with pytest.raises(ValueError, match="adapt_every"):
        fit_teacher_forcing(ALRNN(8, 2), x, forcing="generalized", adapt_every=0)
    with pytest.raises(ValueError, match="alpha"):
        fit_teacher_forcing(ALRNN(8, 2), x, forcing="generalized", alpha=1.5)
    with pytest.raises(ValueError, match="alpha"):
        fit_teacher_forcing(ALRNN(8, 2), x, forcing="generalized", alpha=-0.1)
    with pytest.raises(ValueError, match="forcing interval"):
        fit_teacher_forcing(ALRNN(8, 2), x, tau=30)
    dead = x.copy()
    dead[..., 1] = np.nan
    with pytest.raises(ValueError, match=r"channels \[1\]"):
        fit_teacher_forcing(ALRNN(8, 2), dead)
    partly = x.copy()
    partly[:3, :, 1] = np.nan  # channel 1 missing in some trials only
    with pytest.raises(ValueError, match=r"activity: trial 0 .*channels \[1\]"):
        fit_teacher_forcing(ALRNN(8, 2), partly)
    flat = x.copy()
    flat[..., 2] = 1.0
    with pytest.raises(ValueError, match="constant"):
        fit_teacher_forcing(ALRNN(8, 2), flat)
    with pytest.raises(ValueError, match="n_inputs"):
        fit_teacher_forcing(ALRNN(8, 2, n_inputs=2), x)
    with pytest.raises(ValueError, match="forcing"):
        fit_teacher_forcing(ALRNN(8, 2), x, forcing="full")
    with pytest.raises(ValueError, match="M - P"):
        IdentityObservation(3, 4, 2)
    for empty, what in ((x[:0], "zero trials"), (x[:, :0], "zero time steps"), (x[..., :0], "zero channels")):
        with pytest.raises(ValueError, match=what):  # zero trials used to blame NaN channels
            fit_teacher_forcing(ALRNN(8, 2), empty)
    with pytest.raises(ValueError, match="zero trials"):
        fit_teacher_forcing(ALRNN(8, 2), from_arrays(activity=x).isel(trial=[]))
